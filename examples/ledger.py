"""An event-sourced ledger on the plain logmq API: one stream (topic) per account.

The log is the source of truth: an account's balance is whatever replaying its events gives.
Writers use optimistic concurrency: a new event is appended only if the stream still ends
where the writer last read it (``expected_offset``), so two concurrent withdrawals can never
both spend the same money; the loser re-reads and decides again.

    python examples/ledger.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading

import logmq
from logmq.errors import ConcurrencyError


class InsufficientFunds(Exception):
    pass


class Ledger:
    def __init__(self, log: logmq.Broker) -> None:
        self.log = log
        self.producer = log.producer()

    @staticmethod
    def stream(account: str) -> str:
        return f"account-{account}"

    def open_account(self, account: str) -> None:
        self.log.create_topic(self.stream(account), partitions=1, exist_ok=True)

    def load(self, account: str) -> tuple[int, int]:
        """(balance, version): the state after replaying every event; version = next offset."""
        topic = self.stream(account)
        consumer = self.log.consumer(topic, auto_offset_reset="earliest")
        balance, version = 0, self.log.end_offset((topic, 0))
        while consumer.position((topic, 0)) < version:
            for rec in consumer.poll(timeout=1.0):
                event = json.loads(rec.value)
                balance += event["amount"] if event["type"] == "deposited" else -event["amount"]
        consumer.close()
        return balance, version

    def _append(self, account: str, event: dict, version: int) -> None:
        self.producer.send_batch(self.stream(account), [(None, json.dumps(event).encode())],
                                 partition=0, expected_offset=version)

    def deposit(self, account: str, amount: int) -> None:
        while True:
            _, version = self.load(account)
            try:
                return self._append(account, {"type": "deposited", "amount": amount}, version)
            except ConcurrencyError:
                continue  # someone appended meanwhile: read again

    def withdraw(self, account: str, amount: int) -> int:
        """Spend ``amount`` if the balance allows it; returns the retries it took."""
        retries = 0
        while True:
            balance, version = self.load(account)
            if balance < amount:
                raise InsufficientFunds(f"{account}: balance {balance} < {amount}")
            try:
                self._append(account, {"type": "withdrew", "amount": amount}, version)
                return retries
            except ConcurrencyError:
                retries += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="data directory (default: a fresh temporary one)")
    args = ap.parse_args()
    data = args.data or tempfile.mkdtemp(prefix="ledger-")
    with logmq.open(data) as log:
        ledger = Ledger(log)
        ledger.open_account("alice")
        start, _ = ledger.load("alice")
        ledger.deposit("alice", 100)
        # eight concurrent withdrawals of 30 against 100 more: at most three can succeed
        results: list[str] = []
        lock = threading.Lock()

        def spend() -> None:
            try:
                retries = ledger.withdraw("alice", 30)
                outcome = f"ok after {retries} retries"
            except InsufficientFunds:
                outcome = "refused"
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=spend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        balance, version = ledger.load("alice")
        ok = sum(r.startswith("ok") for r in results)
        print(f"withdrawals: {ok} succeeded, {len(results) - ok} refused")
        print(f"alice: balance {balance} after {version} events (started at {start})")
        assert balance == start + 100 - 30 * ok and balance >= 0
        ledger.producer.close()


if __name__ == "__main__":
    main()
