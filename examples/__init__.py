"""Runnable examples, installed with logmq as ``logmq.examples``.

``python -m logmq.examples`` lists them; ``python -m logmq.examples.ledger`` runs one (the
same files as ``examples/`` in the repository).
"""
