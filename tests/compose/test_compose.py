"""docker-compose.yml stays valid: the services, their wiring, loopback-only ports, and the
Prometheus and Grafana configuration matches what the worker exports."""

import json
import re
from collections import Counter
from pathlib import Path

import yaml

from streams.settings import Settings
from streams.worker.metrics import WorkerMetrics
from streams.worker.pipeline import Counters

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def test_compose_file_structure():
    doc = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"kafka", "worker", "prometheus", "grafana"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert "broker,controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert all(port.startswith("127.0.0.1:") for port in kafka["ports"])  # loopback only
    worker = services["worker"]
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert (COMPOSE / worker["build"]["dockerfile"].split("/")[-1]).is_file()
    assert "volstream-state" in doc["volumes"]
    assert all(port.startswith("127.0.0.1:") for port in worker["ports"])
    for name in ("prometheus", "grafana"):  # in the worker's namespace: scraped on loopback
        assert services[name]["network_mode"] == "service:worker"
        for volume in services[name]["volumes"]:
            assert (COMPOSE / volume.split(":")[0]).exists(), volume
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "kafka:19092" in advertised and "127.0.0.1:9092" in advertised


def test_worker_image_installs_the_pinned_package():
    dockerfile = (COMPOSE / "worker.Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile and 'CMD ["volstream", "worker"]' in dockerfile
    for package in ("engine", "streams", "schemas", "alerts"):
        assert f"COPY {package} {package}" in dockerfile


def test_prometheus_scrapes_the_worker_port_on_loopback():
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{Settings().metrics_port}"]
    source = yaml.safe_load(
        (COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert source["url"] == "http://127.0.0.1:9090"


def test_every_dashboard_query_names_a_metric_the_worker_exports():
    counters = Counters(rejected=Counter(oversized=1), runbooks=Counter(simpler_model=1))
    metrics = WorkerMetrics(lambda: (counters, 0))
    labels = ("sabr", "fx")
    metrics.latency.labels(*labels).observe(0.01)
    metrics.calibrations.labels(*labels, "good").inc()
    metrics.warm_starts.labels(*labels).inc()
    for histogram in (metrics.iterations, metrics.rmse_bp, metrics.drift_z, metrics.condition):
        histogram.labels(*labels).observe(1.0)
    metrics.watermark_lag.labels("0").set(0.1)
    metrics.consumer_lag.labels("0").set(3)
    exported = {s.name for family in metrics.registry.collect() for s in family.samples}
    dashboard = json.loads((COMPOSE / "grafana/dashboards/volstream.json").read_text())
    source = yaml.safe_load(
        (COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    groups = [p["title"].partition(":")[0] for p in dashboard["panels"] if p["type"] == "row"]
    assert groups == ["Performance", "Quality", "Operational"]  # the playbook's three groups
    queried = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            queried |= set(re.findall(r"(?:volstream|process)_[a-z_]+", target["expr"]))
    assert queried and queried <= exported, queried - exported
    # and nothing the worker exports is left off the dashboard
    base = lambda n: re.sub(r"_(bucket|sum|count|created|total)$", "", n)  # noqa: E731
    ours = {base(n) for n in exported if n.startswith("volstream_")}
    assert ours <= {base(n) for n in queried}
