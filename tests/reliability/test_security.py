"""Access control on the real broker (issue 22, scenario 7): a broker of the test's own that
takes clients on SASL_SSL only (SCRAM-SHA-512 over TLS, certificates made here) with ACLs.
The worker, a replay, tail and audit reach it with their credentials (from the environment or
their flags) and do their work; a client without credentials cannot connect, and one that
authenticates but holds no ACL can neither read the parameters nor write quotes. No password
reaches a log, the metrics or a dead letter; the worker's HTTP endpoint listens on loopback."""

import asyncio
import datetime as dt
import ipaddress
import os
import secrets
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from schemas import Params, decode
from streams.access import KafkaSecurity
from streams.feed.send import ensure_topics
from streams.local.broker import BrokerConfig, LocalKafka, Secured, free_port
from streams.settings import Settings
from tests.streams.test_stream_e2e import TICKS, VOLSTREAM, worker

pytestmark = pytest.mark.kafka


def _certificate(subject: str, key, issuer: str, signer, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:  # the broker's: it answers on 127.0.0.1
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_certificates(where: Path, key_password: str) -> tuple[Path, Path]:
    """A CA and the broker's key and certificate signed by it: (keystore, truststore), a
    PKCS#12 file and a PEM one."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("volstream test CA", ca_key, "volstream test CA", ca_key, ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate("volstream-broker", key, "volstream test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    keystore, truststore = where / "broker.p12", where / "ca.pem"
    keystore.write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", key, cert, [ca], serialization.BestAvailableEncryption(key_password.encode())
    ))  # fmt: skip
    truststore.write_bytes(ca.public_bytes(pem))
    return keystore, truststore


def _fails(coro) -> BaseException:
    """The error ``coro`` ends with (it must end with one)."""
    try:
        asyncio.run(coro)
    except (KafkaError, OSError) as exc:
        return exc
    raise AssertionError("it was let through")


async def _read(security: KafkaSecurity, bootstrap: str, topic: str, want: int = 1) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", request_timeout_ms=10_000,
                                **security.options())  # fmt: skip
    await consumer.start()
    try:
        out = []
        for _ in range(10):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out += records
            if len(out) >= want:
                break
        return out
    finally:
        await consumer.stop()


async def _write(security: KafkaSecurity, bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                **security.options())  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"EURUSD")
    finally:
        await producer.stop()


def test_only_clients_with_credentials_and_acls_read_and_write(tmp_path):
    passwords = {name: secrets.token_hex(16) for name in ("admin", "worker", "intruder")}
    key_password = secrets.token_hex(16)
    keystore, truststore = make_certificates(tmp_path, key_password)
    secured = Secured(keystore, truststore, key_password, passwords)
    broker = LocalKafka(BrokerConfig(state_dir=tmp_path / "kafka", port=free_port(),
                                     controller_port=free_port(), secured=secured))  # fmt: skip
    bootstrap = broker.start()
    prefix = f"sec-{uuid.uuid4().hex[:8]}"
    files = {}
    for name, password in passwords.items():
        files[name] = tmp_path / f"{name}.password"
        files[name].write_text(password + "\n")
    as_user = lambda name: KafkaSecurity("SASL_SSL", username=name, password=passwords[name],  # noqa: E731
                                         cafile=str(truststore))  # fmt: skip
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "worker",
           "KAFKA_SASL_PASSWORD_FILE": str(files["worker"]), "KAFKA_SSL_CAFILE": str(truststore),
           "VOLSTREAM_TOPIC_PREFIX": prefix}  # fmt: skip
    flags = ["--bootstrap", bootstrap, "--security-protocol", "SASL_SSL", "--sasl-username",
             "worker", "--sasl-password-file", str(files["worker"]), "--ssl-cafile",
             str(truststore)]  # fmt: skip
    try:
        broker.grant("User:worker", topics=(prefix,), groups=(prefix,))
        settings = Settings(bootstrap=bootstrap, topic_prefix=prefix, security=as_user("worker"))
        asyncio.run(ensure_topics(settings))
        port, log = free_port(), tmp_path / "worker.log"
        with worker(bootstrap, prefix, f"{prefix}-g", tmp_path, log, port, more=env) as w:
            # a replay from its flags alone (none of the KAFKA_SASL_* variables)
            replay = subprocess.run(
                [str(VOLSTREAM), "replay", "--max", "--quiet", *flags, str(TICKS)],
                env=os.environ | {"VOLSTREAM_TOPIC_PREFIX": prefix}, capture_output=True,
                text=True, timeout=300,
            )  # fmt: skip
            assert replay.returncode == 0, replay.stdout + replay.stderr
            asyncio.run(asyncio.wait_for(_wait_params(as_user("worker"), bootstrap, prefix), 240))
            tail = subprocess.run(
                [str(VOLSTREAM), "tail", "params", "--from-beginning", "--idle", "3", "--json",
                 *flags], env=os.environ | {"VOLSTREAM_TOPIC_PREFIX": prefix},
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert tail.returncode == 0 and tail.stdout.count('"type": "params"') >= 13, tail
            audit = subprocess.run(
                [str(VOLSTREAM), "audit", "show", *flags], env=os.environ | {
                    "VOLSTREAM_TOPIC_PREFIX": prefix}, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert audit.returncode == 0 and "EURUSD" in audit.stdout, audit
            # a junk message written by the worker's user: dead-lettered, no secret in it
            asyncio.run(_write(as_user("worker"), bootstrap, f"{prefix}.quotes", b"junk"))
            letters = asyncio.run(_read(as_user("worker"), bootstrap, f"{prefix}.dlq"))
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            listening = _listening(port)
            assert w.poll() is None, log.read_text()[-3000:]
        # an authenticated user without ACLs: neither the parameters nor the quotes
        refused = _fails(_read(as_user("intruder"), bootstrap, f"{prefix}.params"))
        assert isinstance(refused, TopicAuthorizationFailedError), refused
        refused = _fails(_write(as_user("intruder"), bootstrap, f"{prefix}.quotes", b"x"))
        assert isinstance(refused, TopicAuthorizationFailedError), refused
        # no credentials, a wrong password, or no TLS: not even a connection
        for who in (KafkaSecurity("SSL", cafile=str(truststore)),
                    KafkaSecurity("SASL_SSL", username="worker", password="guess",
                                  cafile=str(truststore)),
                    KafkaSecurity()):  # fmt: skip
            _fails(_read(who, bootstrap, f"{prefix}.params"))
    finally:
        broker.stop()
    said = log.read_text() + replay.stdout + replay.stderr + tail.stderr + audit.stderr + metrics
    said += "".join(r.value.decode("latin-1") for r in letters)
    assert letters and not any(p in said for p in passwords.values()), "a password was said"
    assert listening == ["127.0.0.1"], listening


async def _wait_params(security: KafkaSecurity, bootstrap: str, prefix: str) -> None:
    """Until the worker published parameters of every smile of the sample (13 keys)."""
    keys: set[str] = set()
    while len(keys) < 13:
        for r in await _read(security, bootstrap, f"{prefix}.params", 1000):
            keys.add(decode(r.value, Params).key)


def _listening(port: int) -> list[str]:
    """The addresses a TCP socket listens on at ``port`` (IPv4, /proc/net/tcp)."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, at = local.split(":")
        if state == "0A" and int(at, 16) == port:  # LISTEN
            out.append(str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])))
    return out
