"""The wire contract, read from botocore's service models at start-up.

Three models are served: ``personalize`` (json 1.1, routed by ``X-Amz-Target``), and
``personalize-runtime`` / ``personalize-events`` (rest-json, routed by method and path). This module
finds the operation for a request, checks its input against every constraint the model declares
(botocore on the client checks only required members, types and minimums), and shapes the output
so that only modeled members, in their modeled types, go back on the wire.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from dataclasses import dataclass

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape

from ..errors import InvalidInputException

SERVICE_NAMES = ("personalize", "personalize-runtime", "personalize-events")
CONTROL_PLANE = "personalize"
TARGET_PREFIX = "AmazonPersonalize."


@dataclass(frozen=True)
class Operation:
    service: str
    model: OperationModel

    @property
    def name(self) -> str:
        return self.model.name


@functools.lru_cache(maxsize=None)
def service_models() -> dict[str, ServiceModel]:
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in SERVICE_NAMES}


@functools.lru_cache(maxsize=None)
def rest_routes() -> dict[tuple[str, str], Operation]:
    """``(method, path)`` to operation, for the two rest-json services."""
    routes = {}
    for name in SERVICE_NAMES[1:]:
        model = service_models()[name]
        for op_name in model.operation_names:
            op = model.operation_model(op_name)
            routes[(op.http["method"], op.http["requestUri"])] = Operation(name, op)
    return routes


def control_operation(target: str) -> Operation | None:
    if not target.startswith(TARGET_PREFIX):
        return None
    model = service_models()[CONTROL_PLANE]
    name = target[len(TARGET_PREFIX):]
    if name not in model.operation_names:
        return None
    return Operation(CONTROL_PLANE, model.operation_model(name))


def all_operations() -> list[Operation]:
    ops = []
    for service, model in service_models().items():
        ops.extend(Operation(service, model.operation_model(n)) for n in model.operation_names)
    return ops


# ---------------------------------------------------------------------------------------------
# Input validation


# Java's ``.`` stops at every line terminator (without DOTALL); Python's only at "\n".
_JAVA_DOT = "[^\n\r\u0085\u2028\u2029]"
# Java's \d, \w and \s are ASCII-only unless asked otherwise; Python's are Unicode. Each maps to
# (outside a class, inside a class).
_JAVA_CLASSES = {
    "d": ("[0-9]", "0-9"),
    "w": ("[a-zA-Z0-9_]", "a-zA-Z0-9_"),
    "s": ("[ \t\n\x0b\f\r]", " \t\n\x0b\f\r"),
    "D": ("[^0-9]", None),
    "W": ("[^a-zA-Z0-9_]", None),
    "S": ("[^ \t\n\x0b\f\r]", None),
}


def java_pattern(pattern: str) -> str:
    r"""A Java regular expression of the models rewritten so that Python matches what Java
    matches: ``.`` and the ASCII shorthand classes. ``\p{L}`` and the other Unicode properties
    mean the same in Java and in the regex package."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            outside, inside = _JAVA_CLASSES.get(nxt, (None, None))
            replacement = inside if in_class else outside
            out.append(replacement if replacement is not None else pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == ".":
            c = _JAVA_DOT
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern | regex.Pattern | None:
    # The models' patterns are Java regular expressions matched against the whole value. Those
    # with Unicode properties (tag keys and values: \p{L}\p{Z}\p{N}) need the regex package; the
    # others go to re, several times faster on the ARNs of every runtime call.
    translated = java_pattern(pattern)
    try:
        return re.compile(translated)
    except re.error:
        pass
    try:
        return regex.compile(translated)
    except regex.error:
        return None


def _show(value, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _Validator:
    def __init__(self):
        self.errors: list[str] = []

    def fail(self, path: str, value, rule: str) -> None:
        self.errors.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: {rule}")

    def check(self, shape: Shape, value, path: str):
        """Validate and return the value converted to its Python form (timestamps to floats)."""
        kind = shape.type_name
        if kind == "structure":
            if not isinstance(value, dict):
                return self.fail(path, value, "Member must be an object")
            out = {}
            for member in shape.required_members:
                if value.get(member) is None:
                    self.errors.append(f"Value null at '{_join(path, member)}' failed to satisfy "
                                       "constraint: Member must not be null")
            for key, item in value.items():
                if item is None or key not in shape.members:
                    continue  # unknown members are ignored, for newer SDKs
                out[key] = self.check(shape.members[key], item, _join(path, key))
            return out
        if kind == "list":
            if not isinstance(value, list):
                return self.fail(path, value, "Member must be a list")
            self._length(shape, value, path, "Member must have length")
            return [self.check(shape.member, item, f"{path}.{i + 1}") for i, item in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                return self.fail(path, value, "Member must be a map")
            self._length(shape, value, path, "Member must have length")
            out = {}
            for key, item in value.items():
                self.check(shape.key, key, f"{path}.key")
                out[key] = self.check(shape.value, item, f"{path}.{key}")
            return out
        if kind == "string":
            if not isinstance(value, str):
                return self.fail(path, value, "Member must be a string")
            if not value.isascii() and _unpaired_surrogate(value):
                # JSON can escape half of a UTF-16 pair ("\ud800"); such a string has no UTF-8 form,
                # so nothing could store or return it.
                return self.fail(path, value.encode("utf-8", "backslashreplace").decode("ascii"),
                                 "Member must be a valid Unicode string (it has an unpaired surrogate)")
            self._length(shape, value, path, "Member must have length")
            pattern = shape.metadata.get("pattern")
            if pattern and (rx := _compiled(pattern)) is not None and not rx.fullmatch(value):
                self.fail(path, value, f"Member must satisfy regular expression pattern: {pattern}")
            enum = shape.metadata.get("enum")
            if enum and value not in enum:
                self.fail(path, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    return self.fail(path, value, "Member must be an integer")
            self._range(shape, value, path)
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return self.fail(path, value, "Member must be a number")
            self._range(shape, value, path)
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                return self.fail(path, value, "Member must be a boolean")
            return value
        if kind == "timestamp":
            return self._timestamp(value, path)
        if kind == "blob":
            return value
        return value

    def _length(self, shape: Shape, value, path: str, rule: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        n = len(value)
        if lo is not None and n < lo:
            self.fail(path, value, f"{rule} greater than or equal to {lo}")
        if hi is not None and n > hi:
            self.fail(path, value, f"{rule} less than or equal to {hi}")

    def _range(self, shape: Shape, value, path: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and value < lo:
            self.fail(path, value, f"Member must have value greater than or equal to {lo}")
        if hi is not None and value > hi:
            self.fail(path, value, f"Member must have value less than or equal to {hi}")

    def _timestamp(self, value, path: str):
        if isinstance(value, bool):
            return self.fail(path, value, "Member must be a timestamp")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return self.fail(path, value, "Member must be a timestamp (epoch seconds or ISO 8601)")
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            return parsed.timestamp()
        return self.fail(path, value, "Member must be a timestamp")


def _unpaired_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def validate_input(op: Operation, body) -> dict:
    """Check ``body`` against the operation's input shape; return it with typed values.

    Raises InvalidInputException naming every violated member, its value and the rule.
    """
    shape = op.model.input_shape
    if shape is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidInputException("The request body must be a JSON object.")
    validator = _Validator()
    params = validator.check(shape, body, "")
    if validator.errors:
        count = len(validator.errors)
        noun = "error" if count == 1 else "errors"
        raise InvalidInputException(f"{count} validation {noun} detected: " + "; ".join(validator.errors))
    return params


def output_errors(op: Operation, body) -> list[str]:
    """Every way ``body`` (a decoded response) breaks the operation's output shape: required
    members, types, lengths, ranges, patterns and enums, in the words of input validation."""
    shape = op.model.output_shape
    if shape is None:
        return [] if not body else ["The operation has no output, but the body is not empty"]
    validator = _Validator()
    validator.check(shape, body, "")
    return validator.errors


# ---------------------------------------------------------------------------------------------
# Output shaping


def shape_output(op: Operation, result: dict | None) -> dict:
    """Keep only modeled members, drop nulls, and render timestamps as epoch seconds."""
    if result is None:
        return {}
    render = _output_renderer(op.service, op.name)
    return render(result) if render is not None else {}


@functools.lru_cache(maxsize=None)
def _output_renderer(service: str, name: str):
    shape = service_models()[service].operation_model(name).output_shape
    return None if shape is None else _renderer(shape, {})


def _renderer(shape: Shape, seen: dict):
    """A function rendering values of ``shape``, built once per operation: answers such as a
    recommendation list go through it on every request, so the model is walked only here.
    ``None`` stands for "as is" (strings, booleans, blobs), saving a call per value."""
    if shape.name in seen:  # a recursive shape: resolve the reference when it is called
        return lambda value: seen[shape.name](value)
    kind = shape.type_name
    if kind == "structure":
        seen[shape.name] = None
        members = [(key, _renderer(member, seen)) for key, member in shape.members.items()]

        def structure(value):
            out = {}
            if isinstance(value, dict):
                for key, render in members:
                    item = value.get(key)
                    if item is not None:
                        out[key] = item if render is None else render(item)
            return out

        seen[shape.name] = structure
        return structure
    if kind == "list":
        render = _renderer(shape.member, seen)
        return list if render is None else (lambda value: [render(item) for item in value])
    if kind == "map":
        render = _renderer(shape.value, seen)
        return dict if render is None else (lambda value: {key: render(item) for key, item in value.items()})
    if kind == "timestamp":
        return _timestamp
    if kind in ("integer", "long"):
        return int
    if kind in ("float", "double"):
        return float
    return None


def _timestamp(value) -> float:
    if isinstance(value, dt.datetime):
        return round(value.timestamp(), 3)
    return round(float(value), 3)
