"""The sans-I/O Kafka codec: schema-generated round-trips, kafka-python vectors, fuzzing."""

from __future__ import annotations

import struct

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from logmq.errors import ProtocolError, UnsupportedVersionError
from logmq.protocol import (
    SUPPORTED_VERSIONS,
    FrameBuffer,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    encode_response_chunks,
    peek_header,
)
from logmq.protocol._schemas import SCHEMAS
from logmq.protocol.codec import API_NAMES
from logmq.protocol.consumer import (
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)

_INTS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def _in(v, rng):
    return rng is not None and rng[0] <= v <= rng[1]


def _value(ftype, sub, version, nullable, flexible):
    if ftype.startswith("[]"):
        inner = _value(ftype[2:], sub, version, False, flexible)
        s = st.lists(inner, max_size=3)
        return st.one_of(st.none(), s) if nullable else s
    if ftype == "struct":
        return _struct(sub, version, flexible)
    if ftype in _INTS:
        b = _INTS[ftype]
        s = st.integers(-(2 ** (b - 1)), 2 ** (b - 1) - 1)
    elif ftype == "uint16":
        s = st.integers(0, 2**16 - 1)
    elif ftype == "uint32":
        s = st.integers(0, 2**32 - 1)
    elif ftype == "float64":
        s = st.floats(allow_nan=False)
    elif ftype == "bool":
        s = st.booleans()
    elif ftype == "string":
        s = st.text(max_size=12)
    elif ftype in ("bytes", "records"):
        s = st.binary(max_size=30)
        nullable = nullable or ftype == "records"
    elif ftype == "uuid":
        s = st.binary(min_size=16, max_size=16)
    else:  # pragma: no cover
        raise AssertionError(ftype)
    return st.one_of(st.none(), s) if nullable else s


def _struct(fields, version, flexible):
    parts = {}
    for name, ftype, versions, nullable_v, tag, tagged_v, _default, sub in fields:
        if tag is not None:
            if not flexible or not _in(version, tagged_v):
                continue
        elif not _in(version, versions):
            continue
        parts[name] = _value(ftype, sub, version, _in(version, nullable_v), flexible)
    return st.fixed_dictionaries(parts)


CASES = [(api, v) for api, (lo, hi) in sorted(SUPPORTED_VERSIONS.items())
         for v in range(lo, hi + 1)]


def _body(api, v, kind):
    s = SCHEMAS[API_NAMES[api] + kind]
    flexible = s["flexible"] is not None and v >= s["flexible"]
    return _struct(s["fields"], v, flexible)


@pytest.mark.parametrize(("api", "version"), CASES,
                         ids=[f"{API_NAMES[a]}-v{v}" for a, v in CASES])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_advertised_version_roundtrips(api, version, data):
    req = data.draw(_body(api, version, "Request"))
    frame = encode_request(api, version, 42, data.draw(st.one_of(st.none(), st.text(max_size=8))),
                           req)
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    decoded = decode_request(frame[4:])
    assert decoded.header.api_key == api and decoded.header.correlation_id == 42
    assert decoded.body == req
    resp = data.draw(_body(api, version, "Response"))
    out = encode_response(api, version, 43, resp)
    corr, body = decode_response(api, version, out[4:])
    assert corr == 43 and body == resp


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200), api=st.sampled_from(sorted(SUPPORTED_VERSIONS)),
       version=st.integers(0, 12))
def test_random_bytes_raise_only_protocol_errors(raw, api, version):
    header = struct.pack(">hhi", api, version, 1) + b"\x00\x01x"
    for data in (raw, header + raw):
        try:
            decode_request(data)
        except ProtocolError:
            pass
    try:
        decode_response(api, min(max(version, SUPPORTED_VERSIONS[api][0]),
                                 SUPPORTED_VERSIONS[api][1]), raw)
    except ProtocolError:
        pass
    fb = FrameBuffer(max_frame_size=1 << 16)
    try:
        fb.feed(raw)
        while fb.next_frame() is not None:
            pass
    except ProtocolError:
        pass


@pytest.mark.parametrize(("api", "version"), [(0, 8), (1, 11), (3, 8), (11, 5), (19, 4)])
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_truncated_frames_raise_protocol_error(api, version, data):
    body = data.draw(_body(api, version, "Request"))
    frame = encode_request(api, version, 1, "c", body)[4:]
    for cut in range(0, len(frame) - 1, max(1, len(frame) // 40)):
        with pytest.raises(ProtocolError):
            decode_request(frame[:cut])


def test_unknown_api_and_version_are_typed_errors_but_peekable():
    frame = struct.pack(">hhi", 999, 0, 5) + b"\xff\xff"
    with pytest.raises(UnsupportedVersionError):
        decode_request(frame)
    assert peek_header(frame).correlation_id == 5
    v5 = encode_request(18, 5, 9, "x", {"client_software_name": "a",
                                        "client_software_version": "1"})[4:]
    v6 = v5[:2] + struct.pack(">h", 6) + v5[4:]  # a version newer than any schema
    assert peek_header(v6).api_version == 6
    with pytest.raises(UnsupportedVersionError):
        decode_request(v6)  # advertised ApiVersions is 0-5; the server answers v0 itself


def test_frame_buffer():
    frames = [encode_request(18, 2, i, "c", {}) for i in range(3)]
    fb2 = FrameBuffer()
    fb2.feed(b"".join(frames))
    assert [peek_header(fb2.next_frame()).correlation_id for _ in range(3)] == [0, 1, 2]
    assert fb2.next_frame() is None
    small = FrameBuffer(max_frame_size=100)
    with pytest.raises(ProtocolError):
        small.feed(struct.pack(">i", 101))  # refused before any body byte arrives
    with pytest.raises(ProtocolError):
        FrameBuffer().feed(struct.pack(">i", -1))


def test_frames_fed_byte_by_byte_come_out_whole():
    frames = [encode_request(3, 8, i, "c", {"topics": None}) for i in range(4)]
    fb = FrameBuffer()
    got = []
    for b in b"".join(frames):
        fb.feed(bytes([b]))
        while (f := fb.next_frame()) is not None:
            got.append(f)
    assert [decode_request(f).header.correlation_id for f in got] == [0, 1, 2, 3]


def test_response_chunks_keep_opaque_records_in_place():
    class Slice:
        def __len__(self):
            return 10

    body = {"responses": [{"topic": "t", "partitions": [
        {"partition_index": 0, "records": Slice()}]}]}
    chunks = encode_response_chunks(1, 11, 7, body)
    assert len(chunks) == 2 and isinstance(chunks[1], Slice)  # records end the v11 body
    total = sum(len(c) for c in chunks)
    assert struct.unpack(">i", chunks[0][:4])[0] == total - 4


# ---------------------------------------------------------------- kafka-python vectors
def test_requests_encoded_by_kafka_python_decode_here():
    from kafka.protocol.old.api_versions import ApiVersionsRequest
    from kafka.protocol.old.group import JoinGroupRequest
    from kafka.protocol.old.metadata import MetadataRequest

    def frame(req, corr=3):
        req.with_header(correlation_id=corr, client_id="kp")
        return req.encode(header=True)

    m = MetadataRequest[5](topics=["a", "b"], allow_auto_topic_creation=False)
    dec = decode_request(frame(m))
    assert dec.header.client_id == "kp" and dec.header.correlation_id == 3
    assert [t["name"] for t in dec.body["topics"]] == ["a", "b"]
    assert dec.body["allow_auto_topic_creation"] is False
    j = JoinGroupRequest[2]("g", 10000, 30000, "", "consumer", [("range", b"meta")])
    body = decode_request(frame(j)).body
    assert (body["group_id"], body["rebalance_timeout_ms"]) == ("g", 30000)
    assert body["protocols"] == [{"name": "range", "metadata": b"meta"}]
    assert decode_request(frame(ApiVersionsRequest[1]())).header.api_key == 18


def test_responses_encoded_here_decode_in_kafka_python():
    from kafka.protocol.old.metadata import MetadataResponse

    body = {"brokers": [{"node_id": 0, "host": "h", "port": 9, "rack": None}],
            "cluster_id": "c", "controller_id": 0,
            "topics": [{"error_code": 0, "name": "t", "is_internal": False, "partitions": [
                {"error_code": 0, "partition_index": 0, "leader_id": 0, "leader_epoch": 0,
                 "replica_nodes": [0], "isr_nodes": [0], "offline_replicas": []}]}]}
    raw = encode_response(3, 5, 1, body)[8:]  # size prefix and correlation id off
    resp = MetadataResponse[5].decode(raw)
    assert resp.brokers[0][1] == "h"
    assert resp.topics[0][1] == "t"


def test_consumer_protocol_roundtrip_and_newer_versions():
    sub = encode_subscription(["a", "b"], b"u", {"a": [0, 1]}, version=1)
    d = decode_subscription(sub)
    assert d["topics"] == ["a", "b"] and d["user_data"] == b"u"
    assert d["owned_partitions"] == {"a": [0, 1]}
    v3 = encode_subscription(["x"], None, {}, version=3, generation_id=4, rack_id="r1")
    assert decode_subscription(v3)["rack_id"] == "r1"
    asg = encode_assignment({"a": [2, 3]}, b"x")
    assert decode_assignment(asg)["partitions"] == {"a": [2, 3]}
    assert decode_assignment(b"")["partitions"] == {}
    from kafka.protocol.old.consumer_protocol import ConsumerProtocolMemberAssignment_v0

    kp = ConsumerProtocolMemberAssignment_v0(0, [("t", [1, 2])], b"").encode()
    assert decode_assignment(kp)["partitions"] == {"t": [1, 2]}
    with pytest.raises(ProtocolError):
        decode_subscription(sub[:5])
