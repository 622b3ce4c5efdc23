"""The Open Inference Protocol (KServe V2) over REST: request tensors in, response tensors out.

Inputs are either one tensor of shape [N, n_features] in feature order (any name; a model whose
fields are all numbers: FP32/FP64), or one tensor per feature named after it, of shape [N] or
[N, 1], typed after the field (:data:`FIELD_DATATYPES`: FP32/FP64 for a number, INT64/INT32 (or
FP32/FP64) for an integer, BYTES for text, BOOL for a boolean; a ``null`` in JSON data where the
model takes missing values). Tensor data comes as JSON ``data`` (flat or nested, row-major) or as
raw little-endian bytes after the JSON header (the binary tensor extension tritonclient uses by
default: ``Inference-Header-Content-Length`` and ``parameters.binary_data_size``).

Outputs follow what the model answers: a classifier gives ``label`` (BYTES [N], or INT64 [N] for
integer labels) and, when it has them, ``probabilities`` (FP64 [N, n_classes]); a regressor gives
``prediction`` (FP64 [N]). They come as JSON ``data`` or, when the request asks, as binary data.
"""

from __future__ import annotations

import json
import math
import struct
from array import array
from collections.abc import Mapping, Sequence
from itertools import chain

import numpy as np
from flask import Request, Response
from werkzeug.exceptions import UnsupportedMediaType

from mldeploy.api.payload import check_row_limit
from mldeploy.api.v2.typed_body import CheckedNumbers, typed_body
from mldeploy.http import jsonio
from modeler.cells import FLOAT32_MAX
from modeler.errors import FieldError, InvalidInput
from modeler.modeler import Inference, LoadedModel
from modeler.predictors.base import PROBABILITIES as CAN_PROBABILITIES
from modeler.predictors.base import VALUE, Predictor
from modeler.schema import BOOLEAN, INTEGER, NUMBER, TEXT, Schema
from modeler.validation import PLAIN_NUMBERS

PREFIX = "/v2"
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "sklearn"
EXTENSIONS = ("binary_tensor_data",)
BINARY_OUTPUT, BINARY, BINARY_SIZE = "binary_data_output", "binary_data", "binary_data_size"
# Accepted input datatypes and their wire format (little-endian, as the protocol specifies).
# BYTES has no fixed width: each element is a 4-byte little-endian length, then its bytes.
DTYPES = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "BOOL": np.dtype("?"),
}
BYTES = "BYTES"
FLOATS = ("FP32", "FP64")
# Which datatypes a tensor for a field of each schema type may have; the first is the one the
# model metadata states.
FIELD_DATATYPES = {
    NUMBER: ("FP64", "FP32"),
    INTEGER: ("INT64", "INT32", "FP64", "FP32"),
    TEXT: (BYTES,),
    BOOLEAN: ("BOOL",),
}
# What JSON data of each datatype must hold, in words.
KINDS = {BYTES: "strings", "BOOL": "booleans", "FP32": "numbers", "FP64": "numbers"}
# What JSON integers parse to, exactly (type(True) is bool, never int); numbers: PLAIN_NUMBERS.
_INT_JSON = frozenset({int})
LABEL, PROBABILITIES, PREDICTION = "label", "probabilities", "prediction"
# The outputs of the default model (the Iris tree), in order.
OUTPUTS = (LABEL, PROBABILITIES)


def bad(problem: str, field: str | None = None) -> InvalidInput:
    """An InvalidInput for one problem of the request as a whole (``field`` is a tensor name)."""
    return InvalidInput([FieldError(None, field, problem)], "Invalid inference request")


def is_v2(path: str) -> bool:
    """Whether ``path`` belongs to the protocol (its errors then read ``{"error": "..."}``)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def output_names(predictor: Predictor) -> tuple[str, ...]:
    """The outputs a model gives: ``prediction`` for a regressor, else ``label`` and, when it has
    them, ``probabilities``."""
    if predictor.can(VALUE):
        return (PREDICTION,)
    return (LABEL, PROBABILITIES) if predictor.can(CAN_PROBABILITIES) else (LABEL,)


def label_datatype(classes: Sequence[object]) -> str:
    """INT64 when every class label is an integer (0/1 stay integers), else BYTES."""
    ints = classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
    return "INT64" if ints else BYTES


def model_metadata(name: str, model: LoadedModel) -> dict:
    """Model metadata: one input per field, typed after it (``parameters`` say what the schema
    knows: nullable, the range or categories), the outputs the model gives, shapes from the model."""
    schema = model.schema
    inputs = []
    for f in schema.fields:
        tensor: dict = {"name": f.name, "datatype": FIELD_DATATYPES[f.type][0], "shape": [-1]}
        parameters = {"type": f.type, "nullable": f.nullable}
        if f.min is not None and f.max is not None:
            parameters["range"] = [f.min, f.max]
        if f.categories is not None:
            parameters["categories"] = list(f.categories)
        if not f.known:
            parameters["known"] = False
        tensor["parameters"] = parameters
        inputs.append(tensor)
    shapes = {
        LABEL: {"name": LABEL, "datatype": label_datatype(model.classes), "shape": [-1]},
        PROBABILITIES: {"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(model.classes)]},
        PREDICTION: {"name": PREDICTION, "datatype": "FP64", "shape": [-1]},
    }
    return {
        "name": name,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": [shapes[output] for output in output_names(model.predictor)],
    }


def read_request(request: Request) -> tuple[dict, bytes]:
    """The JSON header of an inference request and the binary tensor data that follows it."""
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("Compressed inference requests are not supported: send them uncompressed")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH this raises 413
    header, binary = raw, b""
    length = request.headers.get(HEADER_LENGTH)
    if length is not None:
        if not length.isdigit() or not 0 < int(length) <= len(raw):
            raise bad(f"{HEADER_LENGTH} must be the JSON header's size in bytes, at most {len(raw)}")
        header, binary = raw[: int(length)], raw[int(length) :]
    # The common request (flat FP32/FP64 JSON data) in one typed pass; anything else in general.
    body = typed_body(header) if not binary else None
    if body is not None:
        return body, binary
    try:
        body = jsonio.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad("the request must be a JSON object with an 'inputs' list")
    return body, binary


def _flat(data: object, name: str, datatype: str, nullable: bool) -> list:
    """Row-major flattening of JSON tensor data; each element must be of ``datatype``'s JSON type
    (numbers, integers, strings, booleans), or ``null`` where the field takes missing values."""
    if datatype == BYTES:
        accepted: tuple[type, ...] = (str,)
    elif datatype == "BOOL":
        accepted = (bool,)
    elif datatype in FLOATS:
        accepted = (int, float)
    else:
        accepted = (int,)
    out: list = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif type(item) in accepted or (item is None and nullable):  # type(): a bool is no number
            out.append(item)
        else:
            kinds = KINDS.get(datatype, "integers")
            raise bad(f"data must hold only {kinds}, found {json.dumps(item)}", name)
    return out


def _numbers(data: object, datatype: str) -> list | None:
    """The values of a numeric tensor's JSON data, flat, when it is a list of numbers or a list
    of lists of numbers (ints only for an INT type): checked by C loops over the parsed lists
    (``set(map(type, ...))``), with no Python step per value, which made a 10,000-row body's
    check cost three times its parse. None for anything else (BYTES or BOOL data, deeper nesting,
    a ``null``, a bool, a string): then :func:`_flat` walks it and names what is wrong."""
    if type(data) is CheckedNumbers and datatype in FLOATS:  # numbers, checked as they were read
        return data
    if type(data) is not list or datatype in (BYTES, "BOOL"):
        return None
    accepted = PLAIN_NUMBERS if datatype in FLOATS else _INT_JSON
    types = set(map(type, data))
    if types <= accepted:
        return data
    if types == {list}:
        flat = list(chain.from_iterable(data))
        if set(map(type, flat)) <= accepted:
            return flat
    return None


def _shape(tensor: dict, name: str) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise bad("shape must be a non-empty list of non-negative integers", name)
    return tuple(shape)


def _reshaped(values: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``values`` in ``shape``. A shape with a 0 holds no values whatever its other dimensions, but
    numpy still refuses dimensions whose product overflows: that is the client's shape, a 400."""
    try:
        return values.reshape(shape)
    except ValueError as exc:
        raise bad(f"shape {list(shape)} is too large", name) from exc


def _binary_strings(binary: bytes, offset: int, size: int, count: int, name: str) -> np.ndarray:
    """``count`` BYTES elements from ``binary[offset:offset+size]``, decoded as UTF-8 text."""
    out = np.empty(count, dtype=object)
    at, end = offset, offset + size
    for i in range(count):
        if at + 4 > end:
            raise bad(f"binary data holds fewer than {count} BYTES elements", name)
        (length,) = struct.unpack_from("<I", binary, at)
        if at + 4 + length > end:
            raise bad(f"BYTES element {i} runs past binary_data_size", name)
        try:
            out[i] = binary[at + 4 : at + 4 + length].decode()
        except UnicodeDecodeError as exc:
            raise bad(f"BYTES element {i} is not UTF-8 text", name) from exc
        at += 4 + length
    if at != end:
        raise bad(f"binary_data_size is {size} bytes but its {count} BYTES elements take {at - offset}", name)
    return out


def _binary(tensor: dict, binary: bytes, offset: int, size: object, datatype: str) -> tuple[np.ndarray, int]:
    """A tensor's values from the binary data after the JSON header, and the offset after them."""
    name, shape = tensor["name"], _shape(tensor, tensor["name"])
    count = math.prod(shape)
    if datatype == BYTES:
        if type(size) is not int or size < 4 * count or offset + size > len(binary):
            raise bad(f"binary_data_size must be the size of {count} BYTES elements, within the body", name)
        return _binary_strings(binary, offset, size, count, name), offset + size
    expected = count * DTYPES[datatype].itemsize
    if type(size) is not int or size != expected or offset + size > len(binary):
        raise bad(f"binary_data_size must be {expected} bytes for shape {list(shape)}, within the body", name)
    values = np.frombuffer(binary, dtype=DTYPES[datatype], count=count, offset=offset)
    if datatype in FLOATS:
        values = values.astype(np.float64)
    return values, offset + size


def _tensor(
    tensor: object, binary: bytes, offset: int, accepted: Mapping[str, tuple[tuple[str, ...], bool]]
) -> tuple[str, np.ndarray, int]:
    """One input as ``(name, array of its shape, offset after its binary data)``: float64 for FP32
    and FP64 (FP32 values cast as the wire type would), int64 for INT types, bool for BOOL, text
    objects for BYTES, objects with None where JSON data holds a ``null``. ``accepted`` maps each
    input name to its datatypes and whether it takes ``null`` (the matrix form's under ``None``)."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise bad("each input must be an object with a 'name'")
    name = tensor["name"]
    datatypes, nullable = accepted.get(name) or accepted[None]  # type: ignore[index]
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in datatypes:  # a list would not even hash
        raise bad(f"datatype {json.dumps(datatype)} is not supported: send {' or '.join(datatypes)}", name)
    shape = _shape(tensor, name)
    count = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        values, offset = _binary(tensor, binary, offset, size, datatype)
        return name, _reshaped(values, shape, name), offset
    if "data" not in tensor:
        raise bad("no data: send 'data' or binary data with parameters.binary_data_size", name)
    flat = _numbers(tensor["data"], datatype)
    objects = False  # only data _flat walked can hold a null (a scan for one costs what the check does)
    if flat is None:
        flat = _flat(tensor["data"], name, datatype, nullable)
        objects = datatype in (BYTES, "BOOL") or None in flat
    if len(flat) != count:
        raise bad(f"data holds {len(flat)} values but shape {list(shape)} needs {count}", name)
    if objects:
        return name, _reshaped(np.array(flat, dtype=object), shape, name), offset
    if datatype not in FLOATS:
        try:
            return name, _reshaped(np.asarray(flat, dtype=DTYPES[datatype]), shape, name), offset
        except OverflowError as exc:
            raise bad(f"a value is too large for {datatype}", name) from exc
    try:
        # An FP32 tensor holds float32 values: cast as the wire type would, so both forms agree.
        # Values beyond the type's range become inf, which validation then names per field.
        # fromiter: each value straight into the wire type, one pass (asarray then a cast took
        # a fifth longer for 40,000 values).
        with np.errstate(over="ignore"):
            values = np.fromiter(flat, dtype=DTYPES[datatype], count=count).astype(np.float64, copy=False)
    except OverflowError as exc:  # an integer beyond any float
        raise bad(f"a value is too large for {datatype}", name) from exc
    return name, _reshaped(values, shape, name), offset


# Per schema object, by identity (hashing a schema hashes every field, each call): (schema, inputs).
_ACCEPTED: dict[int, tuple[Schema, dict]] = {}
_ACCEPTED_KEPT = 64  # a few schemas per server (versions, named models)


def accepted_inputs(schema: Schema) -> dict[str | None, tuple[tuple[str, ...], bool]]:
    """:func:`schema_inputs` of ``schema``, made once per schema. Callers must not change it."""
    found = _ACCEPTED.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    if len(_ACCEPTED) >= _ACCEPTED_KEPT:
        _ACCEPTED.clear()
    accepted = schema_inputs(schema)
    _ACCEPTED[id(schema)] = (schema, accepted)
    return accepted


def schema_inputs(schema: Schema) -> dict[str | None, tuple[tuple[str, ...], bool]]:
    """``{input name: (datatypes, takes null)}`` per field, and under ``None`` what the one
    [N, n_features] tensor may be: the datatypes every field accepts (none for a model with a
    text or boolean field: it takes one tensor per feature)."""
    accepted: dict[str | None, tuple[tuple[str, ...], bool]] = {
        f.name: (FIELD_DATATYPES[f.type], f.nullable) for f in schema.fields
    }
    common = [d for d in DTYPES if all(d in FIELD_DATATYPES[f.type] for f in schema.fields)]
    accepted[None] = (tuple(common) or FLOATS, all(f.nullable for f in schema.fields))
    return accepted


def _as_rows(tensors: dict[str, np.ndarray], schema: Schema) -> np.ndarray | list[dict]:
    """The rows the inputs describe: an [N, n_features] float matrix in feature order for a model
    of plain numbers, else one ``{field: value}`` per row (the modeler's typed validation names
    each bad value)."""
    features = schema.names
    n_features = len(features)
    if len(tensors) == 1:
        ((name, values),) = tensors.items()
        if values.ndim == 2 and values.shape[1] == n_features and (n_features > 1 or name in features):
            if schema.numbers and values.dtype == np.float64:
                return values
            return [dict(zip(features, row, strict=True)) for row in values.tolist()]
        if name not in features:  # meant as the one matrix of rows: its shape is what is wrong
            raise bad(
                f"shape {list(values.shape)} does not fit: one tensor needs shape [N, {n_features}], "
                f"{n_features} values per row in the order {', '.join(features)} (or send one input per "
                "feature, named after it, of shape [N])",
                name,
            )
    missing = [f for f in features if f not in tensors]
    unknown = [n for n in tensors if n not in features]
    if unknown or missing:
        problems = [FieldError(None, n, "unknown input") for n in unknown]
        problems += [FieldError(None, f, "missing input") for f in missing]
        raise InvalidInput(
            problems,
            f"Invalid inference request: send one tensor of shape [N, {n_features}] in the order "
            f"{', '.join(features)}, or one input per feature of shape [N]",
        )
    columns = []
    for feature in features:
        values = tensors[feature]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise bad(f"shape must be [N] or [N, 1], got {list(tensors[feature].shape)}", feature)
        columns.append(values)
    if len({len(c) for c in columns}) != 1:
        raise bad("every input needs the same number of rows N")
    if schema.numbers and all(c.dtype == np.float64 for c in columns):
        return np.column_stack(columns)
    lists = [c.tolist() for c in columns]  # Python values: int, float, str, bool, None
    return [dict(zip(features, row, strict=True)) for row in zip(*lists, strict=True)]


def _one_row(inputs: list, binary: bytes, schema: Schema) -> list[list[float]] | None:
    """The most common request in its cheapest form: one FP32/FP64 tensor of shape [1, n] of plain
    numbers for a model of numbers, as one row of Python floats (FP32 values cast as the wire
    type would), with no numpy on the way: each numpy call costs a few µs at this size, and more
    with a server's cold caches. None for anything else, which the general path reads, checks
    and names."""
    n = len(schema.names)
    if binary or len(inputs) != 1 or n < 2 or not schema.numbers:
        return None
    tensor = inputs[0]
    if type(tensor) is not dict or "parameters" in tensor or tensor.get("shape") != [1, n]:
        return None
    name, datatype = tensor.get("name"), tensor.get("datatype")
    if type(name) is not str or datatype not in FLOATS:
        return None
    accepted = accepted_inputs(schema)
    if datatype not in (accepted.get(name) or accepted[None])[0]:
        return None
    flat = _numbers(tensor.get("data"), datatype)
    # Past float32's range the general path makes inf, which validation names per field.
    if flat is None or len(flat) != n or not all(-FLOAT32_MAX <= v <= FLOAT32_MAX for v in flat):
        return None
    return [array("f", flat).tolist() if datatype == "FP32" else [float(v) for v in flat]]


def rows_from_request(
    body: dict, binary: bytes, schema: Schema, max_rows: int
) -> np.ndarray | list[dict] | list[list[float]]:
    """Validate the request's inputs and return them as rows :meth:`Modeler.infer` takes: an
    [N, n_features] float64 matrix for a model of plain numbers (a one-row tensor as a list of
    one list of floats), else one dict per row."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad("'inputs' must be a non-empty list of tensors", "inputs")
    row = _one_row(inputs, binary, schema)
    if row is not None:
        check_row_limit(1, max_rows)
        return row
    accepted = accepted_inputs(schema)
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        name, values, offset = _tensor(tensor, binary, offset, accepted)
        if name in tensors:
            raise bad("input given twice", name)
        tensors[name] = values
    if offset != len(binary):
        raise bad(f"{len(binary) - offset} bytes of binary data belong to no input")
    rows = _as_rows(tensors, schema)
    if len(rows) == 0:
        raise bad("no rows: N is 0")
    check_row_limit(len(rows), max_rows)
    return rows


def _flag(parameters: object, key: str) -> bool:
    return isinstance(parameters, dict) and parameters.get(key) is True


def requested_outputs(body: dict, available: Sequence[str] = OUTPUTS) -> dict[str, bool]:
    """``{output name: sent as binary?}`` for the outputs the request names (all ``available``
    when it names none); binary when the output's ``binary_data`` or the request's
    ``binary_data_output`` says so."""
    all_binary = _flag(body.get("parameters"), BINARY_OUTPUT)
    outputs = body.get("outputs")
    if outputs is None:
        return dict.fromkeys(available, all_binary)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise bad("'outputs' must be a list of objects with a 'name'", "outputs")
    unknown = [o.get("name") for o in outputs if o.get("name") not in available]
    if unknown:
        raise bad(f"unknown output {json.dumps(unknown[0])}: this model has {', '.join(available)}", "outputs")
    chosen = {o["name"]: all_binary or _flag(o.get("parameters"), BINARY) for o in outputs}
    return chosen or dict.fromkeys(available, all_binary)


def _bytes_tensor(labels: Sequence[object]) -> bytes:
    """BYTES elements on the wire: each a 4-byte little-endian length, then its UTF-8 bytes."""
    encoded = [str(label).encode() for label in labels]
    return b"".join(struct.pack("<I", len(e)) + e for e in encoded)


def _probability_data(result: Inference) -> object:
    """The probabilities tensor's JSON data, flat: one table entry's row as a list (no numpy for
    a one-row answer), else the array (orjson writes numpy arrays itself, see jsonio)."""
    found = result.answers.table_entries()
    if found is not None and len(found[1]) == 1:
        table, (entry,) = found
        return list(table.probability_dicts[entry].values())  # in the table's class order
    return result.probabilities.ravel()


def infer_response(name: str, result: Inference, outputs: dict[str, bool], request_id: object = None) -> Response:
    """The inference response: the requested outputs, and the model version that computed them.

    JSON when no output is binary; else the JSON header, then the binary outputs' bytes in order,
    its length in ``Inference-Header-Content-Length``.
    """
    n = len(result.answers)
    integer_labels = label_datatype(result.classes) == "INT64"
    # Text labels are sent as they are; any other kind (floats, bools) as its text.
    text_labels = all(type(c) is str for c in result.classes)
    tensors = {
        LABEL: (
            "INT64" if integer_labels else BYTES,
            [n],
            lambda: result.labels if integer_labels or text_labels else list(map(str, result.labels)),
            lambda: (
                np.asarray(result.labels, dtype="<i8").tobytes() if integer_labels else _bytes_tensor(result.labels)
            ),
        ),
        PROBABILITIES: (
            "FP64",
            [n, len(result.classes)],
            lambda: _probability_data(result),
            lambda: np.ascontiguousarray(result.probabilities, dtype="<f8").tobytes(),
        ),
        PREDICTION: (
            "FP64",
            [n],
            lambda: result.answers.values(),
            lambda: np.ascontiguousarray(result.answers.values(), dtype="<f8").tobytes(),
        ),
    }
    header: dict = {"model_name": name, "model_version": result.version}
    if isinstance(request_id, str) and request_id:
        header["id"] = request_id
    header["outputs"], chunks = [], []
    for output, binary in outputs.items():
        datatype, shape, as_json, as_bytes = tensors[output]
        tensor: dict = {"name": output, "datatype": datatype, "shape": shape}
        if binary:
            chunks.append(as_bytes())
            tensor["parameters"] = {BINARY_SIZE: len(chunks[-1])}
        else:
            tensor["data"] = as_json()
        header["outputs"].append(tensor)
    text = jsonio.dumps(header)
    if not chunks:
        return Response(text, mimetype="application/json")
    response = Response(b"".join([text, *chunks]), mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(text))
    return response
