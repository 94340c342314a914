"""``logmq acls``: add, list and remove the Kafka ACLs of a data directory (a stopped server's,
or one no server holds; a running server's are managed over the wire with ``kafka-acls`` or
an AdminClient). The authorizer reads them when ``logmq serve --authorizer`` runs.

Changes are written to the data directory's audit log (``DATA/audit.jsonl`` unless
``audit_log`` says otherwise) with the local user as principal.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from logmq.cli.common import command_config, data_option, open_broker, print_table

if TYPE_CHECKING:
    from logmq.broker.acls import AclFilter, AclStore

__all__ = ["acls"]
F = TypeVar("F", bound=Callable[..., Any])


def _resource_options(f: F) -> F:
    for opt in reversed([
        click.option("--topic", "topic", metavar="NAME", help="a topic (or prefix)"),
        click.option("--group", "group", metavar="NAME", help="a consumer group (or prefix)"),
        click.option("--cluster", is_flag=True, help="the cluster resource"),
        click.option("--transactional-id", "txn", metavar="ID",
                     help="a transactional id (or prefix)"),
        click.option("--prefixed", is_flag=True,
                     help="the name is a prefix (PREFIXED pattern; default LITERAL)"),
    ]):
        f = opt(f)
    return f


def _resource(topic: str | None, group: str | None, cluster: bool, txn: str | None,
              required: bool) -> tuple[int, str | None]:
    from logmq.broker.acls import CLUSTER_NAME, ResourceType

    given = [(ResourceType.TOPIC, topic), (ResourceType.GROUP, group),
             (ResourceType.TRANSACTIONAL_ID, txn)]
    chosen = [(rt, n) for rt, n in given if n is not None]
    if cluster:
        chosen.append((ResourceType.CLUSTER, CLUSTER_NAME))
    if len(chosen) > 1:
        raise click.UsageError("give one of --topic, --group, --cluster, --transactional-id")
    if not chosen:
        if required:
            raise click.UsageError("give one of --topic, --group, --cluster, "
                                   "--transactional-id")
        return ResourceType.ANY, None
    return chosen[0]


def _audit(data: str, event: str, bindings: list[Any]) -> None:
    from logmq.broker.audit import Audit, audit_path

    cfg = command_config()
    path = audit_path(cfg.audit_log, data, True)
    if path is None or not bindings:
        return
    audit = Audit(path)
    try:
        for b in bindings:
            audit.record(event, f"local:{getpass.getuser()}", "local", "ok", acl=b.as_dict())
    finally:
        audit.close()


def _store(log: object) -> AclStore:
    from logmq.broker.acls import AclStore

    meta = getattr(log, "meta", None)
    if meta is None:
        raise click.UsageError("ACLs of a running server are managed over the wire "
                               "(kafka-acls, AdminClient); give --data of a stopped one")
    return AclStore(meta.env)


@click.group()
def acls() -> None:
    """Kafka ACLs (who may read, write, create... which topics, groups, transactional ids)."""


@acls.command("add")
@click.option("--allow", "allow", multiple=True, metavar="PRINCIPAL",
              help="principal to allow (User:alice, User:* for everyone; repeatable)")
@click.option("--deny", "deny", multiple=True, metavar="PRINCIPAL",
              help="principal to deny (DENY wins over ALLOW; repeatable)")
@click.option("--operation", "operations", required=True, metavar="OPS",
              help="comma-separated: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, "
                   "DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, CLUSTER_ACTION, ALL")
@click.option("--host", default="*", show_default=True, help="client address the ACL is for")
@_resource_options
@data_option
def add(allow: tuple[str, ...], deny: tuple[str, ...], operations: str, host: str,
        topic: str | None, group: str | None, cluster: bool, txn: str | None, prefixed: bool,
        data: str) -> None:
    """Add ACLs: every principal given gets every operation given on the resource."""
    from logmq.broker.acls import AclBinding, AclPermission, PatternType, parse_operation

    if not allow and not deny:
        raise click.UsageError("give --allow PRINCIPAL and/or --deny PRINCIPAL")
    rtype, name = _resource(topic, group, cluster, txn, True)
    ops = [parse_operation(o) for o in operations.split(",") if o.strip()]
    pattern = PatternType.PREFIXED if prefixed else PatternType.LITERAL
    bindings = [AclBinding.of(rtype, name or "", pattern, p, host, op, perm)
                for perm, principals in ((AclPermission.ALLOW, allow),
                                         (AclPermission.DENY, deny))
                for p in principals for op in ops]
    with open_broker(data, create=True) as log:  # ACLs may come before the first serve
        new = _store(log).add(bindings)
    _audit(data, "acl.create", new)
    for b in new:
        click.echo(f"added: {b.describe()}")
    if len(new) < len(bindings):
        click.echo(f"{len(bindings) - len(new)} already present")


def _filter(principal: str | None, topic: str | None, group: str | None, cluster: bool,
            txn: str | None, prefixed: bool) -> AclFilter:
    from logmq.broker.acls import AclFilter, PatternType, ResourceType, parse_principal

    rtype, name = _resource(topic, group, cluster, txn, False)
    pattern = (PatternType.PREFIXED if prefixed else
               PatternType.LITERAL if name is not None else PatternType.ANY)
    return AclFilter(ResourceType(rtype), name, pattern,
                     parse_principal(principal) if principal else None)


@acls.command("list")
@click.option("--principal", metavar="PRINCIPAL", help="only this principal's ACLs")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per ACL")
@_resource_options
@data_option
def list_(principal: str | None, as_json: bool, topic: str | None, group: str | None,
          cluster: bool, txn: str | None, prefixed: bool, data: str) -> None:
    """List ACLs (all, or those of one principal or resource)."""
    flt = _filter(principal, topic, group, cluster, txn, prefixed)
    with open_broker(data) as log:
        found = _store(log).find(flt)
    if as_json:
        for b in found:
            click.echo(json.dumps(b.as_dict()))
        return
    print_table(["PERMISSION", "PRINCIPAL", "HOST", "OPERATION", "RESOURCE", "PATTERN",
                 "NAME"],
                [[b.permission.name, b.principal, b.host, b.operation.name,
                  b.resource_type.name, b.pattern_type.name, b.resource_name] for b in found])


@acls.command("remove")
@click.option("--principal", metavar="PRINCIPAL", help="only this principal's ACLs")
@click.option("--operation", "operation", metavar="OP", help="only this operation")
@click.option("--all", "everything", is_flag=True, help="allow removing every ACL at once")
@_resource_options
@data_option
def remove(principal: str | None, operation: str | None, everything: bool,
           topic: str | None, group: str | None, cluster: bool, txn: str | None,
           prefixed: bool, data: str) -> None:
    """Remove the ACLs matching the options (at least one, or --all)."""
    import dataclasses

    from logmq.broker.acls import parse_operation

    flt = _filter(principal, topic, group, cluster, txn, prefixed)
    if operation:
        flt = dataclasses.replace(flt, operation=parse_operation(operation))
    if not everything and not (principal or operation or topic or group or cluster or txn):
        raise click.UsageError("say which ACLs (--principal, --operation, a resource) or --all")
    with open_broker(data) as log:
        gone = _store(log).remove(flt)
    _audit(data, "acl.delete", gone)
    for b in gone:
        click.echo(f"removed: {b.describe()}")
    if not gone:
        click.echo("no ACL matched")


@acls.group("token")
def token() -> None:
    """Bearer tokens of the HTTP listener (serve --http with --authorizer)."""


def _tokens(log: object) -> Any:
    from logmq.ops.http_auth import TokenStore

    meta = getattr(log, "meta", None)
    if meta is None:
        raise click.UsageError("give --data of a stopped server")
    return TokenStore(meta.env)


@token.command("add")
@click.argument("principal")
@data_option
def token_add(principal: str, data: str) -> None:
    """Issue a token for PRINCIPAL (printed once: only its digest is stored)."""
    with open_broker(data, create=True) as log:
        value = _tokens(log).issue(principal)
    _audit_token(data, "token.create", principal)
    click.echo(value)


@token.command("list")
@data_option
def token_list(data: str) -> None:
    """Principals holding tokens, and how many each."""
    with open_broker(data) as log:
        found = _tokens(log).principals()
    print_table(["PRINCIPAL", "TOKENS"], [[p, n] for p, n in sorted(found.items())])


@token.command("remove")
@click.argument("principal")
@data_option
def token_remove(principal: str, data: str) -> None:
    """Revoke every token of PRINCIPAL."""
    with open_broker(data) as log:
        n = _tokens(log).revoke(principal)
    _audit_token(data, "token.delete", principal)
    click.echo(f"revoked {n} token(s) of {principal}")


def _audit_token(data: str, event: str, principal: str) -> None:
    from logmq.broker.audit import Audit, audit_path

    path = audit_path(command_config().audit_log, data, True)
    if path is not None:
        audit = Audit(path)
        audit.record(event, f"local:{getpass.getuser()}", "local", "ok", subject=principal)
        audit.close()
