"""The Open Inference Protocol (KServe V2) over REST: request tensors in, response tensors out.

Inputs are either one FP32/FP64 tensor of shape [N, n_features] in feature order (any name), or
one tensor per feature named after it, of shape [N] or [N, 1]. Tensor data comes as JSON
``data`` (flat or nested, row-major) or as raw little-endian bytes after the JSON header (the
binary tensor extension tritonclient uses by default: ``Inference-Header-Content-Length`` and
``parameters.binary_data_size``). Outputs are ``label`` (BYTES [N]) and ``probabilities``
(FP64 [N, n_classes]), as JSON ``data`` or, when the request asks for it, as binary data.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence

import numpy as np
from flask import Request, Response
from werkzeug.exceptions import UnsupportedMediaType

from mldeploy.api.payload import check_row_limit
from mldeploy.http import jsonio
from modeler.errors import FieldError, InvalidInput
from modeler.modeler import Inference, LoadedModel

PREFIX = "/v2"
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "sklearn"
EXTENSIONS = ("binary_tensor_data",)
BINARY_OUTPUT, BINARY, BINARY_SIZE = "binary_data_output", "binary_data", "binary_data_size"
# Accepted input datatypes and their wire format (little-endian, as the protocol specifies).
DTYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
LABEL, PROBABILITIES = "label", "probabilities"
OUTPUTS = (LABEL, PROBABILITIES)


def bad(problem: str, field: str | None = None) -> InvalidInput:
    """An InvalidInput for one problem of the request as a whole (``field`` is a tensor name)."""
    return InvalidInput([FieldError(None, field, problem)], "Invalid inference request")


def is_v2(path: str) -> bool:
    """Whether ``path`` belongs to the protocol (its errors then read ``{"error": "..."}``)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def model_metadata(name: str, model: LoadedModel) -> dict:
    """Model metadata: one FP64 input per feature, the two outputs, shapes from the model."""
    return {
        "name": name,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [{"name": feature, "datatype": "FP64", "shape": [-1]} for feature in model.features],
        "outputs": [
            {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
            {"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(model.classes)]},
        ],
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
    try:
        body = jsonio.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad("the request must be a JSON object with an 'inputs' list")
    return body, binary


def _flat_numbers(data: object, name: str) -> list[float]:
    """Row-major flattening of JSON tensor data; anything but numbers is an error."""
    out: list[float] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif type(item) in (int, float):  # not bool, which is an int subclass
            out.append(item)
        else:
            raise bad(f"data must hold only numbers, found {json.dumps(item)}", name)
    return out


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


def _tensor(tensor: object, binary: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    """One input as ``(name, float64 array of its shape, offset after its binary data)``."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise bad("each input must be an object with a 'name'")
    name = tensor["name"]
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:  # a list would not even hash
        raise bad(f"datatype {json.dumps(datatype)} is not supported: send {' or '.join(DTYPES)}", name)
    shape = _shape(tensor, name)
    count = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        expected = count * DTYPES[datatype].itemsize
        if type(size) is not int or size != expected or offset + size > len(binary):
            raise bad(f"binary_data_size must be {expected} bytes for shape {list(shape)}, within the body", name)
        values = np.frombuffer(binary, dtype=DTYPES[datatype], count=count, offset=offset)
        return name, _reshaped(values.astype(np.float64), shape, name), offset + size
    if "data" not in tensor:
        raise bad("no data: send 'data' or binary data with parameters.binary_data_size", name)
    flat = _flat_numbers(tensor["data"], name)
    if len(flat) != count:
        raise bad(f"data holds {len(flat)} values but shape {list(shape)} needs {count}", name)
    try:
        # An FP32 tensor holds float32 values: cast as the wire type would, so both forms agree.
        # Values beyond the type's range become inf, which validation then names per field.
        with np.errstate(over="ignore"):
            values = np.asarray(flat, dtype=np.float64).astype(DTYPES[datatype]).astype(np.float64)
    except OverflowError as exc:  # an integer beyond any float
        raise bad(f"a value is too large for {datatype}", name) from exc
    return name, _reshaped(values, shape, name), offset


def _as_rows(tensors: dict[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """The [N, n_features] matrix the inputs describe, in feature order."""
    n_features = len(features)
    if len(tensors) == 1:
        ((name, values),) = tensors.items()
        if values.ndim == 2 and values.shape[1] == n_features and (n_features > 1 or name in features):
            return values
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
            f"Invalid inference request: send one FP32/FP64 tensor of shape [N, {n_features}] in the order "
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
    return np.column_stack(columns)


def rows_from_request(body: dict, binary: bytes, features: Sequence[str], max_rows: int) -> np.ndarray:
    """Validate the request's inputs and return them as an [N, n_features] float64 matrix."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad("'inputs' must be a non-empty list of tensors", "inputs")
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        name, values, offset = _tensor(tensor, binary, offset)
        if name in tensors:
            raise bad("input given twice", name)
        tensors[name] = values
    if offset != len(binary):
        raise bad(f"{len(binary) - offset} bytes of binary data belong to no input")
    rows = _as_rows(tensors, features)
    if len(rows) == 0:
        raise bad("no rows: N is 0")
    check_row_limit(len(rows), max_rows)
    return rows


def _flag(parameters: object, key: str) -> bool:
    return isinstance(parameters, dict) and parameters.get(key) is True


def requested_outputs(body: dict) -> dict[str, bool]:
    """``{output name: sent as binary?}`` for the outputs the request names (all when it names
    none); binary when the output's ``binary_data`` or the request's ``binary_data_output`` says so."""
    all_binary = _flag(body.get("parameters"), BINARY_OUTPUT)
    outputs = body.get("outputs")
    if outputs is None:
        return dict.fromkeys(OUTPUTS, all_binary)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise bad("'outputs' must be a list of objects with a 'name'", "outputs")
    unknown = [o.get("name") for o in outputs if o.get("name") not in OUTPUTS]
    if unknown:
        raise bad(f"unknown output {json.dumps(unknown[0])}: this model has {', '.join(OUTPUTS)}", "outputs")
    chosen = {o["name"]: all_binary or _flag(o.get("parameters"), BINARY) for o in outputs}
    return chosen or dict.fromkeys(OUTPUTS, all_binary)


def _bytes_tensor(labels: Sequence[str]) -> bytes:
    """BYTES elements on the wire: each a 4-byte little-endian length, then its UTF-8 bytes."""
    encoded = [label.encode() for label in labels]
    return b"".join(struct.pack("<I", len(e)) + e for e in encoded)


def infer_response(name: str, result: Inference, outputs: dict[str, bool], request_id: object = None) -> Response:
    """The inference response: the requested outputs, and the model version that computed them.

    JSON when no output is binary; else the JSON header, then the binary outputs' bytes in order,
    its length in ``Inference-Header-Content-Length``.
    """
    n = len(result.answers)
    tensors = {
        LABEL: ("BYTES", [n], lambda: result.labels, lambda: _bytes_tensor(result.labels)),
        PROBABILITIES: (
            "FP64",
            [n, len(result.classes)],
            lambda: result.probabilities.ravel(),  # orjson writes numpy arrays itself (jsonio)
            lambda: np.ascontiguousarray(result.probabilities, dtype="<f8").tobytes(),
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
