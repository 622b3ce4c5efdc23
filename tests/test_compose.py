"""deploy/compose/docker-compose.yml and every file it mounts, checked offline (no Docker engine
runs here, and `docker compose config` only where the plugin exists): services, the shared model
volume, who may train, environment names, health checks, ports, nginx's upstream, Prometheus'
targets and rules, Grafana's provisioning, and that every dashboard query names metrics a live
/metrics exposition has. tests/test_nginx.py runs the nginx file itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from flask import Flask

from mldeploy.http.app import create_app
from mldeploy.settings import env_names
from tests.deploy_files import DOCKERFILE, dockerfile_instructions
from tests.nginx_support import LISTEN, NGINX_CONF, UPSTREAM_SERVER
from tests.support import REPO, SEED_ROW, exposed_names

COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = REPO / "deploy" / "grafana"
API = ("api-1", "api-2")
# ${NAME} or ${NAME:-default} / ${NAME-default}: compose's interpolation of the shell's variables.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-[^}]*)?\}")
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
PROMQL_KEYWORDS |= {"offset", "inf", "nan"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def app(models: Path) -> Flask:
    return create_app({"MODEL_DIR": str(models), "WARMUP": False})


@pytest.fixture(scope="module")
def routes(app: Flask) -> set[str]:
    return {rule.rule for rule in app.url_map.iter_rules()}


@pytest.fixture(scope="module")
def exposed(app: Flask) -> set[str]:
    """Sample names in a live /metrics exposition once every labelled family has a sample."""
    return exposed_names(app)


def on_host(source: str) -> Path:
    """A bind mount's source, relative to the compose file as compose reads it."""
    return (COMPOSE.parent / source).resolve()


def mounts(service: dict) -> dict[str, str]:
    """``{container path: source}`` of a service's volumes (short syntax), mode dropped."""
    found = {}
    for item in service.get("volumes", []):
        source, target, *_mode = item.split(":")
        found[target] = source
    return found


def bind_mounts(service: dict) -> dict[str, Path]:
    """The mounts of host files or folders, by container path."""
    return {t: on_host(s) for t, s in mounts(service).items() if s.startswith((".", "/"))}


def port_pairs(service: dict) -> list[tuple[int, int]]:
    """Published ``(host, container)`` ports."""
    return [tuple(int(p) for p in item.split(":")[-2:]) for item in service.get("ports", [])]


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label
    matchers, ranges, grouping clauses, function names and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def dashboards() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]


def queries() -> list[tuple[str, str]]:
    """``(panel title, expression)`` of every panel target of every dashboard."""
    return [(p["title"], t["expr"]) for d in dashboards() for p in d["panels"] for t in p["targets"]]


# -- services, image, volume, settings ------------------------------------------------------------


def test_the_expected_services(services) -> None:
    assert set(services) == {*API, "nginx", "prometheus", "grafana"}


def test_replicas_run_the_repository_image_on_the_dockerfile_port(services) -> None:
    steps = dockerfile_instructions()
    exposed_port = int(dict(steps)["EXPOSE"])
    for name in API:
        service = services[name]
        assert on_host(service["build"]["context"]) == REPO
        assert on_host(service["build"]["context"]) / service["build"]["dockerfile"] == DOCKERFILE
        assert int(env_of(service)["MLDEPLOY_PORT"]) == exposed_port
        assert "ports" not in service, "replicas are reached through nginx only"
    assert len({services[name]["image"] for name in API}) == 1


def test_replicas_share_one_named_model_volume(compose, services) -> None:
    dockerfile_env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for k, a in dockerfile_instructions() if k == "ENV")))
    volumes = set()
    for name in API:
        model_dir = env_of(services[name])["MLDEPLOY_MODEL_DIR"]
        assert model_dir == dockerfile_env["MLDEPLOY_MODEL_DIR"]
        source = mounts(services[name])[model_dir]
        assert source in compose["volumes"], f"{name}: {source} is not a named volume"
        volumes.add(source)
    assert len(volumes) == 1


def test_only_one_replica_trains_and_the_other_waits_for_it(services) -> None:
    lazy = {name: env_of(services[name])["MLDEPLOY_LAZY_TRAIN"] for name in API}
    trainers = [name for name, value in lazy.items() if value == "true"]
    assert len(trainers) == 1 and all(value == "false" for name, value in lazy.items() if name not in trainers)
    for name in set(API) - set(trainers):
        assert services[name]["depends_on"][trainers[0]]["condition"] == "service_healthy"


def test_env_names_are_settings_the_service_reads(services) -> None:
    for name in API:
        unknown = set(env_of(services[name])) - env_names()
        assert not unknown, f"{name}: not read by mldeploy or its gunicorn settings: {unknown}"
        # Values taken from the shell are settings too (or Grafana's own password).
        for value in env_of(services[name]).values():
            assert set(INTERPOLATION.findall(value)) <= env_names()


def test_an_empty_admin_key_from_the_shell_disables_admin_calls(models: Path) -> None:
    # The compose file passes ${MLDEPLOY_ADMIN_KEY:-}: unset in the shell means "" here.
    app = create_app({"MODEL_DIR": str(models), "WARMUP": False, "ADMIN_KEY": "", "API_KEYS": ""})
    client = app.test_client()
    # An empty bearer is no key (401); any key cannot pass while admin calls are disabled (403).
    assert client.post("/model/train", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.post("/model/train", headers={"Authorization": "Bearer x"}).status_code == 403
    assert client.post("/predict", json=SEED_ROW).status_code == 200  # and no key is required


def test_health_checks_grace_period_and_read_only_root(services, routes) -> None:
    for name in API:
        service, env = services[name], env_of(services[name])
        command = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", command)
        assert url and int(url[1]) == int(env["MLDEPLOY_PORT"]) and url[2] == "/ready" and url[2] in routes
        assert int(service["stop_grace_period"].rstrip("s")) > int(env["MLDEPLOY_GRACEFUL_TIMEOUT"])
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert PurePosixPath("/tmp") in PurePosixPath(env["PROMETHEUS_MULTIPROC_DIR"]).parents


def test_every_mounted_file_exists_and_images_are_pinned(services) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
        if "build" not in service:
            image, _, tag = service["image"].rpartition(":")
            assert image and tag and tag != "latest", f"{name}: pin the image, not {service['image']!r}"


def test_host_ports_are_distinct(services) -> None:
    hosts = [host for service in services.values() for host, _ in port_pairs(service)]
    assert len(hosts) == len(set(hosts))


def test_docker_compose_config_when_the_plugin_is_there() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` plugin here: the checks above stand in for it")
    checked = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


# -- nginx, Prometheus, Grafana -------------------------------------------------------------------


def test_nginx_mounts_the_shipped_site_whose_upstream_is_the_replicas(services) -> None:
    nginx = services["nginx"]
    assert bind_mounts(nginx)["/etc/nginx/conf.d/default.conf"] == NGINX_CONF
    text = NGINX_CONF.read_text()
    replicas = {f"{name}:{env_of(services[name])['MLDEPLOY_PORT']}" for name in API}
    assert {address for _, address in UPSTREAM_SERVER.findall(text)} == replicas
    ((_, listen),) = LISTEN.findall(text)
    assert [container for _, container in port_pairs(nginx)] == [int(listen)]
    assert set(nginx["depends_on"]) == set(API)


def test_prometheus_scrapes_each_replica_and_loads_the_alert_rules(services, routes) -> None:
    prometheus = services["prometheus"]
    binds = bind_mounts(prometheus)
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = PurePosixPath(config_flag.split("=", 1)[1])
    assert binds[str(config_path)] == PROMETHEUS
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] in routes
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:{env_of(services[name])['MLDEPLOY_PORT']}" for name in API}
    for rule_file in config["rule_files"]:
        # Relative to the config file, inside the container.
        mounted = binds[str(config_path.parent / rule_file)]
        assert mounted == REPO / "deploy" / "prometheus" / "alerts.yml"
        assert yaml.safe_load(mounted.read_text())["groups"]


def test_grafana_provisions_the_prometheus_source_and_the_dashboard_folder(services) -> None:
    grafana = services["grafana"]
    binds = bind_mounts(grafana)
    assert binds["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"]).groups()
    assert host in services and int(port) in [c for _, c in port_pairs(services[host])]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "mldeploy.yml").read_text())["providers"]
    assert binds[provider["options"]["path"]] == GRAFANA / "dashboards"
    (dashboard,) = dashboards()
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in (
        "Requests",
        "latency p50 and p99",
        "Predictions per second, by class",
        "Errors",
        "Drift",
        "Live accuracy",
    ):
        assert any(wanted in title for title in titles), f"no {wanted!r} panel in {titles}"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"] and panel["targets"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_dashboard_query_names_metrics_the_service_exports(exposed) -> None:
    assert queries()
    for title, expr in queries():
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exposed, f"{title}: {names - exposed} not in a live /metrics exposition"
    latency = [expr for title, expr in queries() if "latency" in title]
    assert any("histogram_quantile(0.5," in e for e in latency)
    assert any("histogram_quantile(0.99," in e for e in latency)


def test_metric_name_extraction_sees_what_a_query_selects(exposed) -> None:
    expr = 'sum by (instance) (rate(up{job="mldeploy"}[5m] offset 1m)) / on (job) mldeploy_nope_total > 0.5'
    assert promql_metric_names(expr) == {"up", "mldeploy_nope_total"}
    assert not promql_metric_names(expr) <= exposed  # what the dashboard check would report
    quantile = 'histogram_quantile(0.99, sum by (le) (rate(a_bucket{endpoint="/predict"}[$__rate_interval])))'
    assert promql_metric_names(quantile) == {"a_bucket"}
