"""``python -m mldeploy``: every verb's help, its output, its exit codes, errors on stderr.

Most calls go through ``cli.main`` in this process (a subprocess costs a second of imports);
two run the real module to show that the entry point and stdin work as a user meets them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.cli import exit_codes, serve
from mldeploy.cli import main as cli
from mldeploy.settings import load_settings
from tests.support import REPO, SEED_ROW, clean_env

# A module named for a keyword ends with "_" (import_.py holds `import`).
VERBS = [command.__name__.rsplit(".", 1)[-1].rstrip("_") for command in cli.COMMANDS]
# The command line's reference page: every command and exit code has a row there.
CLI_PAGE = REPO / "docs" / "cli.md"


@pytest.fixture
def model_env(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands read MLDEPLOY_* settings: point them at the test's empty model directory."""
    for name in ("MLDEPLOY_DATA", "MLDEPLOY_TARGET", "MLDEPLOY_LAZY_TRAIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(model_dir))
    return model_dir


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``cli.main(argv)``: (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse exits by itself for --help and usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_issues_verbs_exist_and_the_cli_page_lists_every_verb() -> None:
    assert {"serve", "train", "info", "versions", "predict"} <= set(VERBS)
    page = CLI_PAGE.read_text()
    for verb in VERBS:
        assert f"| `{verb}" in page, f"docs/cli.md's command table lacks {verb}"


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_help(capsys: pytest.CaptureFixture, verb: str) -> None:
    code, out, err = run(capsys, verb, "--help")
    assert code == exit_codes.EXIT_OK
    assert out.startswith(f"usage: python -m mldeploy {verb}")
    assert err == ""


def test_top_level_help_lists_verbs_and_exit_codes(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == exit_codes.EXIT_OK
    assert all(verb in out for verb in VERBS)
    epilog = " ".join(cli.build_parser().epilog.split())
    assert epilog in " ".join(out.split())
    codes = {value for name, value in vars(exit_codes).items() if name.startswith("EXIT_")}
    assert all(f"{code} " in epilog for code in codes)


def test_the_cli_page_documents_every_exit_code() -> None:
    page = CLI_PAGE.read_text()
    codes = {name: value for name, value in vars(exit_codes).items() if name.startswith("EXIT_")}
    for name, value in codes.items():
        assert f"| {value} | `{name}` |" in page, f"docs/cli.md lacks the row for exit code {value} ({name})"


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["serve", "--port", "http"]], ids=["none", "unknown", "bad-port"])
def test_usage_errors_exit_2_on_stderr(capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == exit_codes.EXIT_USAGE
    assert out == "" and "usage:" in err and "error:" in err


def test_info_and_predict_without_a_model_exit_4(capsys: pytest.CaptureFixture, model_env, monkeypatch) -> None:
    code, out, err = run(capsys, "info")
    assert (code, out) == (exit_codes.EXIT_NOT_READY, "")
    assert err.startswith("error: model not ready: no saved model in")
    monkeypatch.setenv("MLDEPLOY_LAZY_TRAIN", "false")
    code, out, err = run(capsys, "predict", json.dumps(SEED_ROW))
    assert (code, out) == (exit_codes.EXIT_NOT_READY, "")
    assert "lazy training is off" in err


def test_train_info_versions_predict(capsys: pytest.CaptureFixture, model_env) -> None:
    code, out, err = run(capsys, "train")
    assert (code, err) == (exit_codes.EXIT_OK, "")
    version = json.loads(out)["version"]

    code, out, _ = run(capsys, "info")
    assert code == exit_codes.EXIT_OK and json.loads(out)["version"] == version

    code, out, _ = run(capsys, "versions")
    assert code == exit_codes.EXIT_OK
    assert [(v["version"], v["current"]) for v in json.loads(out)] == [(version, True)]

    code, out, _ = run(capsys, "predict", json.dumps(SEED_ROW))
    assert code == exit_codes.EXIT_OK
    # The answer POST /predict gives (tests/test_answers_everywhere.py compares the two).
    assert json.loads(out) == {
        "Class": "setosa",
        "Input": SEED_ROW,
        "Probabilities": {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0},
        "ModelVersion": version,
    }
    code, out, _ = run(capsys, "predict", json.dumps({"instances": [SEED_ROW, [6.5, 3.0, 5.5, 2.0]]}))
    assert [p["Class"] for p in json.loads(out)["Predictions"]] == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [("{not json", "malformed JSON"), (json.dumps({**SEED_ROW, "petal_width": "wide"}), "'petal_width': not a number")],
    ids=["malformed", "bad-field"],
)
def test_bad_input_exits_3_naming_the_problem(capsys: pytest.CaptureFixture, trained, model_env, rows, message) -> None:
    code, out, err = run(capsys, "predict", rows)
    assert (code, out) == (exit_codes.EXIT_INVALID_INPUT, "")
    assert err.startswith("error: ") and message in err


def test_unusable_training_data_exits_1(capsys: pytest.CaptureFixture, model_env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLDEPLOY_DATA", str(tmp_path / "missing.csv"))
    code, out, err = run(capsys, "train")
    assert (code, out) == (exit_codes.EXIT_ERROR, "")
    assert err.startswith("error: training data file not found")


def test_unknown_version_exits_5(capsys: pytest.CaptureFixture, trained, model_env) -> None:
    code, out, err = run(capsys, "activate", "19990101T000000Z-000000")
    assert (code, out) == (exit_codes.EXIT_NOT_FOUND, "")
    assert err.startswith("error: ") and "19990101T000000Z-000000" in err


def test_serve_runs_gunicorn_with_the_repository_config() -> None:
    args = cli.build_parser().parse_args(["serve", "--port", "8123", "--workers", "3"])
    argv = serve.gunicorn_argv(args)
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[argv.index("--config") + 1] == "python:mldeploy.http.gunicorn_conf"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8123"
    assert argv[argv.index("--workers") + 1] == "3"
    # What the options leave out comes from the same settings gunicorn_conf.py reads.
    only_port = cli.build_parser().parse_args(["serve", "--port", "8123"])
    argv = serve.gunicorn_argv(only_port, load_settings(environ={"MLDEPLOY_HOST": "0.0.0.0"}))
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8123"
    assert "--bind" not in serve.gunicorn_argv(cli.build_parser().parse_args(["serve"]), load_settings(environ={}))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "70000"], "argument --port: must be an integer from 1 to 65535, got '70000'"),
        (["serve", "--workers", "0"], "argument --workers: must be an integer of at least 1, got '0'"),
    ],
)
def test_serve_options_take_what_their_settings_take(capsys: pytest.CaptureFixture, argv, message) -> None:
    code, _, err = run(capsys, *argv)
    assert code == exit_codes.EXIT_USAGE and message in err


def test_real_module_reads_rows_from_stdin(model_dir: Path) -> None:
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir))
    done = subprocess.run(
        [sys.executable, "-m", "mldeploy", "predict"],
        input=json.dumps(SEED_ROW),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == exit_codes.EXIT_OK, done.stderr
    assert json.loads(done.stdout)["Class"] == "setosa"
    bad = subprocess.run(
        [sys.executable, "-m", "mldeploy", "predict", "[1, 2]"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == exit_codes.EXIT_INVALID_INPUT and bad.stdout == ""
    assert bad.stderr.startswith("error: Invalid input")


def test_the_command_line_starts_without_the_data_stack() -> None:
    # `serve` execs gunicorn right after parsing; importing pandas/numpy/sklearn first would
    # only add to every cold start (the per-command modules import them when they run).
    heavy = ("pandas", "numpy", "sklearn", "flask")
    script = f"import sys, mldeploy.cli.main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_installed_command_names_itself_in_its_usage() -> None:
    script = Path(sys.executable).parent / "mldeploy"
    installed = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True, timeout=60)
    module = subprocess.run(
        [sys.executable, "-m", "mldeploy", "train", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert installed.returncode == module.returncode == 0
    assert installed.stdout.startswith("usage: mldeploy train")
    assert module.stdout.startswith("usage: python -m mldeploy train")


def test_import_with_a_name_adds_a_model_beside_the_default_one(tmp_path: Path) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from tests.support import run_cli

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    joblib.dump(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), tmp_path / "model.pkl")
    models = tmp_path / "models"
    imported = run_cli(models, "import", str(tmp_path / "model.pkl"), "--name", "second")
    assert imported.returncode == 0, imported.stderr
    version = json.loads(imported.stdout)["version"]
    listed = run_cli(models, "versions", "--name", "second")
    assert [v["version"] for v in json.loads(listed.stdout)] == [version]
    assert (models / "second").is_dir()
    assert run_cli(models, "versions").stdout.strip() == "[]"  # the default model got nothing
    bad = run_cli(models, "import", str(tmp_path / "model.pkl"), "--name", "../escape")
    assert bad.returncode == 2 and "--name" in bad.stderr
