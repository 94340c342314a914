"""Kafka wire protocol, sans-I/O: framing and schema-driven message codecs.

Nothing here touches a socket: the server (``logmq.server``) feeds received bytes to a
:class:`FrameBuffer`, decodes requests with :func:`decode_request`, and writes what
:func:`encode_response_chunks` returns. Tests and tools use the same functions as a client.
"""

from logmq.protocol.codec import (
    API_NAMES,
    SUPPORTED_VERSIONS,
    Request,
    RequestHeader,
    decode_request,
    decode_response,
    encode_refusal,
    encode_request,
    encode_response,
    encode_response_chunks,
    peek_header,
)
from logmq.protocol.frames import FrameBuffer

__all__ = [
    "API_NAMES",
    "SUPPORTED_VERSIONS",
    "FrameBuffer",
    "Request",
    "RequestHeader",
    "decode_request",
    "decode_response",
    "encode_refusal",
    "encode_request",
    "encode_response",
    "encode_response_chunks",
    "peek_header",
]
