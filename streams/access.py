"""How every Kafka client of the project reaches a secured broker: TLS and SASL (SCRAM or
PLAIN), one place for the worker, the feeds (replay, simulate), tail, the report, playbook
``--stream``, audit and approvals. From the environment (``KAFKA_*``, beside
KAFKA_BOOTSTRAP_SERVERS) or each command's flags (``--security-protocol``, ...).

| variable | flag | meaning |
|---|---|---|
| ``KAFKA_SECURITY_PROTOCOL`` | ``--security-protocol`` | ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL`` |
| ``KAFKA_SASL_MECHANISM`` | ``--sasl-mechanism`` | ``SCRAM-SHA-512`` (default), ``SCRAM-SHA-256`` or ``PLAIN`` |
| ``KAFKA_SASL_USERNAME`` | ``--sasl-username`` | the client's user |
| ``KAFKA_SASL_PASSWORD_FILE`` | ``--sasl-password-file`` | a file holding its password (``KAFKA_SASL_PASSWORD``: the password itself, for containers; never a flag: a command line is visible to every user of the machine) |
| ``KAFKA_SSL_CAFILE`` | ``--ssl-cafile`` | the CA certificates (PEM) the broker's certificate is checked against (default: the system's) |
| ``KAFKA_SSL_CERTFILE``, ``KAFKA_SSL_KEYFILE`` | ``--ssl-certfile``, ``--ssl-keyfile`` | the client's own certificate and key (PEM), where the broker asks for one |

The password is never printed: it is left out of the settings' repr, and no log line, metric or
dead letter carries a setting.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MECHANISMS", "PROTOCOLS", "Kafka", "KafkaSecurity"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
Kafka = Mapping[str, Any]  # an aiokafka client's connection arguments: Settings.client()


@dataclass(frozen=True)
class KafkaSecurity:
    """A client's transport security and credentials (see the module doc)."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"security protocol {self.protocol!r}: one of {', '.join(PROTOCOLS)}")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"SASL mechanism {self.mechanism!r}: one of {', '.join(MECHANISMS)}")
        if self.sasl and not (self.username and self.password):
            raise ValueError(f"{self.protocol} needs a user and a password: set "
                             "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE (or the flags "
                             "--sasl-username and --sasl-password-file)")  # fmt: skip
        for name in ("cafile", "certfile", "keyfile"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"KAFKA_SSL_{name.upper()} {path}: no such file")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a client (None: no TLS): the broker's certificate checked against
        ``cafile`` (or the system's CAs), its host name too."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.cafile or None)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile or None)
        return context

    def options(self) -> dict[str, Any]:
        """The keyword arguments of an aiokafka client (consumer, producer, admin)."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        if self.sasl:
            out |= {"sasl_mechanism": self.mechanism, "sasl_plain_username": self.username,
                    "sasl_plain_password": self.password}  # fmt: skip
        return out

    def faust_credentials(self) -> Any:
        """The same for a faust app's ``broker_credentials`` (None: plaintext)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         ssl_context=self.ssl_context(),
                                         mechanism=self.mechanism)  # fmt: skip
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        password = env.get("KAFKA_SASL_PASSWORD", "")
        if env.get("KAFKA_SASL_PASSWORD_FILE"):
            password = read_password(env["KAFKA_SASL_PASSWORD_FILE"])
        return cls(
            protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            mechanism=env.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper(),
            username=env.get("KAFKA_SASL_USERNAME", ""),
            password=password,
            cafile=env.get("KAFKA_SSL_CAFILE", ""),
            certfile=env.get("KAFKA_SSL_CERTFILE", ""),
            keyfile=env.get("KAFKA_SSL_KEYFILE", ""),
        )


def read_password(path: str) -> str:
    """A password file's first line (a trailing newline is no part of it)."""
    try:
        return Path(path).read_text().splitlines()[0] if Path(path).stat().st_size else ""
    except OSError as exc:
        raise ValueError(f"KAFKA_SASL_PASSWORD_FILE {path}: {exc.strerror}") from None
