"""Model names and where each one's versions live; a Modeler per name; pinned versions.

The default model (``MLDEPLOY_MODEL_NAME``, ``iris`` unless set) is the model directory itself,
laid out as it always was (``CURRENT``, ``versions/``), so every version saved before several
models existed is still served, at ``/predict`` as before, by servers old and new sharing the
directory. Any other model ``NAME`` lives in ``<model directory>/NAME/`` with the same layout: a
model directory of its own, which every tool that takes one (``Modeler(model_dir=...)``) reads.
A folder is a model once it has a current version (a ``CURRENT`` file); ``versions`` is the
default model's own folder and cannot name a model.
"""

from __future__ import annotations

import collections
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from modeler.errors import VersionNotFound
from modeler.store import POINTER_FILE, VERSIONS_DIR

if TYPE_CHECKING:
    from mldeploy.settings import Settings
    from modeler.loaded_model import LoadedModel
    from modeler.modeler import Modeler

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Names of what the model directory itself holds: no model can be called so.
RESERVED = frozenset({VERSIONS_DIR, POINTER_FILE})


class UnknownModel(VersionNotFound):
    """No model of that name is served (a 404, as an unknown version is)."""


def check_name(name: str) -> str:
    """``name`` if it can name a model (letters, digits, ``.``, ``_``, ``-``; not reserved), else
    ValueError saying what a name takes."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in RESERVED:
        raise ValueError(
            f"not a model name: {name!r} (1-64 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit; not {' or '.join(sorted(RESERVED))})"
        )
    return name


def model_dir_of(settings: Settings) -> Path:
    """The model directory the settings name (the repository's ``models/`` when unset)."""
    from modeler.modeler import default_model_dir

    return Path(settings.model_dir) if settings.model_dir is not None else default_model_dir()


def model_folder(model_dir: Path, default_name: str, name: str) -> Path:
    """Where model ``name``'s versions live: the model directory for the default model, else
    ``<model_dir>/<name>``."""
    if name == default_name:
        return Path(model_dir)
    return Path(model_dir) / check_name(name)


def named_folders(model_dir: Path, default_name: str) -> dict[str, Path]:
    """``{name: folder}`` of every model besides the default that has a current version."""
    found = {}
    try:
        entries = sorted(Path(model_dir).iterdir())
    except OSError:  # no model directory yet: no other model either
        return {}
    for path in entries:
        name = path.name
        if name == default_name or name in RESERVED or not NAME_PATTERN.fullmatch(name):
            continue
        if (path / POINTER_FILE).is_file():
            found[name] = path
    return found


def modeler_for(
    settings: Settings, name: str | None = None, *, data_too: bool = True, model_dir: Path | None = None
) -> Modeler:
    """The Modeler of model ``name`` (None: the default) with the settings' policies, under
    ``model_dir`` (default: the settings'). Only the default model trains lazily: another one
    exists once a version was trained or imported into it. ``data_too`` passes the settings'
    training data (a training of that model reads it)."""
    from modeler.modeler import Modeler

    default = settings.model_name
    name = default if name is None else name
    lazy = settings.lazy_train and name == default
    return Modeler(
        model_dir=model_folder(model_dir or model_dir_of(settings), default, name),
        data=settings.data if data_too else None,
        target=settings.target,
        lazy_train=lazy,
        poll_interval=settings.poll_interval,
        on_corrupt=settings.on_corrupt,
        on_incompatible=settings.on_incompatible,
        keep_versions=settings.keep_versions,
    )


class PinnedCache:
    """Saved versions loaded on first use and kept, the ``size`` most recently used (per process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._models: collections.OrderedDict[tuple[str, str], LoadedModel] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: str, modeler: Modeler) -> LoadedModel:
        """Version ``version`` of model ``name``, from the cache or loaded (verified) now."""
        key = (name, version)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = modeler.saved_version(version)  # outside the lock: a load takes milliseconds
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model

    def __len__(self) -> int:
        return len(self._models)


class ModelRegistry:
    """Every model this server answers for, by name: the default one (the app's Modeler) and
    those in sub-folders, found when first asked for (a model trained or imported while the server
    runs is served without a restart)."""

    def __init__(self, settings: Settings, default: Modeler) -> None:
        self.settings = settings
        self.default_name = settings.model_name
        self.model_dir = Path(default.model_dir)
        self._modelers: dict[str, Modeler] = {self.default_name: default}
        self._lock = threading.Lock()
        self.pinned = PinnedCache(settings.version_cache)

    def names(self) -> list[str]:
        """The default model's name first, then every other model's, sorted."""
        return [self.default_name, *named_folders(self.model_dir, self.default_name)]

    def folder(self, name: str) -> Path:
        """Where model ``name``'s versions live (whether or not it exists yet)."""
        return model_folder(self.model_dir, self.default_name, name)

    def get(self, name: str) -> Modeler:
        """The Modeler of model ``name``; :class:`UnknownModel` (404) when there is none."""
        modeler = self._modelers.get(name)
        if modeler is not None:
            return modeler
        if not NAME_PATTERN.fullmatch(name) or name in RESERVED or not (self.folder(name) / POINTER_FILE).is_file():
            raise UnknownModel(f"unknown model {name!r}: this server serves {', '.join(map(repr, self.names()))}")
        with self._lock:
            modeler = self._modelers.get(name)
            if modeler is None:
                modeler = modeler_for(self.settings, name, data_too=False, model_dir=self.model_dir)
                self._modelers[name] = modeler
        return modeler

    def loaded(self) -> dict[str, Modeler]:
        """The Modelers made so far, by name (the default one always)."""
        return dict(self._modelers)

    def version(self, name: str, version: str) -> LoadedModel:
        """Saved version ``version`` of model ``name``, current or not; 404 naming it when unknown."""
        modeler = self.get(name)
        current = modeler.ensure_ready()
        if current.version == version:
            return current
        try:
            return self.pinned.get(name, version, modeler)
        except VersionNotFound as exc:
            raise VersionNotFound(f"model {name!r} has no saved version {version!r}") from exc
