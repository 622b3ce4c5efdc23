"""What commands share: the Modeler the MLDEPLOY_* settings describe, built on first use so that
importing a command (to build the parser) stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mldeploy.settings import load_settings, make_modeler

if TYPE_CHECKING:
    from modeler.modeler import Modeler


def configured_modeler(name: str | None = None) -> Modeler:
    """The Modeler for the current settings (model directory, data, target, policies) of model
    ``name`` (None: the default one, ``MLDEPLOY_MODEL_NAME``). A bad setting raises
    :class:`mldeploy.settings.SettingsError`, which the command line prints."""
    settings = load_settings()
    if name is None or name == settings.model_name:
        return make_modeler(settings)
    from mldeploy.rollout.registry import modeler_for

    return modeler_for(settings, name)
