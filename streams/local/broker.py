"""A local Apache Kafka 4.x broker (KRaft, one combined broker+controller, loopback only).

For the demo, the tests and development on machines without Docker or a Kafka install: the
broker's jars come from Maven Central (``compose/kafka/pom.xml``, cached once per version),
KRaft storage is formatted with ``kafka.tools.StorageTool format --standalone``, and
``kafka.Kafka`` runs with ``compose/kafka/server.properties`` in its own process session.
Readiness means the broker answered a Metadata request. Data, logs, the rendered config and
the pid file live under one state directory.

>>> broker = LocalKafka(BrokerConfig(state_dir=Path("/tmp/vs-kafka")))  # doctest: +SKIP
>>> broker.start()                                                       # doctest: +SKIP
'127.0.0.1:9092'
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import signal
import socket
import ssl
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

__all__ = [
    "BrokerConfig",
    "BrokerError",
    "LocalKafka",
    "Secured",
    "free_port",
    "metadata",
    "resolve_bootstrap",
]

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "kafka"
KAFKA_VERSION = "4.1.1"
RUNTIME = 2  # the jars compose/kafka/pom.xml lists: a change fetches them again
_TOOL_JVM = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")  # short-lived tools


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def _default_state_dir() -> Path:
    return Path(os.environ.get("VOLSTREAM_STATE_DIR", Path.home() / ".volstream")) / "kafka"


def _default_cache_dir() -> Path:
    root = Path(os.environ.get("VOLSTREAM_CACHE_DIR", Path.home() / ".cache" / "volstream"))
    return root / f"kafka-{KAFKA_VERSION}-{RUNTIME}"


@dataclass(frozen=True)
class Secured:
    """A broker that takes clients on SASL_SSL only (SCRAM-SHA-512 over TLS) and lets them do
    only what ACLs allow. ``keystore``: the broker's private key and certificate chain, a
    PKCS#12 file sealed with ``key_password`` (Java reads no encrypted PEM key: "PBES2
    SecretKeyFactory not available"), whose certificate names ``host`` (an IP address SAN) and
    serves its controller listener too (mutual TLS: its subject is a super user);
    ``truststore``: the CA that signed it (PEM). ``users``: SCRAM users (name -> password),
    ``admin`` among them: the super user the broker and :meth:`LocalKafka.grant` use."""

    keystore: Path
    truststore: Path
    key_password: str = field(repr=False)
    users: dict[str, str] = field(repr=False)
    subject: str = "CN=volstream-broker"  # the keystore certificate's subject (its principal)
    admin: str = "admin"

    def __post_init__(self) -> None:
        if self.admin not in self.users:
            raise BrokerError(f"the admin user {self.admin!r} needs a password in users")

    @property
    def _jaas(self) -> str:
        """The admin's SCRAM login, as the broker and a Java client both write it."""
        return (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{self.admin}" password="{self.users[self.admin]}";')  # fmt: skip

    def properties(self) -> str:
        """What server.properties says more (later lines win over the template's)."""
        return "\n".join([
            "listeners=SASL_SSL://${host}:${port},CONTROLLER://${host}:${controller_port}",
            "advertised.listeners=SASL_SSL://${host}:${port}",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={self._jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self.key_password}",
            f"ssl.key.password={self.key_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.truststore}",
            "listener.name.controller.ssl.client.auth=required",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{self.admin};User:{self.subject}",
            "allow.everyone.if.no.acl.found=false",
        ]) + "\n"  # fmt: skip

    def client_properties(self) -> str:
        """A Java client's properties as ``admin`` (the ACL tool's)."""
        return "\n".join(["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512",
                          f"sasl.jaas.config={self._jaas}", "ssl.truststore.type=PEM",
                          f"ssl.truststore.location={self.truststore}"]) + "\n"  # fmt: skip


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker lives and listens. ``host`` must be a loopback address."""

    state_dir: Path = field(default_factory=_default_state_dir)
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    cache_dir: Path = field(default_factory=_default_cache_dir)
    secured: Secured | None = None  # SASL_SSL and ACLs (None: plaintext, anyone may do anything)

    def __post_init__(self) -> None:
        host = "127.0.0.1" if self.host == "localhost" else self.host
        if not ipaddress.ip_address(host).is_loopback:
            raise BrokerError(f"the local broker listens on loopback only, not {self.host}")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def metadata(host: str, port: int, timeout: float = 2.0) -> dict:
    """Send a Metadata (v4) request; return the brokers and cluster id the broker reports.

    A plain socket, no client library: readiness checks stay cheap and side-effect free.
    Raises ``OSError`` when nothing answers.
    """
    client_id = b"volstream-probe"
    # header v1: api_key 3 (Metadata), version 4, correlation id, client id; body: all topics
    # (null array) and allow_auto_topic_creation = false
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read(sock, 4))[0]
        data = _read(sock, size)
    correlation, _throttle, n_brokers = struct.unpack_from(">iii", data, 0)
    if correlation != 7:
        raise OSError("unexpected Metadata response")
    offset, brokers = 12, []
    for _ in range(n_brokers):
        node, host_len = struct.unpack_from(">ih", data, offset)
        offset += 6
        broker_host = data[offset : offset + host_len].decode()
        offset += host_len
        broker_port, rack_len = struct.unpack_from(">ih", data, offset)
        offset += 6 + max(rack_len, 0)
        brokers.append({"node_id": node, "host": broker_host, "port": broker_port})
    cluster_len = struct.unpack_from(">h", data, offset)[0]
    cluster_id = data[offset + 2 : offset + 2 + cluster_len].decode() if cluster_len >= 0 else None
    return {"brokers": brokers, "cluster_id": cluster_id}


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on now (for a broker, a controller or a metrics
    endpoint that must not meet another's)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _read(sock: socket.socket, n: int) -> bytes:
    chunks = b""
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return chunks


def _cluster_id() -> str:
    """A random KRaft cluster id that does not start with '-'.

    The storage tool's argument parser reads an id starting with '-' as an option (one in 64
    random ids, and a failed format); Kafka's own Uuid.randomUuid draws again for the same reason.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """Fetch, format, start, probe and stop one local broker."""

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()
        state = self.config.state_dir
        self.data_dir = state / "data"
        self.log_dir = state / "logs"
        self.properties = state / "server.properties"
        self.pid_file = state / "broker.pid"

    # -- jars -----------------------------------------------------------------------------
    @property
    def libs(self) -> Path:
        return self.config.cache_dir / "libs"

    def fetch(self) -> Path:
        """Copy the broker's runtime jars from Maven Central into the cache (once)."""
        done = self.config.cache_dir / ".complete"
        if done.exists():
            return self.libs
        staging = self.config.cache_dir / f"libs.{os.getpid()}"
        self.config.cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(COMPOSE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise BrokerError(
                "Maven (mvn) is not installed: it fetches the broker's jars"
            ) from None
        if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"fetching Kafka {KAFKA_VERSION} with Maven failed:\n{proc.stdout}{proc.stderr}"
            )
        if not done.exists():  # another process may have won the race
            if self.libs.exists():
                for jar in self.libs.iterdir():
                    jar.unlink()
                self.libs.rmdir()
            staging.rename(self.libs)
            done.touch()
        return self.libs

    def _java(self, main: str, *args: str, jvm: tuple[str, ...]) -> list[str]:
        return [
            "java",
            *jvm,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={COMPOSE / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    # -- storage --------------------------------------------------------------------------
    def _render_properties(self) -> None:
        text = (COMPOSE / "server.properties").read_text()
        c = self.config
        if c.secured is not None:
            text += "\n# secured: SASL_SSL and ACLs (streams.local.broker.Secured)\n"
            text += c.secured.properties()
        template = Template(text)
        self.properties.write_text(
            template.substitute(
                host=c.host,
                port=c.port,
                controller_port=c.controller_port,
                data_dir=self.data_dir,
            )
        )
        self.properties.chmod(0o600)  # a secured broker's passwords are in it

    def format(self) -> None:
        """Format KRaft storage unless it already is (data survive restarts)."""
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = _cluster_id()
        proc = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                *self._scram_users(),
                "-c",
                str(self.properties),
                jvm=_TOOL_JVM,
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{proc.stdout}{proc.stderr}")

    def _scram_users(self) -> list[str]:
        secured = self.config.secured
        if secured is None:
            return []
        return [arg for name, password in secured.users.items()
                for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]  # fmt: skip

    def grant(self, principal: str, topics: tuple[str, ...] = (), groups: tuple[str, ...] = (),
              operations: tuple[str, ...] = ("All",)) -> None:  # fmt: skip
        """Allow ``principal`` (``User:NAME``) ``operations`` on the topics and groups whose
        names start with ``topics`` and ``groups`` (a secured broker's ACLs, set as its admin
        with Kafka's AclCommand)."""
        secured = self.config.secured
        if secured is None:
            raise BrokerError("ACLs need a secured broker (BrokerConfig.secured)")
        admin = self.config.state_dir / "admin.properties"
        admin.write_text(secured.client_properties())
        admin.chmod(0o600)
        args = ["--bootstrap-server", self.config.bootstrap, "--command-config", str(admin),
                "--add", "--allow-principal", principal, "--resource-pattern-type", "prefixed",
                *(a for op in operations for a in ("--operation", op)),
                *(a for t in topics for a in ("--topic", t)),
                *(a for g in groups for a in ("--group", g))]  # fmt: skip
        proc = subprocess.run(self._java("org.apache.kafka.tools.AclCommand", *args,
                                         jvm=_TOOL_JVM), capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        if proc.returncode != 0:
            raise BrokerError(f"setting ACLs failed:\n{proc.stdout}{proc.stderr}")

    # -- process --------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid when its process is alive."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def answers(self) -> bool:
        """The broker answers a Metadata request (a secured one: completes a TLS handshake)."""
        c = self.config
        try:
            if c.secured is None:
                return bool(metadata(c.host, c.port)["brokers"])
            context = ssl.create_default_context(cafile=str(c.secured.truststore))
            with (
                socket.create_connection((c.host, c.port), timeout=2.0) as raw,
                context.wrap_socket(raw, server_hostname=c.host),
            ):
                return True
        except OSError:  # ssl.SSLError included
            return False

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker (fetching and formatting first if needed); return its bootstrap."""
        if self.pid() is not None and self.answers():
            return self.config.bootstrap
        for port in (self.config.port, self.config.controller_port):
            with socket.socket() as s:
                if s.connect_ex((self.config.host, port)) == 0:
                    raise BrokerError(f"port {self.config.host}:{port} is already in use")
        for d in (self.data_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.fetch()
        self._render_properties()
        self.format()
        with (self.log_dir / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                self._java(
                    "kafka.Kafka",
                    str(self.properties),
                    jvm=(f"-Xms{self.config.heap}", f"-Xmx{self.config.heap}", "-XX:+UseG1GC"),
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI call that started it
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with status {proc.returncode}:\n{self._log_tail()}"
                )
            if self.answers():
                return self.config.bootstrap
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout:.0f} s:\n{self._log_tail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM: a controlled shutdown; SIGKILL after ``timeout``)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict:
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "answering": pid is not None and self.answers(),
            "bootstrap": self.config.bootstrap,
            "state_dir": str(self.config.state_dir),
            "log": str(self.log_dir / "server.log"),
        }

    def _log_tail(self, lines: int = 20) -> str:
        for name in ("server.log", "stdout.log"):
            path = self.log_dir / name
            if path.exists() and path.stat().st_size:
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child (else it would linger as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def resolve_bootstrap(config: BrokerConfig | None = None) -> str:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set, else the local broker (started if needed)."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env
    return LocalKafka(config).start()
