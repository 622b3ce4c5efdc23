"""What commands share: the Modeler the MLDEPLOY_* settings describe, built on first use so that
importing a command (to build the parser) stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mldeploy.settings import load_settings, make_modeler

if TYPE_CHECKING:
    from modeler.modeler import Modeler


def configured_modeler() -> Modeler:
    """The Modeler for the current settings (model directory, data, target, policies). A bad
    setting raises :class:`mldeploy.settings.SettingsError`, which the command line prints."""
    return make_modeler(load_settings())
