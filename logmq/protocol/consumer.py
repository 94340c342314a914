"""Old import path of :mod:`logmq.protocol.consumer_protocol` (Kafka's ConsumerProtocol)."""

from logmq.protocol.consumer_protocol import (
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)

__all__ = ["encode_subscription", "decode_subscription", "encode_assignment",
           "decode_assignment"]
