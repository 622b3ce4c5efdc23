"""``rollout``: ship a new version of a model step by step: ``start`` a canary (a share of the
traffic) or a shadow (a copy of it), ``status`` to compare, then ``promote`` or ``abort``. Every
server sharing the model directory follows within MLDEPLOY_POLL_INTERVAL seconds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.cli.context import configured_modeler
from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json
from mldeploy.settings import load_settings

if TYPE_CHECKING:
    from modeler.modeler import Modeler


def percent(text: str) -> float:
    """An argparse ``type``: a share of the traffic, above 0 and at most 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number above 0 and at most 100, got {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 100, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rollout`` command and its four actions."""
    parser = subparsers.add_parser(
        "rollout",
        help="canary or shadow a saved version against the current one, then promote or abort it",
        description="Roll out a saved VERSION of model NAME: a canary sends --percent of its requests to "
        "it (sticky per X-Request-Key), --shadow sends it a copy of each after the answer went out. "
        "`status` compares the two; `promote` makes the candidate current; `abort` ends the rollout.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a canary (or --shadow) of VERSION")
    add_name_argument(start, positional=True)
    start.add_argument("version", metavar="VERSION", help="a saved version id, as `versions --name NAME` lists them")
    mode = start.add_mutually_exclusive_group()
    mode.add_argument(
        "--percent", type=percent, default=10.0, help="share of requests the candidate answers (default: 10)"
    )
    mode.add_argument("--shadow", action="store_true", help="answer nothing: get a copy of every request")
    start.set_defaults(run=run_start)
    for name, run, text in (
        ("status", run_status, "compare the candidate with the baseline: requests, errors, latency, classes"),
        ("promote", run_promote, "make the candidate current and end the rollout"),
        ("abort", run_abort, "end the rollout; the current version answers everything"),
    ):
        action = actions.add_parser(name, help=text)
        add_name_argument(action, positional=True)
        action.set_defaults(run=run)


def run_start(args: argparse.Namespace) -> int:
    """Start the rollout, print it."""
    from mldeploy.rollout import control

    rollout = control.start(named_modeler(args), args.name, args.version, percent=args.percent, shadow=args.shadow)
    print_json({"model": args.name, "rollout": rollout.as_dict()})
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the rollout and its figures."""
    from mldeploy.rollout import control
    from mldeploy.rollout.live import LIVE_PERFORMANCE

    modeler = named_modeler(args)
    found = control.status(Path(modeler.model_dir), args.name)
    if found.get("rollout") is not None:
        found[LIVE_PERFORMANCE] = _live(modeler, args.name, found["rollout"])
    print_json(found)
    return 0


def _live(modeler: Modeler, name: str, rollout: dict) -> dict | None:
    """The versions' live performance from the prediction log the server writes (None when the
    log is off or holds nothing yet)."""
    from mldeploy.monitoring import recording
    from mldeploy.monitoring.store import LogDatabaseError, open_store
    from mldeploy.rollout.live import live_performance

    settings = load_settings()
    if not settings.log_predictions:
        return None
    try:
        store = open_store(recording.database_of(settings, configured_modeler()), create=False)
    except LogDatabaseError:
        return None
    try:
        return live_performance(store, name, rollout, modeler.store.read_metadata)
    finally:
        store.close()


def run_promote(args: argparse.Namespace) -> int:
    """Promote the candidate, print the ended rollout."""
    from mldeploy.rollout import control

    print_json({"model": args.name, "rollout": control.promote(named_modeler(args), args.name).as_dict()})
    return 0


def run_abort(args: argparse.Namespace) -> int:
    """Abort the rollout, print it."""
    from mldeploy.rollout import control

    rollout = control.abort(Path(named_modeler(args).model_dir), args.name)
    print_json({"model": args.name, "rollout": rollout.as_dict()})
    return 0
