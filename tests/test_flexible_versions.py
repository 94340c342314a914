"""Issue 18.1: logmq advertises the versions Apache Kafka 4.4 serves, and ApiVersions v3-v5.

KAFKA_4_4 is what a Kafka 4.4.0 broker answered to ApiVersions (tests/oracle/
test_flexible_oracle.py asks a real one and compares with this table), for the APIs logmq
implements. Maxima must be equal: a client speaks its highest common version, so serving a
lower one means clients exercise code paths Kafka 4.4 users do not. Minima may be higher
than Kafka's where Kafka advertises versions it then refuses (Produce v0-2, KAFKA-18659).
"""

from __future__ import annotations

import struct

import flexible_util as fx

from logmq.kafka_codes import ErrorCode as E
from logmq.protocol import SUPPORTED_VERSIONS, decode_response, encode_request
from logmq.protocol.codec import SCHEMAS, _schema

broker, server, c = fx.broker, fx.server, fx.c  # the fixtures

#: Apache Kafka 4.4.0's ApiVersions answer (single KRaft broker), for the APIs logmq serves
KAFKA_4_4: dict[int, tuple[int, int]] = {
    0: (0, 13), 1: (4, 18), 2: (1, 11), 3: (0, 13), 8: (2, 10), 9: (1, 10), 10: (0, 6),
    11: (0, 9), 12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 6), 16: (0, 5), 18: (0, 5),
    19: (2, 7), 20: (1, 6), 21: (0, 2), 22: (0, 5), 32: (1, 4), 33: (0, 2), 35: (1, 5),
    37: (0, 3), 42: (0, 3), 43: (0, 2), 44: (0, 1), 47: (0, 0), 60: (0, 2), 61: (0, 0),
    75: (0, 0),
}
#: minima above Kafka's, and why
RAISED_MINIMUM = {0: "Produce v0-2 are advertised by Kafka 4 only for old librdkafka's "
                     "version check and refused when used (KAFKA-18659); logmq does not "
                     "advertise what it refuses"}


def test_every_implemented_api_advertises_kafka_4_4s_maximum():
    for api in KAFKA_4_4:
        assert api in SUPPORTED_VERSIONS, f"api {api} is implemented but not advertised"
    for api, (lo, hi) in SUPPORTED_VERSIONS.items():
        if api not in KAFKA_4_4:
            continue  # an API a newer part of logmq added: its own tests pin its versions
        k_lo, k_hi = KAFKA_4_4[api]
        assert hi == k_hi, f"api {api}: logmq max v{hi}, Kafka 4.4 max v{k_hi}"
        assert lo == k_lo or (api in RAISED_MINIMUM and lo > k_lo), (api, lo, k_lo)
        s = _schema(api, "Request")
        assert s["valid"][0] <= lo and hi <= s["valid"][1]  # the codec has every layout


def test_flexible_versions_use_request_header_v2_and_response_header_v1(c):
    """Metadata v13 is flexible: the response carries the header's empty tag buffer after the
    correlation id; ApiVersions never does (KIP-511: clients parse it before they know)."""
    for api, v, body in [(3, 13, {"topics": None}), (18, 4, {"client_software_name": "t",
                                                            "client_software_version": "1"})]:
        c.corr += 1
        c.sock.sendall(encode_request(api, v, c.corr, "raw", body))
        frame = c.read_frame()
        assert struct.unpack_from(">i", frame)[0] == c.corr
        if api == 18:
            assert struct.unpack_from(">h", frame, 4)[0] == 0  # error code right away
        else:
            assert frame[4] == 0  # header tagged fields: none
        assert decode_response(api, v, frame)[1]
    assert SCHEMAS["MetadataRequest"]["flexible"] == 9


def test_api_versions_v3_records_the_client_software(c, server):
    r = c.call(18, 3, {"client_software_name": "my-client", "client_software_version": "1.2.3"})
    assert r["error_code"] == 0
    got = {k["api_key"]: (k["min_version"], k["max_version"]) for k in r["api_keys"]}
    assert got == SUPPORTED_VERSIONS
    assert r["finalized_features_epoch"] == -1 and r["finalized_features"] == []
    sw = server.state(server.server.client_software)
    assert sw[("my-client", "1.2.3")] == 1


def test_api_versions_v3_refuses_a_malformed_software_name(c):
    """Kafka's rule (alphanumerics, '.', '-', starting and ending alphanumeric)."""
    r = c.call(18, 3, {"client_software_name": "bad name!", "client_software_version": "1"})
    assert r["error_code"] == E.INVALID_REQUEST and r["api_keys"] == []
    r = c.call(18, 3, {"client_software_name": "ok", "client_software_version": "-1"})
    assert r["error_code"] == E.INVALID_REQUEST


def test_api_versions_v5_checks_cluster_and_node(c):
    """KIP-1242: a client that names another cluster or node gets REBOOTSTRAP_REQUIRED (129)
    and no API list, as Kafka 4.4 answers."""
    cluster = c.call(3, 12, {"topics": []})["cluster_id"]
    sw = {"client_software_name": "t", "client_software_version": "1"}
    assert c.call(18, 5, {**sw, "cluster_id": cluster, "node_id": 0})["error_code"] == 0
    assert c.call(18, 5, {**sw, "cluster_id": None, "node_id": -1})["error_code"] == 0
    for cid, node in [("AAAAAAAAAAAAAAAAAAAAAA", 0), (cluster, 5)]:
        r = c.call(18, 5, {**sw, "cluster_id": cid, "node_id": node})
        assert r["error_code"] == 129 and r["api_keys"] == []


def test_api_versions_newer_than_ours_gets_the_v0_answer_kip_511(c):
    v5 = encode_request(18, 5, 77, "raw", {"client_software_name": "t",
                                           "client_software_version": "1"})
    c.sock.sendall(v5[:6] + struct.pack(">h", 9) + v5[8:])
    corr, body = decode_response(18, 0, c.read_frame())
    assert corr == 77 and body["error_code"] == E.UNSUPPORTED_VERSION
    assert {k["api_key"]: (k["min_version"], k["max_version"])
            for k in body["api_keys"]} == SUPPORTED_VERSIONS


def test_describe_cluster_all_versions(c, server):
    cluster = c.call(3, 13, {"topics": []})["cluster_id"]
    for v in (0, 1, 2):
        r = c.call(60, v, {"include_cluster_authorized_operations": True, "endpoint_type": 1,
                           "include_fenced_brokers": True})
        assert r["error_code"] == 0 and r["cluster_id"] == cluster
        assert r["controller_id"] == 0
        assert r["brokers"] == [{"broker_id": 0, "host": "127.0.0.1", "port": server.port,
                                 "rack": None, **({"is_fenced": False} if v >= 2 else {})}]
        assert r["cluster_authorized_operations"] == 8096
    r = c.call(60, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 2})
    assert r["error_code"] == E.MISMATCHED_ENDPOINT_TYPE and r["brokers"] == []
    r = c.call(60, 0, {"include_cluster_authorized_operations": False})
    assert r["cluster_authorized_operations"] == -2147483648


def test_trailing_bytes_after_a_request_body_are_ignored_as_kafka_does(c):
    """librdkafka's all-topics Metadata v9+ ends with unused bytes of a reserved count."""
    frame = encode_request(3, 13, 5, "rdkafka", {"topics": None})
    frame = struct.pack(">i", len(frame) - 4 + 3) + frame[4:] + b"\x01\x00\x00"
    c.sock.sendall(frame)
    corr, body = decode_response(3, 13, c.read_frame())
    assert corr == 5 and body["error_code"] == 0 and body["brokers"]
