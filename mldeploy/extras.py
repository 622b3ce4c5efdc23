"""Optional dependencies: import them where needed, or say which requirements file brings them."""

from __future__ import annotations

import importlib
from types import ModuleType

from modeler.errors import MissingExtra  # the project's one error for a missing optional package

# What each optional feature needs, and the file that installs it.
PARQUET = ("pyarrow.parquet", "requirements-parquet.txt", "Parquet files")
DASK = ("distributed", "requirements-dask.txt", "Scoring on Dask (--dask)")
DASK_DATAFRAME = ("dask.dataframe", "requirements-dask.txt", "Scoring on Dask (--dask)")
GRANIAN = ("granian", "requirements-granian.txt", "Serving under Granian (mldeploy serve --server granian)")


def require(extra: tuple[str, str, str]) -> ModuleType:
    """Import the module of ``extra`` (one of the constants above) or raise :class:`MissingExtra`."""
    module, requirements, purpose = extra
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{purpose}: the optional package {module.split('.')[0]!r} is not installed (pip install -r {requirements})"
        ) from exc
