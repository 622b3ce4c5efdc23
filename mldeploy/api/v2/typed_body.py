"""The common inference request, read in one typed pass: JSON tensors of FP32 or FP64 numbers in
a flat ``data`` list (what tritonclient and most clients send), with flat ``parameters``.

The general reader parses the body with orjson and then checks, with one C loop over all the
values, that every one of them is a number and none a bool: for a 10,000 x 4 tensor that check
cost about what the parse did. msgspec reads the body against the request's shape with the data
typed as numbers, so the check happens while parsing; the values it gives are marked
(:class:`CheckedNumbers`) so the protocol does not check them again. Anything else (another
datatype, nested or binary data, a null, a bool, a string, nested parameters, an unknown key)
goes to the general reader, which checks and reports it as ever: this path only makes the
common valid request cheaper, and every later check (shape, counts, the model's inputs) is the
same code for both.
"""

from __future__ import annotations

import msgspec

# Parameter values as the common requests send them; a nested one goes to the general reader
# (which bounds nesting, mldeploy/http/json_limits.py).
Scalar = str | int | float | bool | None
# The datatypes whose JSON data is numbers (protocol.FLOATS).
FLOAT_DATATYPES = frozenset({"FP32", "FP64"})


class CheckedNumbers(list):
    """A tensor's flat data that the typed reader found to hold only numbers (no bool)."""

    __slots__ = ()


class _Tensor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]
    parameters: dict[str, Scalar] | None = None


class _Output(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    parameters: dict[str, Scalar] | None = None


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    inputs: list[_Tensor]
    id: str | None = None
    parameters: dict[str, Scalar] | None = None
    outputs: list[_Output] | None = None


_DECODER = msgspec.json.Decoder(_Request)


def typed_body(raw: bytes) -> dict | None:
    """The request as the general reader would give it, each tensor's data a
    :class:`CheckedNumbers`; None when the body is not such a request (parse it in general)."""
    try:
        request = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    inputs = []
    for tensor in request.inputs:
        if tensor.datatype not in FLOAT_DATATYPES:
            return None  # integer data is read as integers by the general reader
        item: dict = {"name": tensor.name, "shape": tensor.shape, "datatype": tensor.datatype}
        item["data"] = CheckedNumbers(tensor.data)
        if tensor.parameters is not None:
            item["parameters"] = tensor.parameters
        inputs.append(item)
    body: dict = {"inputs": inputs}
    if request.id is not None:
        body["id"] = request.id
    if request.parameters is not None:
        body["parameters"] = request.parameters
    if request.outputs is not None:
        body["outputs"] = [
            {"name": o.name, **({"parameters": o.parameters} if o.parameters is not None else {})}
            for o in request.outputs
        ]
    return body
