"""Deployment files, checked offline (no Docker engine or cluster here): the Kubernetes manifests
validate strictly against the Kubernetes schemas (kubernetes-validate), and the Dockerfile,
probes, environment names and alert rules point at endpoints, settings and metrics that exist.
The Dockerfile's HEALTHCHECK and the probe paths are also called on a live server in
tests/test_gunicorn.py."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from flask import Flask

from mldeploy.http import metrics
from mldeploy.http.app import create_app
from mldeploy.settings import env_names, load_settings
from tests.deploy_files import DOCKERFILE, KUBERNETES, dockerfile_instructions, exec_form, manifests
from tests.support import GUNICORN_CONF, REPO, clean_env

# The newest Kubernetes the validator knows, and an older one still in wide use.
K8S_VERSIONS = [kubernetes_validate.utils.latest_version() + ".0", "1.30.0"]
GUNICORN_CONF_FILE = REPO / "mldeploy" / "http" / "gunicorn_conf.py"
PRE_STOP_SLEEP = 5


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    app: Flask = create_app({"MODEL_DIR": str(tmp_path_factory.mktemp("models")), "WARMUP": False})
    return {rule.rule for rule in app.url_map.iter_rules()}


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    return manifests()


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path, version: str) -> None:
    for resource in yaml.safe_load_all(path.read_text()):
        # Strict: an unknown or misspelt field fails, as `kubectl apply --validate=strict` would.
        kubernetes_validate.validate(resource, version, strict=True)


def test_strict_validation_catches_a_misspelt_field(k8s) -> None:
    broken = yaml.safe_load(yaml.safe_dump(k8s["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_the_expected_resources_exist(k8s) -> None:
    assert set(k8s) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def container_of(k8s) -> dict:
    (container,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def env_of(k8s) -> dict[str, dict]:
    return {item["name"]: item for item in container_of(k8s)["env"]}


def test_probes_ask_real_endpoints_on_the_served_port(k8s, routes) -> None:
    container = container_of(k8s)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes
        assert get["port"] in ports
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == int(env_of(k8s)["MLDEPLOY_PORT"]["value"])
    annotations = k8s["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes


def test_env_names_are_settings_the_service_reads(k8s) -> None:
    unknown = set(env_of(k8s)) - env_names()
    assert not unknown, f"not read by mldeploy or its gunicorn settings: {unknown}"


def test_every_variable_gunicorn_conf_reads_is_listed() -> None:
    # gunicorn_conf.py and what it calls before the app exists (the metrics folder's set-up).
    code = GUNICORN_CONF_FILE.read_text() + (REPO / "mldeploy" / "http" / "metrics_dir.py").read_text()
    read = set(re.findall(r"os\.environ(?:\.get)?[\[(]\"(\w+)\"", code))
    assert read and read - {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"} <= env_names()


def test_no_code_reads_a_variable_that_is_not_a_setting() -> None:
    # Settings are parsed in one place: no module reads an MLDEPLOY_* variable of its own.
    for package in ("mldeploy", "modeler", "mldeploy_client"):
        for path in (REPO / package).rglob("*.py"):
            code = path.read_text()
            read = set(re.findall(r"(?:os\.environ(?:\.get)?[\[(]|os\.getenv\()\"(\w+)\"", code))
            assert read <= env_names(), f"{path.relative_to(REPO)} reads {read - env_names()}"
            if path.name != "settings.py":
                assert not re.search(r"(?:environ|getenv)\W+\"MLDEPLOY_", code), path


def test_values_the_deployment_files_set_are_ones_the_settings_accept(k8s) -> None:
    plain = {name: item["value"] for name, item in env_of(k8s).items() if "value" in item}
    assert load_settings(environ=plain).lazy_train is False
    steps = dockerfile_instructions()
    docker = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for k, args in steps if k == "ENV")))
    assert load_settings(environ=docker).port == int(docker["MLDEPLOY_PORT"])


def test_the_configuration_page_lists_every_variable() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.M))
    assert env_names() - listed == set(), "variables read but without a row in docs/configuration.md"


def test_replicas_share_a_read_only_model_and_never_train_on_their_own(k8s) -> None:
    env = env_of(k8s)
    assert env["MLDEPLOY_LAZY_TRAIN"]["value"] == "false"
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    mount = next(m for m in container_of(k8s)["volumeMounts"] if m["mountPath"] == env["MLDEPLOY_MODEL_DIR"]["value"])
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_grace_period_outlasts_prestop_and_gunicorns_graceful_timeout(k8s, tmp_path: Path) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    assert container_of(k8s)["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRE_STOP_SLEEP)]
    graceful = int(env_of(k8s)["MLDEPLOY_GRACEFUL_TIMEOUT"]["value"])
    assert pod["terminationGracePeriodSeconds"] > PRE_STOP_SLEEP + graceful
    # gunicorn itself, reading our config with the Deployment's variables, uses that timeout.
    env = {name: item["value"] for name, item in env_of(k8s).items() if "value" in item}
    config = gunicorn_config(clean_env(**{**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}))
    assert config["graceful_timeout"] == str(graceful)
    assert config["timeout"] == env["MLDEPLOY_WORKER_TIMEOUT"]
    assert config["workers"] == env["WEB_CONCURRENCY"]


def gunicorn_config(env: dict[str, str]) -> dict[str, str]:
    """gunicorn's resolved settings with our config file (``--print-config``: the app is not loaded)."""
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF, "--print-config"]
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.splitlines()) if v}


def test_resources_and_non_root(k8s) -> None:
    container = container_of(k8s)
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert k8s["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_service_hpa_and_pdb_select_the_deployment(k8s) -> None:
    deployment = k8s["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert k8s["Service"]["spec"]["selector"].items() <= labels.items()
    assert k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = k8s["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    port_names = {p["name"] for p in container_of(k8s)["ports"]}
    assert all(p["targetPort"] in port_names for p in k8s["Service"]["spec"]["ports"])
    assert k8s["PodDisruptionBudget"]["spec"]["minAvailable"] < k8s["HorizontalPodAutoscaler"]["spec"]["minReplicas"]


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_slim_base_dependencies_layer_non_root_gunicorn(routes) -> None:
    steps = dockerfile_instructions()
    keywords = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    copies = [args for k, args in steps if k == "COPY"]
    assert copies[0] == "requirements.txt ./", "requirements.txt is copied alone, first"
    install = keywords.index("RUN")
    assert "pip install -r requirements.txt" in steps[install][1]
    first_code = next(i for i, (k, args) in enumerate(steps) if k == "COPY" and "requirements.txt" not in args)
    assert install < first_code, "the dependency layer comes before the code"
    for args in copies:
        for source in args.split()[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    entrypoint = exec_form(dict(steps)["ENTRYPOINT"])
    assert entrypoint[:3] == ["gunicorn", "--config", "python:mldeploy.http.gunicorn_conf"]


def test_dockerfile_env_port_and_healthcheck(routes) -> None:
    steps = dockerfile_instructions()
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for k, args in steps if k == "ENV")))
    mldeploy_env = {name for name in env if name.startswith("MLDEPLOY_")}
    assert mldeploy_env <= env_names()
    assert dict(steps)["EXPOSE"] == env["MLDEPLOY_PORT"]
    health = dict(steps)["HEALTHCHECK"]
    assert "/health'" in health and "/health" in routes
    assert "MLDEPLOY_PORT" in health


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "models", "tests"} <= ignored
    assert DOCKERFILE.name not in ignored


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker's build context leaves ``path`` out: the last matching pattern wins, and a
    ``!pattern`` brings a path back."""
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatch(path.rstrip("/"), pattern.lstrip("!").rstrip("/")):
            excluded = not negated
    return excluded


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    copied = [src for kind, args in dockerfile_instructions() if kind == "COPY" for src in exec_form(args)[:-1]]
    assert "README.md" in copied  # pyproject.toml names it as the package's readme
    assert [src for src in copied if dockerignored(src, patterns) or not (REPO / src).exists()] == []


# ---- alert rules and CI -------------------------------------------------------------------------


def test_alert_rules_use_metrics_the_service_exports() -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    # The model's own alerts (drift, accuracy) are checked by tests/test_alert_rules.py.
    assert {"MldeployHighErrorRate", "MldeployHighP99Latency"} <= set(alerts)
    exported = {metrics.REQUESTS._name + "_total", metrics.LATENCY._name + "_bucket"}
    for rule in (alerts["MldeployHighErrorRate"], alerts["MldeployHighP99Latency"]):
        used = set(re.findall(r"\b(mldeploy_\w+)", rule["expr"]))
        assert used and used <= exported, used - exported
        assert rule["for"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
    assert "histogram_quantile(0.99" in alerts["MldeployHighP99Latency"]["expr"]


def test_ci_workflow_runs_the_same_command() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert [s["run"] for s in steps if "run" in s] == ["bash .ci/run"]
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert workflow["jobs"]["test"]["container"].startswith("python:3.11")
