"""Settings: parsed and checked once at start into a typed object. A bad value stops every entry
point (``python app.py``, ``python -m mldeploy serve``, gunicorn's config, each command) with one
line naming the variable and what it takes, shown here in real processes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mldeploy.cli import exit_codes
from mldeploy.cli import main as cli
from mldeploy.http.app import create_app, settings_of
from mldeploy.settings import DEFAULTS, FIELDS, Settings, SettingsError, env_name, env_names, load_settings
from tests.support import GUNICORN_CONF, REPO, clean_env, copy_project, free_port, running

# The examples, and one per kind of parser: (value, what the line says the variable takes).
BAD_VALUES = {
    "MLDEPLOY_PORT": ("abc", "an integer from 1 to 65535"),
    "MLDEPLOY_POLL_INTERVAL": ("-1", "a number of at least 0"),
    "MLDEPLOY_ON_CORRUPT": ("maybe", "'retrain' or 'fail'"),
    "MLDEPLOY_WORKER_TIMEOUT": ("x", "an integer of at least 0"),
    "MLDEPLOY_MAX_BATCH_ROWS": ("0", "an integer of at least 1"),
    "MLDEPLOY_PRELOAD": ("maybe", "true or false (or 1/0, yes/no, on/off)"),
    "MLDEPLOY_LOG_LEVEL": ("loud", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    "MLDEPLOY_RATE_LIMIT": ("fast", "limits such as '100/second;2000/minute'"),
    "MLDEPLOY_MODEL_NAME": ("a/b", "a name of letters, digits, '.', '_' or '-'"),
    "MLDEPLOY_KEEP_VERSIONS": ("1.5", "an integer of at least 1"),
    "MLDEPLOY_RATE_LIMIT_STORAGE_URI": ("redis", "a storage URI such as memory:// or redis://host:6379"),
    "WEB_CONCURRENCY": ("two", "an integer of at least 1"),
    "MLDEPLOY_LOG_SAMPLE_RATE": ("1.5", "a number from 0 to 1"),
    "MLDEPLOY_LOG_MAX_AGE": ("soon", "a duration such as 90s, 30m, 12h, 7d or 2w"),
}


# -- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
def test_a_bad_value_names_the_variable_what_it_takes_and_what_it_got(variable: str) -> None:
    value, takes = BAD_VALUES[variable]
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={variable: value})
    assert str(caught.value) == f"{variable}: must be {takes}, got {value!r}"


def test_secrets_are_never_shown_in_an_error() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"MLDEPLOY_API_KEYS": " , ,"})  # would open every route if taken as "no keys"
    assert str(caught.value) == "MLDEPLOY_API_KEYS: must be comma-separated keys, at least one"
    keyed = load_settings(environ={"MLDEPLOY_API_KEYS": "k1", "MLDEPLOY_ADMIN_KEY": "admin-secret"})
    assert "admin-secret" not in repr(keyed) and "k1" not in repr(keyed)


def test_environment_text_becomes_typed_values() -> None:
    settings = load_settings(
        environ={
            "MLDEPLOY_PORT": " 8000 ",
            "MLDEPLOY_POLL_INTERVAL": "0",
            "MLDEPLOY_LAZY_TRAIN": "off",
            "MLDEPLOY_WARMUP": "No",
            "MLDEPLOY_PRELOAD": "0",
            "MLDEPLOY_ON_CORRUPT": "Fail",
            "MLDEPLOY_LOG_LEVEL": "debug",
            "MLDEPLOY_API_KEYS": "a, b,,c",
            "MLDEPLOY_ADMIN_KEY": "1e5",  # text, though JSON would read a number
            "MLDEPLOY_MODEL_DIR": "/srv/models",
            "MLDEPLOY_ON_INCOMPATIBLE": "",  # empty: unset, as for every optional setting
            "WEB_CONCURRENCY": "3",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
        }
    )
    assert (settings.port, settings.poll_interval, settings.web_concurrency) == (8000, 0.0, 3)
    assert (settings.lazy_train, settings.warmup, settings.preload) == (False, False, False)
    assert (settings.on_corrupt, settings.on_incompatible, settings.log_level) == ("fail", None, "DEBUG")
    assert (settings.api_keys, settings.admin_key) == (("a", "b", "c"), "1e5")
    assert (settings.model_dir, settings.prometheus_multiproc_dir) == (Path("/srv/models"), Path("/tmp/metrics"))
    assert settings.gunicorn_bind == "127.0.0.1:8000"
    assert load_settings(environ={"MLDEPLOY_BIND": "0.0.0.0:9000"}).gunicorn_bind == "0.0.0.0:9000"


def test_every_field_has_a_default_a_parser_and_one_variable() -> None:
    assert Settings() == load_settings(environ={})
    names = [env_name(f) for f in FIELDS.values()]
    assert len(names) == len(set(names)) == len(env_names())
    for f in dataclasses.fields(Settings):
        # The default is a value the field's own parser gives back unchanged.
        default = getattr(Settings(), f.name)
        assert f.metadata["parse"](default) == default, f.name


# -- the app factory --------------------------------------------------------------------------------


def test_app_config_holds_the_typed_values_and_dict_overrides_go_through_the_parsers(model_dir: Path) -> None:
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": "false", "MAX_BATCH_ROWS": "7", "TESTING": True})
    settings = settings_of(app)
    assert (settings.warmup, settings.max_batch_rows, settings.model_dir) == (False, 7, model_dir)
    # Other modules read app.config: the same values, already typed, and Flask's own keys pass through.
    assert {key: app.config[key] for key in FIELDS} == settings.as_config()
    assert app.config["MAX_BATCH_ROWS"] == 7 and app.config["TESTING"] is True
    assert set(DEFAULTS) == set(FIELDS)


def test_bad_or_unknown_dict_keys_are_refused(model_dir: Path) -> None:
    with pytest.raises(SettingsError, match=r"^config\['MAX_BATCH_ROWS'\]: must be an integer of at least 1, got 0$"):
        create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "MAX_BATCH_ROWS": 0})
    with pytest.raises(SettingsError, match=r"unknown key.*MAX_BATCH_ROW\b"):
        create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "MAX_BATCH_ROW": 2})


def test_parsed_settings_are_used_as_they_are(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_PORT", "abc")  # not read again: the settings were parsed already
    settings = dataclasses.replace(Settings(), model_dir=model_dir, warmup=False, port=6001)
    app = create_app(settings)
    assert settings_of(app) is settings and app.config["PORT"] == 6001


# -- entry points, in real processes ----------------------------------------------------------------


def refused(argv: list[str], cwd: Path, **env: str) -> str:
    """Run ``argv`` with ``env``; assert it stops at once with exit code 2; returns its stderr."""
    done = subprocess.run(argv, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=120)
    assert done.returncode == exit_codes.EXIT_USAGE, done.stderr
    assert done.stdout == ""
    return done.stderr


def test_python_app_py_stops_with_one_line(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    err = refused([sys.executable, "app.py"], project, MLDEPLOY_PORT="abc")
    assert err == "error: MLDEPLOY_PORT: must be an integer from 1 to 65535, got 'abc'\n"
    err = refused([sys.executable, "app.py", "--port", "8000"], project, MLDEPLOY_WORKER_TIMEOUT="x")
    assert err == "error: MLDEPLOY_WORKER_TIMEOUT: must be an integer of at least 0, got 'x'\n"
    assert not list((project / "models").iterdir()), "nothing was trained or loaded"


def test_serve_stops_with_one_line_before_gunicorn_starts() -> None:
    err = refused([sys.executable, "-m", "mldeploy", "serve"], REPO, MLDEPLOY_WORKER_TIMEOUT="x")
    assert err == "error: MLDEPLOY_WORKER_TIMEOUT: must be an integer of at least 0, got 'x'\n"
    err = refused([sys.executable, "-m", "mldeploy", "serve", "--port", "8123"], REPO, MLDEPLOY_ON_CORRUPT="maybe")
    assert err == "error: MLDEPLOY_ON_CORRUPT: must be 'retrain' or 'fail', got 'maybe'\n"


def test_gunicorn_with_our_config_stops_with_one_line() -> None:
    # The Dockerfile's entry point runs gunicorn directly: its master reads gunicorn_conf.py first.
    err = refused([sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF], REPO, MLDEPLOY_PRELOAD="maybe")
    assert err == "error: MLDEPLOY_PRELOAD: must be true or false (or 1/0, yes/no, on/off), got 'maybe'\n"


def test_a_command_stops_with_one_line(model_dir: Path) -> None:
    argv = [sys.executable, "-m", "mldeploy", "train"]
    err = refused(argv, REPO, MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_MAX_BATCH_ROWS="0")
    assert err == "error: MLDEPLOY_MAX_BATCH_ROWS: must be an integer of at least 1, got '0'\n"
    assert not list(model_dir.iterdir()), "nothing was trained"


VERB_ARGS = {
    "activate": ["20260101T000000Z-000000"],
    "export": ["20260101T000000Z-000000", "-o", "model.onnx"],
    "predict": ["[5.0, 3.2, 1.5, 0.3]"],
    "score": ["flowers.csv"],
    "log": ["export", "-o", "log.csv"],
    "import": ["model.pkl"],
    "rollout": ["status", "iris"],
}


# A module named for a keyword ends with "_" (import_.py holds `import`).
@pytest.mark.parametrize("verb", [c.__name__.rsplit(".", 1)[-1].rstrip("_") for c in cli.COMMANDS])
def test_every_command_refuses_a_bad_setting(capsys, monkeypatch, model_dir: Path, verb: str) -> None:
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("MLDEPLOY_POLL_INTERVAL", "soon")
    code = cli.main([verb, *VERB_ARGS.get(verb, [])])
    out = capsys.readouterr()
    assert (code, out.out) == (exit_codes.EXIT_USAGE, "")
    assert out.err == "error: MLDEPLOY_POLL_INTERVAL: must be a number of at least 0, got 'soon'\n"


def test_good_settings_reach_the_dev_server(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    port = free_port()
    env = clean_env(MLDEPLOY_PORT=str(port), MLDEPLOY_MAX_BATCH_ROWS="1")
    with running(["app.py"], project, port, env=env) as (base, _):
        row = [5.0, 3.2, 1.5, 0.3]
        assert requests.post(f"{base}/predict", json={"features": row}, timeout=60).json()["Class"] == "setosa"
        res = requests.post(f"{base}/predict", json={"instances": [row, row]}, timeout=60)
        assert res.status_code == 413 and "over the limit of 1" in res.json()["errors"][0]["problem"]
