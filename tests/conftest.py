"""Shared test set-up: float64 JAX everywhere, as in production, a persistent compilation
cache, and one real Kafka broker.

Compiled programs are kept in the workers' compile cache (``VOLSTREAM_JAX_CACHE``, default
``~/.volstream/jax-cache``, filled by ``volstream compile`` when ``make`` installs), by the
suite and by every worker it starts: the batched Heston programs take 10-20 s each to compile
on two cores, a worker compiles a dozen programs, and each later worker (and a rerun of the
suite on the same machine) reads them back instead.

The broker is ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a testcontainers Kafka when a Docker
engine answers, else the project's own launcher (``streams/local/broker.py``) on free loopback ports
in a temporary state directory. Kafka tests never skip: no broker fails the run.
"""

import os

import jax
import pytest

from streams.settings import Settings

jax.config.update("jax_enable_x64", True)
# the suite's workers (subprocesses inherit the variable) share this cache with it
os.environ.setdefault("VOLSTREAM_JAX_CACHE", str(Settings.from_env().compile_cache))
Settings.from_env().use_compile_cache()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop each module's compiled programs when it ends: the batched Heston programs hold
    hundreds of MB, and one process runs the whole suite (the persistent cache reloads any
    that a later module needs)."""
    yield
    jax.clear_caches()


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
    from streams.local.broker import BrokerConfig, BrokerError, LocalKafka, free_port

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
