#!/usr/bin/env python3
"""An event-sourced bank on logmq alone: one stream per account, optimistic concurrency,
atomic transfers, snapshots and a restartable projection.

    python examples/eventsourced_bank.py [DATA_DIR]

- Each account is the stream of its key in topic ``bank``; its state is the fold of its
  events, loaded as "latest snapshot + events after it" in one call.
- A command reads the state at version N and appends with ``expected_version=N``; if another
  writer got there first, ``WrongExpectedVersionError`` says so and the command retries on
  the fresh state (two threads withdraw from one account below: no lost update).
- A transfer appends to both accounts in ONE batch (``append_multi``): both or neither.
- The "balances" projection follows the topic with ``subscribe_all`` and stores its
  checkpoint together with its state, so a restart resumes exactly where it stopped.
Running it twice on the same DATA_DIR continues the same bank.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading

import logmq
from logmq.errors import WrongExpectedVersionError
from logmq.streams import NO_STREAM

TOPIC = "bank"
SNAPSHOT_EVERY = 20


class InsufficientFunds(Exception):
    pass


def apply(state: dict, event: dict) -> dict:
    kind = event["type"]
    if kind == "Opened":
        return {"owner": event["owner"], "balance": 0}
    if kind in ("Deposited", "TransferredIn"):
        return {**state, "balance": state["balance"] + event["amount"]}
    if kind in ("Withdrawn", "TransferredOut"):
        return {**state, "balance": state["balance"] - event["amount"]}
    raise ValueError(kind)


class Bank:
    def __init__(self, log: logmq.Broker) -> None:
        self.log = log
        log.streams.partition_for(TOPIC, "x")  # creates the topic (one partition)
        self.snapshots = log.streams.snapshots(TOPIC)

    def load(self, account: str) -> tuple[dict | None, int]:
        """(state, version) from the latest snapshot plus the events after it."""
        loaded = self.snapshots.load(account)
        state = json.loads(loaded.snapshot.state) if loaded.snapshot else None
        for ev in loaded.events:
            state = apply(state or {}, json.loads(ev.value))
        return state, loaded.version

    def _append(self, account: str, events: list[dict], version: int | str) -> None:
        res = self.log.append_to_stream(TOPIC, account, [json.dumps(e) for e in events],
                                        expected_version=version)
        before = version if isinstance(version, int) else -1
        if res.version // SNAPSHOT_EVERY > before // SNAPSHOT_EVERY:
            state, v = self.load(account)
            self.snapshots.save(account, v, json.dumps(state).encode())

    def open(self, account: str, owner: str) -> None:
        self._append(account, [{"type": "Opened", "owner": owner}], NO_STREAM)

    def _command(self, account: str, decide) -> None:  # type: ignore[no-untyped-def]
        for _ in range(100):
            state, version = self.load(account)
            if state is None:
                raise KeyError(account)
            try:
                self._append(account, decide(state), version)
                return
            except WrongExpectedVersionError:
                continue  # somebody else changed the account: decide again on the new state
        raise RuntimeError("too much contention")

    def deposit(self, account: str, amount: int) -> None:
        self._command(account, lambda s: [{"type": "Deposited", "amount": amount}])

    def withdraw(self, account: str, amount: int) -> None:
        def decide(s: dict) -> list[dict]:
            if s["balance"] < amount:
                raise InsufficientFunds(f"{account} has {s['balance']}, needs {amount}")
            return [{"type": "Withdrawn", "amount": amount}]

        self._command(account, decide)

    def transfer(self, src: str, dst: str, amount: int) -> None:
        """Both events in one batch: appended together or not at all."""
        s = self.log.streams
        p = s.partition_for(TOPIC, src)
        assert p == s.partition_for(TOPIC, dst), "atomic only within one partition"
        for _ in range(100):
            (a, va), (_b, vb) = self.load(src), self.load(dst)
            if a is None or _b is None:
                raise KeyError(src if a is None else dst)
            if a["balance"] < amount:
                raise InsufficientFunds(f"{src} has {a['balance']}, needs {amount}")
            out = json.dumps({"type": "TransferredOut", "amount": amount, "to": dst}).encode()
            into = json.dumps({"type": "TransferredIn", "amount": amount, "from": src}).encode()
            try:
                s.append_multi(TOPIC, p, [(src.encode(), [(out, [])], va),
                                          (dst.encode(), [(into, [])], vb)])
                return
            except WrongExpectedVersionError:
                continue
        raise RuntimeError("too much contention")


class Balances:
    """A projection: total balance per owner, with its checkpoint stored alongside."""

    def __init__(self, log: logmq.Broker, path: str) -> None:
        self.log, self.path = log, path
        saved = {"checkpoint": {}, "balances": {}, "owners": {}}
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
        self.balances: dict[str, int] = saved["balances"]
        self.owners: dict[str, str] = saved["owners"]
        self.checkpoint = {int(p): o for p, o in saved["checkpoint"].items()}

    def catch_up(self) -> int:
        sub = self.log.subscribe_all(TOPIC, self.checkpoint)
        n = 0
        while batch := sub.poll(0):
            for ev in batch:
                e, acct = json.loads(ev.value), ev.key.decode()
                if e["type"] == "Opened":
                    self.owners[acct] = e["owner"]
                    continue
                sign = 1 if e["type"] in ("Deposited", "TransferredIn") else -1
                owner = self.owners[acct]
                self.balances[owner] = self.balances.get(owner, 0) + sign * e["amount"]
                n += 1
        self.checkpoint = sub.checkpoint
        sub.stop()
        tmp = self.path + ".tmp"  # state and checkpoint replaced together, atomically
        with open(tmp, "w") as f:
            json.dump({"checkpoint": self.checkpoint, "balances": self.balances,
                       "owners": self.owners}, f)
        os.replace(tmp, self.path)
        return n


def main() -> None:
    data = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="bank-")
    with logmq.open(data) as log:
        bank = Bank(log)
        first_run = log.streams.version(TOPIC, "alice") < 0
        if first_run:
            bank.open("alice", "Alice")
            bank.open("bob", "Bob")
        bank.deposit("alice", 100)
        for _ in range(30):
            bank.deposit("bob", 5)

        errors: list[Exception] = []

        def spend() -> None:  # two threads race on one account: retries, no lost update
            for _ in range(10):
                try:
                    bank.withdraw("alice", 3)
                except Exception as e:  # pragma: no cover - shown below
                    errors.append(e)

        threads = [threading.Thread(target=spend) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bank.transfer("bob", "alice", 50)
        try:
            bank.withdraw("bob", 10_000)
        except InsufficientFunds as e:
            print("refused:", e)

        alice, va = bank.load("alice")
        bob, vb = bank.load("bob")
        print(f"alice: balance {alice['balance']} at version {va}")
        print(f"bob:   balance {bob['balance']} at version {vb} (snapshot at "
              f"{bank.snapshots.latest('bob').version if bank.snapshots.latest('bob') else '-'})")
        proj = Balances(log, os.path.join(data, "balances.json"))
        n = proj.catch_up()
        print(f"projection applied {n} new events; balances {proj.balances}")
        assert not errors, errors
        assert proj.balances["Alice"] == alice["balance"]
        assert proj.balances["Bob"] == bob["balance"]
        print(f"data directory: {data}")


if __name__ == "__main__":
    main()
