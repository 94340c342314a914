"""Kafka-style listeners: parsing, the config table (flags, TOML, env), advertised addresses per
listener, and the secure-by-default refusal of unauthenticated non-loopback ports."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

import logmq
from logmq.cli import cli
from logmq.config_load import load_broker_config
from logmq.errors import ConfigError
from logmq.server.listeners import (
    apply_advertised,
    check_secure,
    is_loopback,
    listeners_from_config,
    parse_listeners,
    principal_from_cert,
)
from tests.tls_util import SecureServer, make_pki
from tests.wire_util import RawClient

META = {"topics": None, "allow_auto_topic_creation": False,
        "include_topic_authorized_operations": False}


def test_bare_host_port_is_plaintext():
    [lst] = parse_listeners("127.0.0.1:9092")
    assert (lst.name, lst.host, lst.port) == ("PLAINTEXT", "127.0.0.1", 9092)
    two = parse_listeners("PLAINTEXT://127.0.0.1:9092, sasl_ssl://[::1]:9093")
    assert [(x.name, x.host, x.port) for x in two] == [
        ("PLAINTEXT", "127.0.0.1", 9092), ("SASL_SSL", "::1", 9093)]


@pytest.mark.parametrize("text, msg", [
    ("KERBEROS://h:1", "unknown listener"),
    ("PLAINTEXT://h:1,PLAINTEXT://h:2", "given twice"),
    ("SSL://nohost", "expected [PROTOCOL://]HOST:PORT"),
])
def test_bad_listeners_are_one_line_errors(text, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[")):
        parse_listeners(text)


def test_advertised_listeners_map_by_name():
    lst = parse_listeners("PLAINTEXT://127.0.0.1:0,SASL_SSL://0.0.0.0:0")
    out = apply_advertised(lst, "SASL_SSL://kafka.example.com:19093")
    assert [(x.advertised_host, x.advertised_port) for x in out] == [
        (None, None), ("kafka.example.com", 19093)]
    with pytest.raises(ConfigError, match="SSL is advertised but not a listener"):
        apply_advertised(lst, "SSL://x:1")
    # logmq's HOST[:PORT]: the PLAINTEXT listener's port, the host for every listener
    out = apply_advertised(lst, "pub.example.com:1")
    assert [(x.advertised_host, x.advertised_port) for x in out] == [
        ("pub.example.com", 1), ("pub.example.com", None)]


def test_listeners_from_toml_env_and_flags(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('listeners = ["PLAINTEXT://127.0.0.1:9092", "SASL_SSL://127.0.0.1:9093"]\n'
                 '"advertised.listeners" = ["SASL_SSL://k.example.com:443"]\n'
                 'sasl_mechanisms = ["SCRAM-SHA-512"]\n')
    cfg = load_broker_config(file=f)
    assert cfg.listen == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093"
    assert cfg.advertise == "SASL_SSL://k.example.com:443"
    cfg = load_broker_config(file=f, env={"LOGMQ_LISTEN": "SSL://127.0.0.1:1"})
    assert cfg.listen == "SSL://127.0.0.1:1" and cfg.sources["listen"] == "env:LOGMQ_LISTEN"
    with pytest.raises(ConfigError, match="unknown listener 'FOO'"):
        load_broker_config({"listen": "FOO://h:1"})


def test_serve_listen_is_repeatable(tmp_path):
    r = CliRunner().invoke(cli, ["serve", "--data", str(tmp_path / "d"), "--print-config",
                                 "--listen", "PLAINTEXT://127.0.0.1:9092",
                                 "--listen", "SASL_SSL://0.0.0.0:9093"])
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if line.startswith("listen "))
    assert "PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093" in row
    assert "flag --listen" in row


def test_tls_listener_needs_a_certificate(tmp_path):
    cfg = load_broker_config({"listen": "SSL://127.0.0.1:0"})
    with pytest.raises(ConfigError, match="ssl_certfile: required"):
        listeners_from_config(cfg)
    cfg = load_broker_config({"listen": "SSL://127.0.0.1:0",
                              "ssl_certfile": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="ssl: cannot load"):
        listeners_from_config(cfg)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("::")
    assert not is_loopback("192.0.2.1")


@pytest.mark.parametrize("listen, ok", [
    ("0.0.0.0:9092", False),
    ("PLAINTEXT://127.0.0.1:9092", True),
    ("SASL_PLAINTEXT://0.0.0.0:9092", True),
    ("SASL_SSL://0.0.0.0:9092", True),
    ("PLAINTEXT://127.0.0.1:1,PLAINTEXT://0.0.0.0:2".replace("PLAINTEXT://0", "SSL://0"), False),
])
def test_unauthenticated_public_listeners_are_refused(listen, ok):
    lst = parse_listeners(listen)
    if ok:
        check_secure(lst, authorizer=False, allow_insecure=False)
    else:
        with pytest.raises(ConfigError, match="refusing to listen on .*--allow-insecure"):
            check_secure(lst, authorizer=False, allow_insecure=False)
        check_secure(lst, authorizer=False, allow_insecure=True)
        check_secure(lst, authorizer=True, allow_insecure=False)


def test_public_queue_port_is_refused():
    lst = parse_listeners("127.0.0.1:1")
    with pytest.raises(ConfigError, match="refusing queue_listen"):
        check_secure(lst, authorizer=True, allow_insecure=False, queue_listen=("0.0.0.0", 1))
    check_secure(lst, authorizer=False, allow_insecure=False, queue_listen=("127.0.0.1", 1))


def test_serve_refuses_public_plaintext_in_one_line(tmp_path):
    data = tmp_path / "d"
    r = CliRunner().invoke(cli, ["serve", "--data", str(data), "--listen", "0.0.0.0:0"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on PLAINTEXT://0.0.0.0:0" in lines[0]
    assert not data.exists()  # refused before anything was opened


def test_data_directory_and_lmdb_are_private(tmp_path):
    d = tmp_path / "private"
    with logmq.open(str(d), cleaner=False) as log:
        log.create_topic("t")
    assert stat.S_IMODE(os.stat(d).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(d / "meta").st_mode) & 0o077 == 0
    for name in os.listdir(d / "meta"):
        assert stat.S_IMODE(os.stat(d / "meta" / name).st_mode) & 0o177 == 0, name


def test_metadata_advertises_the_listener_the_client_came_in_on(tmp_path):
    with logmq.open(str(tmp_path / "d"), cleaner=False) as b, SecureServer(
            b, ["PLAINTEXT://127.0.0.1:0", "SSL://127.0.0.1:0"], make_pki(str(tmp_path / "k")),
            advertise="SSL://tls.example.com:19093") as s:
        host, port = s.server.addresses["PLAINTEXT"]
        c = RawClient(host, port)
        [broker] = c.call(3, 8, META)["brokers"]
        assert (broker["host"], broker["port"]) == (host, port)
        coord = c.call(10, 1, {"key": "g", "key_type": 0})
        assert (coord["host"], coord["port"]) == (host, port)
        ssl_port = s.server.addresses["SSL"][1]
        assert ssl_port != port
        import ssl

        ctx = ssl.create_default_context(cafile=str(tmp_path / "k" / "ca.pem"))
        c2 = RawClient(host, ssl_port)
        c2.sock = ctx.wrap_socket(c2.sock, server_hostname="localhost")
        [broker] = c2.call(3, 8, META)["brokers"]
        assert (broker["host"], broker["port"]) == ("tls.example.com", 19093)


def test_principal_from_certificate_subject_is_kafkas():
    cert = {"subject": ((("organizationName", "logmq tests"),),
                        (("organizationalUnitName", "eng"),),
                        (("commonName", "alice, the admin"),))}
    assert principal_from_cert(cert) == "User:CN=alice\\, the admin,OU=eng,O=logmq tests"
    assert principal_from_cert(None) == "User:ANONYMOUS"
