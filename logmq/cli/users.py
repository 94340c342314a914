"""``logmq users``: the SASL/SCRAM users of a data directory (add, list, remove).

Works on the directory's LMDB environment directly, not through the broker, so it can run
while ``logmq serve`` serves the same directory (LMDB is multi-process safe) and the next
authentication sees the change. Passwords come from stdin (``--password-stdin``) or a hidden
prompt, never from the command line, where ``ps`` and shell history would keep them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from logmq.cli.common import data_option, print_table

if TYPE_CHECKING:
    from logmq.broker.users import UserStore

__all__ = ["users"]

_MECHS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@contextmanager
def _store(data: str, *, create: bool) -> Iterator[UserStore]:
    from logmq.broker.users import UserStore
    from logmq.errors import LogMQError
    from logmq.storage.datadir import check_data_path
    from logmq.storage.memory import is_memory_path
    from logmq.storage.meta import MetaStore

    if is_memory_path(data):
        raise click.ClickException("users of a :memory: log cannot outlive this command")
    meta_dir = os.path.join(data, "meta")
    if not create and not os.path.isdir(meta_dir):
        raise click.ClickException(f"no logmq data directory at {data!r} (pass --data)")
    try:
        check_data_path(data)
        meta = MetaStore(meta_dir)
    except LogMQError as e:
        raise click.ClickException(str(e)) from None
    try:
        yield UserStore(meta.env)
    finally:
        meta.close()


@click.group()
def users() -> None:
    """SASL users (SCRAM-SHA-256/512 credentials; SASL/PLAIN checks the same ones)."""


@users.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of stdin (else a hidden prompt)")
@click.option("--mechanism", "mechanisms", multiple=True, type=click.Choice(_MECHS),
              help="credential to store (repeatable)  [default: both]")
@click.option("--iterations", type=click.IntRange(4096, 16384), default=8192,
              show_default=True, help="PBKDF2 rounds of the salted password")
@data_option
def add(name: str, password_stdin: bool, mechanisms: tuple[str, ...], iterations: int,
        data: str) -> None:
    """Add NAME, or change its password (salted and iterated; never stored as such)."""
    from logmq.errors import ConfigError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("the password must not be empty")
    with _store(data, create=True) as store:
        try:
            store.set_password(name, password, mechanisms or _MECHS,
                               iterations=iterations)
        except ConfigError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"user {name}: {', '.join(mechanisms or _MECHS)} ({iterations} iterations)")


@users.command("list")
@data_option
def list_(data: str) -> None:
    """Users and their mechanisms."""
    with _store(data, create=False) as store:
        rows = [(u, ",".join(m for m, _ in creds), ",".join(str(i) for _, i in creds))
                for u, creds in store.users().items()]
    print_table(["USER", "MECHANISMS", "ITERATIONS"], rows)


@users.command("remove")
@click.argument("name")
@click.option("--mechanism", type=click.Choice(_MECHS),
              help="remove only this credential  [default: all of the user's]")
@data_option
def remove(name: str, mechanism: str | None, data: str) -> None:
    """Remove NAME's credentials (its open connections stay until they re-authenticate)."""
    with _store(data, create=False) as store:
        n = store.remove(name, mechanism)
    if not n:
        raise click.ClickException(f"no such user credential: {name}"
                                   + (f" ({mechanism})" if mechanism else ""))
    click.echo(f"removed {n} credential(s) of {name}")
