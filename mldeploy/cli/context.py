"""What commands share: the Modeler the MLDEPLOY_* settings describe, built on first use so that
importing a command (to build the parser) stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modeler.modeler import Modeler


def configured_modeler() -> Modeler:
    """The Modeler for the current settings (model directory, data, target, policies)."""
    from mldeploy.settings import make_modeler, settings

    return make_modeler(settings())
