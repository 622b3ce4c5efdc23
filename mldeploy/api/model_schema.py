"""The input schema of a loaded version, as every serving surface reads it (the answers, /v2,
the OpenAPI document, the file scorer)."""

from __future__ import annotations

from modeler.loaded_model import LoadedModel
from modeler.schema import Schema


def model_schema(model: LoadedModel) -> Schema:
    """``model``'s input schema: the one its metadata records, or for a version saved before
    schemas were recorded, every feature a number (:meth:`Schema.from_metadata`)."""
    found = getattr(model, "schema", None)
    return found if isinstance(found, Schema) else Schema.from_metadata(model.metadata)
