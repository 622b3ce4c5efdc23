"""``--name NAME``: which model a command works on, for every command that takes a version or
trains one. The default is ``MLDEPLOY_MODEL_NAME`` (the model ``/predict`` serves, kept in the
model directory itself); any other model lives in ``<model directory>/NAME/``
(:mod:`mldeploy.rollout.registry`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mldeploy.rollout.registry import check_name

if TYPE_CHECKING:
    from modeler.modeler import Modeler

NAME_HELP = (
    "the model to work on (default: MLDEPLOY_MODEL_NAME, the one /predict serves); "
    "another model's versions live in <model directory>/NAME/"
)


def model_name(text: str) -> str:
    """An argparse ``type``: a model name, or the reason it is not one."""
    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_name_argument(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    """Add ``--name NAME`` (or, with ``positional``, a required ``NAME``) to a command's parser."""
    if positional:
        parser.add_argument("name", type=model_name, metavar="NAME", help="the model's name")
    else:
        parser.add_argument("--name", type=model_name, default=None, metavar="NAME", help=NAME_HELP)


def named_modeler(args: argparse.Namespace) -> Modeler:
    """The Modeler of the model ``args.name`` names (the default one when unset), with the
    MLDEPLOY_* settings' data and policies. Only the default model trains lazily."""
    from mldeploy.cli.context import configured_modeler

    return configured_modeler(getattr(args, "name", None))
