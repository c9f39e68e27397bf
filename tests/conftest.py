"""Shared test set-up: float64 JAX everywhere, as in production, and one real Kafka broker.

The broker is ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a testcontainers Kafka when a Docker
engine answers, else the project's own launcher (``streams/broker.py``) on free loopback ports
in a temporary state directory. Kafka tests never skip: no broker fails the run.
"""

import os
import socket

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker_kafka():
    """A testcontainers Kafka if a Docker engine answers, else None."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # no engine: the usual case here
        return None
    from testcontainers.kafka import KafkaContainer

    return KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    """Bootstrap servers of a real broker for the whole session."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    container = _docker_kafka()
    if container is not None:
        with container:
            yield container.get_bootstrap_server()
        return
    from streams.broker import BrokerConfig, BrokerError, LocalKafka

    broker = LocalKafka(
        BrokerConfig(
            state_dir=tmp_path_factory.mktemp("kafka"),
            port=free_port(),
            controller_port=free_port(),
        )
    )
    try:
        bootstrap = broker.start()
    except BrokerError as exc:
        pytest.fail(f"no Kafka broker for the tests (set KAFKA_BOOTSTRAP_SERVERS or fix): {exc}")
    try:
        yield bootstrap
    finally:
        broker.stop()
