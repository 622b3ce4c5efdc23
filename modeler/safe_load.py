"""Read a user's model file without running the file's code.

A pickle names the callables it wants run while it loads (``os.system``, ``subprocess.Popen``,
``builtins.eval`` ...), so a plain ``pickle.load`` or ``joblib.load`` of a foreign file runs
whatever its author wrote. :func:`load_estimator` reads pickles and joblib files (plain,
compressed, with numpy arrays written raw) with joblib's own unpickler under three rules, and
``.skops`` files with skops' safe loader under the same rule. The rule is fixed here; the only
other source of trust is the operator's exact names (``trust=["mypkg.MyTransformer"]``), never
anything written in the file (MLflow's skops path trusted the types its own files listed,
GHSA-w582-9x45-8mpx).

1. Looking up. A name is admitted when the operator trusted exactly that name, when it is one of
   the builtins and reconstruction helpers listed below (each with its reason), or when it is a
   class of an allowed family: scikit-learn's classes (estimators and their fitted parts) outside
   the modules that touch files, networks or processes; numpy's data types (arrays, dtypes,
   scalars, random generators); scipy's sparse matrices; pandas' data types (frames, indexes,
   extension arrays, block managers). numpy ufuncs are admitted as values
   (``FunctionTransformer(func=np.log1p)``). A package prefix is not enough: ``numpy.load``,
   ``numpy.memmap`` (creates files), ``pandas.read_pickle``, ``pandas.HDFStore`` and ``scipy.io``
   all live in allowed packages, and are all refused, as are all functions not listed.
2. Calling. REDUCE, NEWOBJ, OBJ and INST may only call what rule 1 admitted as callable: never an
   instance (a callable scorer calls any method the file names, ``ndarray.tofile`` included) and
   never an ndarray class (``numpy.ndarray(shape, object, buffer)`` turns file bytes into object
   pointers); arrays are rebuilt by numpy's own helpers.
3. Building. BUILD may not set state on a looked-up class or function (that would patch the
   running process), and a numpy dtype whose state contradicts its fields is refused: numpy keeps
   the flags the file gives, and an object field flagged as plain bytes forges pointers too.

Refusals raise :class:`~modeler.load_errors.UntrustedType` naming the type, before it runs.
What this does not cover: a file's arrays are data, and scikit-learn's Cython code does not
bounds-check fitted arrays (tree nodes, KD-tree indices) when it predicts; a crafted file can still
crash a general predictor. The compiled ensembles check their indices.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import pickle
import sys
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _detect_compressor, _validate_fileobject_and_memmap

from modeler.errors import MissingExtra, ModelerError
from modeler.load_errors import IncompatibleModelFile, InvalidTrust, ModelFileError, UntrustedType

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
SKOPS_SUFFIX = ".skops"

ALLOWED_PACKAGES = ("sklearn", "numpy", "scipy", "pandas")

# Modules of the allowed packages that are never imported for a file: they read or write files,
# open URLs, start processes, evaluate strings, or are test and vendoring helpers.
REFUSED_MODULES = (
    # Dataset fetchers (network, files), vendored third-party code, test helpers (temporary
    # memmaps), joblib's re-exports and process pools.
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "sklearn.utils._joblib",
    "sklearn.utils.parallel",
    "sklearn.utils._show_versions",
    # File and URL readers and writers, memory maps, compilers, C pointers, test tools.
    "numpy.lib._npyio_impl",
    "numpy.lib.npyio",
    "numpy.lib._datasource",
    "numpy.lib.format",
    "numpy.lib._format_impl",
    "numpy._core.memmap",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.testing",
    # Readers and writers, pandas.eval's machinery, test tools, plotting backends.
    "pandas.io",
    "pandas.core.computation",
    "pandas._testing",
    "pandas.util",
    "pandas.plotting",
    # File formats, dataset downloads, private helpers.
    "scipy.io",
    "scipy.datasets",
    "scipy.misc",
    "scipy._lib",
)
# Any module with one of these parts is refused too (test suites shipped inside the packages).
REFUSED_MODULE_PARTS = frozenset({"tests", "conftest"})

# Builtins a pickle names. All are plain value types: calling them builds a value and nothing else.
BUILTIN_TYPES = frozenset(
    {
        # Values pickled through their type: sets (protocols < 4), slices (pandas indexing, numpy
        # fancy indexes), complex numbers, bytearrays (protocol < 5), bytes (protocol 2).
        "set",
        "frozenset",
        "slice",
        "complex",
        "bytearray",
        "bytes",
        # The base of copyreg._reconstructor (protocols 0 and 1).
        "object",
        # Types kept as values in estimator parameters (``dtype=float``) and fitted attributes.
        "int",
        "float",
        "str",
        "bool",
        "list",
        "dict",
        "tuple",
    }
)

# Functions (and one class outside the families) a pickle of scikit-learn objects calls, each
# safe with any arguments the file can give it.
HELPERS = {
    # Protocol 0/1 objects: base.__new__(cls, state) and base.__init__(obj, state); cls and base
    # are looked up here, so they are admitted classes, and one argument cannot hand numpy a buffer.
    ("copyreg", "_reconstructor"): "object reconstruction (pickle protocols 0 and 1)",
    # Protocol 2 writes bytes as a latin-1 string to encode; a codec turns text into bytes.
    ("_codecs", "encode"): "bytes (pickle protocol 2)",
    ("collections", "OrderedDict"): "an ordered dict",
    # An empty array of an admitted array class; its data comes by BUILD, where numpy takes raw
    # bytes only for dtypes without objects (object arrays need a list).
    ("numpy._core.multiarray", "_reconstruct"): "numpy arrays",
    # A scalar from a dtype and its bytes; numpy refuses object dtypes here.
    ("numpy._core.multiarray", "scalar"): "numpy scalars",
    # Protocol 5 arrays from a buffer; numpy refuses object dtypes from a buffer.
    ("numpy._core.numeric", "_frombuffer"): "numpy arrays (pickle protocol 5)",
    # random_state of fitted models; they only instantiate generator classes admitted here.
    ("numpy.random._pickle", "__randomstate_ctor"): "numpy RandomState",
    ("numpy.random._pickle", "__generator_ctor"): "numpy Generator",
    ("numpy.random._pickle", "__bit_generator_ctor"): "numpy bit generators",
    # An Index of an admitted Index class; a DataFrame's block from arrays.
    ("pandas.core.indexes.base", "_new_Index"): "pandas indexes",
    ("pandas._libs.internals", "_unpickle_block"): "pandas blocks",
    # cls.__new__(cls) for the KDTree, BallTree and DistanceMetric of fitted neighbours models.
    ("sklearn.neighbors._kd_tree", "newObj"): "KDTree",
    ("sklearn.neighbors._ball_tree", "newObj"): "BallTree",
    ("sklearn.metrics._dist_metrics", "newObj"): "DistanceMetric",
}
# Cython's own unpickler of a class (Class.__new__ and a typed state), admitted with the class.
CYTHON_UNPICKLE_PREFIX = "__pyx_unpickle_"
# joblib's placeholder for an array whose bytes follow in the stream (read by this module).
JOBLIB_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


@cache
def _data_types(package: str) -> tuple[type, ...]:
    """The base classes of a package's admitted classes (scikit-learn admits all of its own)."""
    if package == "numpy":
        return (
            np.ndarray,
            np.generic,
            np.dtype,
            np.random.RandomState,
            np.random.Generator,
            np.random.BitGenerator,
            np.random.SeedSequence,
        )
    if package == "scipy":
        from scipy import sparse

        return (sparse.sparray, sparse.spmatrix)
    if package == "pandas":
        import pandas as pd
        from pandas._libs import internals
        from pandas.core.generic import NDFrame

        extensions = pd.api.extensions
        return (
            NDFrame,
            pd.Index,
            extensions.ExtensionArray,
            extensions.ExtensionDtype,
            internals.BlockManager,
            internals.Block,
            internals.BlockPlacement,
        )
    return ()


def _may_import(module: str) -> bool:
    """Whether a module of the allowed families may be imported for a file at all."""
    parts = module.split(".")
    if parts[0] not in ALLOWED_PACKAGES or REFUSED_MODULE_PARTS.intersection(parts):
        return False
    return not any(module == refused or module.startswith(refused + ".") for refused in REFUSED_MODULES)


def _admitted_class(cls: type) -> bool:
    """Whether a class belongs to an allowed family (rule 1), judged by where it is defined."""
    home = getattr(cls, "__module__", None)
    if not isinstance(home, str) or not _may_import(home):
        return False
    package = home.partition(".")[0]
    if package == "sklearn":
        return True  # estimators only store their parameters in __init__; fitted parts hold arrays
    return issubclass(cls, _data_types(package)) and not issubclass(cls, np.memmap)


def _numpy2_module(module: str) -> str:
    """numpy 1 pickles name ``numpy.core``; numpy 2 keeps the same objects in ``numpy._core``."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        return "numpy._core" + module[len("numpy.core") :]
    return module


def _import(module: str, name: str) -> object:
    full = f"{module}.{name}"
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ModelFileError(f"the file needs {full}, which cannot be imported here") from exc


def type_name(obj: object) -> str:
    """The dotted name of a class or function, or of an instance's class."""
    named = obj if hasattr(obj, "__qualname__") and hasattr(obj, "__module__") else type(obj)
    return f"{named.__module__}.{named.__qualname__}"


class TypePolicy:
    """What a model file may name: the fixed rule of this module plus the operator's exact names."""

    def __init__(self, trust: Sequence[str] = ()) -> None:
        if isinstance(trust, str):
            trust = [trust]  # one name, not its characters
        for name in trust:
            parts = name.split(".")
            if len(parts) < 2 or not all(part.isidentifier() for part in parts):
                raise InvalidTrust(f"trusted type {name!r} is not a dotted name such as mypkg.MyTransformer")
        self.trusted = frozenset(trust)

    def resolve(self, module: str, name: str) -> tuple[object, bool]:
        """The object a file names and whether it may be called; UntrustedType when refused.

        Nothing outside the allowed families is imported unless the operator trusted the name.
        """
        module = _numpy2_module(module)
        full = f"{module}.{name}"
        if full in self.trusted:
            return _import(module, name), True
        if (module == "builtins" and name in BUILTIN_TYPES) or (module, name) in HELPERS:
            return _import(module, name), True
        # Dotted names (protocol 4 qualnames) could walk attributes: Class.method.__globals__.
        if "." in name or not _may_import(module):
            raise UntrustedType(full)
        obj = _import(module, name)
        if isinstance(obj, type) and _admitted_class(obj):
            return obj, not issubclass(obj, np.ndarray)
        if isinstance(obj, np.ufunc):
            return obj, False
        if name.startswith(CYTHON_UNPICKLE_PREFIX) and callable(obj):
            cls = getattr(sys.modules[module], name[len(CYTHON_UNPICKLE_PREFIX) :], None)
            if isinstance(cls, type) and _admitted_class(cls):
                return obj, True
        raise UntrustedType(full)

    def admits_constructed(self, full_name: str) -> bool:
        """Whether a loader that builds objects itself (skops) may build this type: resolvable and
        callable under :meth:`resolve`, or a numpy ufunc (a value)."""
        module, _, name = full_name.rpartition(".")
        if not module:
            return False
        try:
            obj, may_call = self.resolve(module, name)
        except ModelFileError:
            return False
        return may_call or isinstance(obj, np.ufunc)


def _rebuilt(dtype: np.dtype) -> np.dtype:
    """A fresh dtype of the same layout, so numpy computes its flags itself."""
    if dtype.names is not None:
        fields = [dtype.fields[name] for name in dtype.names]
        spec = {
            "names": list(dtype.names),
            "formats": [field[0] for field in fields],
            "offsets": [field[1] for field in fields],
            "itemsize": dtype.itemsize,
        }
        if any(len(field) > 2 for field in fields):
            spec["titles"] = [field[2] if len(field) > 2 else None for field in fields]
        return np.dtype(spec, align=dtype.isalignedstruct)
    if dtype.subdtype is not None:
        return np.dtype(dtype.subdtype)
    return np.dtype(dtype.str)


def _check_dtype(dtype: np.dtype) -> None:
    """Refuse a dtype whose state (set by BUILD) disagrees with what numpy makes of its fields."""
    try:
        fresh = _rebuilt(dtype)
    except (TypeError, ValueError) as exc:
        raise UntrustedType("numpy.dtype", "its state describes a layout numpy cannot build") from exc
    if fresh.flags != dtype.flags or fresh.itemsize != dtype.itemsize:
        raise UntrustedType("numpy.dtype", "its state sets flags that contradict its fields")


class _CheckedArrayWrapper(NumpyArrayWrapper):
    """joblib's array placeholder; object arrays are read under the same rules (joblib reads
    them with a plain pickle Unpickler that only shares ``find_class``)."""

    def read_array(self, unpickler: _RestrictedUnpickler, ensure_native_byte_order: bool) -> np.ndarray:
        if not isinstance(self.dtype, np.dtype):
            raise ModelFileError("a joblib array without a numpy dtype")
        if self.dtype.hasobject:
            return _RestrictedUnpickler(unpickler.file_handle, unpickler.policy).load()
        return super().read_array(unpickler, ensure_native_byte_order)


class _RestrictedUnpickler(NumpyUnpickler):
    """joblib's unpickler (joblib files and plain pickles alike) under this module's three rules."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, file_handle: IO[bytes], policy: TypePolicy) -> None:
        super().__init__("", file_handle, ensure_native_byte_order=True)
        self.policy = policy
        self._globals: dict[int, object] = {}  # everything find_class returned, by identity
        self._callables: dict[int, object] = {}  # the part of it that may be called

    def find_class(self, module: str, name: str) -> object:
        if self.proto < 3 and self.fix_imports:  # Python 2 names, as pickle.Unpickler maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) == JOBLIB_ARRAY_WRAPPER:
            obj, may_call = _CheckedArrayWrapper, True
        else:
            obj, may_call = self.policy.resolve(module, name)
        self._globals[id(obj)] = obj
        if may_call:
            self._callables[id(obj)] = obj
        return obj

    def _is_global(self, obj: object) -> bool:
        return self._globals.get(id(obj)) is obj

    def _check_call(self, func: object) -> None:
        if self._callables.get(id(func)) is func:
            return
        if isinstance(func, type) and issubclass(func, np.ndarray):
            reason = "arrays are rebuilt by numpy's own helpers, never called with the file's arguments"
        elif self._is_global(func):
            reason = "it may be read as a value but not called"
        else:
            reason = "the file calls an object of this type; only admitted classes and helpers may be called"
        raise UntrustedType(type_name(func), reason)

    def load_reduce(self) -> None:
        self._check_call(self.stack[-2])
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        self._check_call(self.stack[-2])
        super().load_newobj()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        self._check_call(self.stack[-3])
        super().load_newobj_ex()

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: object, args: list) -> None:  # OBJ and INST
        self._check_call(klass)
        super()._instantiate(klass, args)

    def load_build(self) -> None:
        inst = self.stack[-2]
        if self._is_global(inst):
            raise UntrustedType(type_name(inst), "the file sets state on it, which would change the running process")
        super().load_build()
        if isinstance(inst, np.dtype):
            _check_dtype(inst)

    dispatch[pickle.BUILD[0]] = load_build

    def get_extension(self, code: int) -> None:
        raise ModelFileError("the pickle uses an extension code (copyreg's registry), which is not supported")


def _read_pickle(path: Path, policy: TypePolicy) -> object:
    with path.open("rb") as raw:
        if _detect_compressor(raw) == "compat":
            raise ModelFileError("the file was written by joblib < 0.10, whose format is not supported")
        with _validate_fileobject_and_memmap(raw, "", None) as (stream, _):
            return _RestrictedUnpickler(stream, policy).load()


def _read_skops(path: Path, policy: TypePolicy) -> object:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingExtra("reading .skops files needs the skops package (see requirements.txt)") from exc
    data = path.read_bytes()  # read once: the types checked are the types loaded
    # skops lists the types outside its own defaults; each must pass the rule, none is trusted
    # because the file lists it.
    untrusted = sio.get_untrusted_types(data=data)
    for name in untrusted:
        if not policy.admits_constructed(name):
            raise UntrustedType(name)
    return sio.loads(data, trusted=untrusted)


def load_estimator(path: str | Path, *, trust: Sequence[str] = ()) -> object:
    """The object saved in a ``.joblib``/``.pkl``/``.pickle`` or ``.skops`` file, read without
    running the file's code; ``trust`` names further types (``mypkg.MyTransformer``) to admit.

    Raises UntrustedType (naming the type), IncompatibleModelFile (pickled by another
    scikit-learn), ModelFileError (unreadable, unknown suffix) or MissingExtra (no skops).
    """
    path = Path(path)
    policy = TypePolicy(trust)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        reader = _read_pickle
    elif suffix == SKOPS_SUFFIX:
        reader = _read_skops
    else:
        known = ", ".join((*PICKLE_SUFFIXES, SKOPS_SUFFIX))
        raise ModelFileError(f"unknown model file type {suffix or '(no suffix)'!r}: use one of {known}")
    from sklearn.exceptions import InconsistentVersionWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            return reader(path, policy)
    except (ModelerError, MemoryError):
        raise
    except InconsistentVersionWarning as exc:
        raise IncompatibleModelFile(f"the file was pickled by another scikit-learn: {exc}") from exc
    except OSError as exc:  # strerror only: the message must not carry the server's path
        raise ModelFileError(f"cannot read the model file: {exc.strerror or type(exc).__name__}") from exc
    except Exception as exc:  # a damaged or foreign file, whatever the library raised
        raise ModelFileError(f"not a readable {suffix} model file ({type(exc).__name__}: {exc})"[:300]) from exc
