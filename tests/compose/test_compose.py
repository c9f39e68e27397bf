"""docker-compose.yml stays valid: the services, their wiring, loopback-only ports."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def test_compose_file_structure():
    doc = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"kafka", "worker"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert "broker,controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert all(port.startswith("127.0.0.1:") for port in kafka["ports"])  # loopback only
    worker = services["worker"]
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert (COMPOSE / worker["build"]["dockerfile"].split("/")[-1]).is_file()
    assert "volstream-state" in doc["volumes"]
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "kafka:19092" in advertised and "127.0.0.1:9092" in advertised


def test_worker_image_installs_the_pinned_package():
    dockerfile = (COMPOSE / "worker.Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile and 'CMD ["volstream", "worker"]' in dockerfile
    for package in ("engine", "streams", "schemas", "alerts"):
        assert f"COPY {package} {package}" in dockerfile
