"""The machinery behind :mod:`lyra.audit.events`: frozen dataclasses that read and write
event-log payloads, strictly and byte for byte.

A payload type is a ``@dataclass(frozen=True, slots=True)`` subclass of :class:`Payload`
whose fields are the payload's keys. The field's annotation says how its value is written:

================================  ==================================================
annotation                        in the payload
================================  ==================================================
``str`` / ``int`` / ``bool``      the same JSON type (``1`` is not ``true``)
``Decimal``                       text, ``str(d)``; ``plain=True``: ``plain_str(d)``
``float``                         text, ``repr(x)`` (marks are written so)
``datetime``                      ISO-8601 text, ``dt.isoformat()``
a ``StrEnum``                     its value
``X | None``                      ``null`` or X
``Mapping[str, X]``               an object of X
``tuple[X, ...]``                 an array of X
another ``Payload``               a nested object
``Any`` / ``Json``                any JSON, kept as is (read-only: objects become
                                  ``MappingProxyType``, arrays tuples)
================================  ==================================================

Types are declared ``kw_only=True``: build them with names, ``OrderSubmitted(client_order_id=
"s1-00000001", ts=...)``.

Reading is strict: a missing key, a key the type does not have, a value of another JSON
type, or text that the writer would not have written (``"1.50"`` where ``str`` writes it
so, but ``"1.5E+0"`` it never does) raise :class:`EventPayloadError` naming the kind and the
field. So whatever :meth:`Payload.from_payload` accepts, :meth:`Payload.to_payload` writes
back to the same canonical JSON: the hash chain of an old log still verifies after a round
trip.

A field made with :func:`optional` may be absent: absent reads as its default (``None`` or
``""``) and the default is left out when writing. The default itself never appears in a
payload (writers leave it out), so reading it is refused too. :func:`key` names a payload key
that is not a Python name (``"from"``); :func:`extra_keys` collects the keys of an open-ended
payload (a reconcile difference's detail).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, ClassVar, Self

from lyra.core.errors import ValidationError
from lyra.core.values import plain_str

#: Any JSON value (read-only once parsed: objects are MappingProxyType, arrays tuples).
Json = Any


class EventPayloadError(ValidationError):
    """A payload that does not have its kind's shape. ``kind`` is the event kind; ``field``
    (inherited) is ``"<kind>.<path>"``, e.g. ``order.fill.fill.price``."""

    def __init__(self, kind: str, path: str, value: object, problem: str, hint: str | None = None) -> None:
        self.kind = kind
        self.path = path
        super().__init__(f"{kind}.{path}" if path else kind, value, problem, hint)


class _Bad(Exception):
    """A decoding failure deep in a value; the path is completed on the way out."""

    def __init__(self, problem: str, value: object, path: tuple[str, ...] = (),
                 hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.value = value
        self.path = path
        self.hint = hint

    def under(self, name: str) -> _Bad:
        return _Bad(self.problem, self.value, (name, *self.path), self.hint)


def optional(default: Any = None, *, key: str | None = None, plain: bool = False) -> Any:
    """A field the payload may leave out (then it reads as ``default``)."""
    return dataclasses.field(default=default, metadata={"omit": True, "key": key, "plain": plain})


def key(name: str, *, plain: bool = False) -> Any:
    """A required field whose payload key is ``name`` (for keys like ``from``)."""
    return dataclasses.field(metadata={"key": name, "plain": plain})


def plain() -> Any:
    """A required Decimal field (or map/array of them) written with ``plain_str``."""
    return dataclasses.field(metadata={"plain": True})


# ------------------------------------------------------------------------------- codecs
Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]


def _type_name(v: object) -> str:
    return {str: "text", bool: "true/false", int: "an integer", float: "a number", dict: "an object",
            list: "an array", type(None): "null"}.get(type(v), type(v).__name__)


def _exact(tp: type, what: str) -> Decode:
    def decode(raw: Any) -> Any:
        if type(raw) is not tp:
            raise _Bad(f"must be {what}, not {_type_name(raw)}", raw)
        return raw
    return decode


def _identity(v: Any) -> Any:
    return v


def _decimal(fmt: Callable[[Decimal], str]) -> tuple[Decode, Encode]:
    def decode(raw: Any) -> Decimal:
        if type(raw) is not str:
            raise _Bad(f"must be a decimal number as text, not {_type_name(raw)}", raw)
        try:
            d = Decimal(raw)
        except InvalidOperation:
            raise _Bad("is not a decimal number", raw) from None
        if fmt(d) != raw:
            raise _Bad("is not written the way the log writes it", raw, hint=f"expected {fmt(d)!r}")
        return d
    return decode, fmt


def _float_text(raw: Any) -> float:
    if type(raw) is not str:
        raise _Bad(f"must be a number as text, not {_type_name(raw)}", raw)
    try:
        x = float(raw)
    except ValueError:
        raise _Bad("is not a number", raw) from None
    if repr(x) != raw:
        raise _Bad("is not written the way the log writes it", raw, hint=f"expected {x!r}")
    return x


def _datetime(raw: Any) -> datetime:
    if type(raw) is not str:
        raise _Bad(f"must be an ISO-8601 time as text, not {_type_name(raw)}", raw)
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise _Bad("is not an ISO-8601 time", raw) from None
    if dt.isoformat() != raw:
        raise _Bad("is not written the way the log writes it", raw, hint=f"expected {dt.isoformat()!r}")
    return dt


def _enum(tp: type[Enum]) -> tuple[Decode, Encode]:
    values = {m.value: m for m in tp}

    def decode(raw: Any) -> Enum:
        m = values.get(raw) if type(raw) is str else None
        if m is None:
            raise _Bad("is not one of " + ", ".join(map(str, values)), raw)
        return m
    return decode, lambda m: m.value


def freeze(v: Any) -> Json:
    """A parsed JSON value made read-only (objects -> MappingProxyType, arrays -> tuples)."""
    if isinstance(v, dict):
        return types.MappingProxyType({k: freeze(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(freeze(x) for x in v)
    return v


def thaw(v: Json) -> Any:
    """The JSON-ready form of a :func:`freeze` d value (or of any dict/list/tuple nesting)."""
    if isinstance(v, Mapping):
        return {k: thaw(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [thaw(x) for x in v]
    return v


_SCALARS: dict[Any, type] = {str: str, int: int, bool: bool, type(None): type(None)}
_SCALAR_NAMES = {str: "text", int: "an integer", bool: "true/false", type(None): "null"}


def _codec(tp: Any, plain_decimals: bool) -> tuple[Decode, Encode]:
    """How to read and write a value annotated ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return freeze, thaw
    if tp is str:
        return _exact(str, "text"), _identity
    if tp is bool:
        return _exact(bool, "true or false"), _identity
    if tp is int:
        return _exact(int, "an integer"), _identity
    if tp is Decimal:
        return _decimal(plain_str if plain_decimals else str)
    if tp is float:
        return _float_text, repr
    if tp is datetime:
        return _datetime, lambda dt: dt.isoformat()
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum(tp)
    if isinstance(tp, type) and issubclass(tp, Payload):
        nested = tp
        return (lambda raw: nested._decode(raw)), (lambda v: v.to_payload())
    if origin in (types.UnionType, typing.Union):
        if all(a in _SCALARS for a in args):  # e.g. str | int | bool | None: any of them, as is
            allowed = tuple(_SCALARS[a] for a in args)
            names = " or ".join(_SCALAR_NAMES[a] for a in allowed)

            def scalar(raw: Any) -> Any:
                if type(raw) not in allowed:
                    raise _Bad(f"must be {names}, not {_type_name(raw)}", raw)
                return raw
            return scalar, _identity
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {tp!r}: only X | None")
        dec, enc = _codec(rest[0], plain_decimals)
        return (lambda raw: None if raw is None else dec(raw)), (lambda v: None if v is None else enc(v))
    if origin is Mapping or origin is dict:
        if args[0] is not str:
            raise TypeError(f"unsupported mapping {tp!r}: keys must be str")
        vdec, venc = _codec(args[1], plain_decimals)

        def decode_map(raw: Any) -> Mapping[str, Any]:
            if type(raw) is not dict:
                raise _Bad(f"must be an object, not {_type_name(raw)}", raw)
            out = {}
            for k, v in raw.items():
                try:
                    out[k] = vdec(v)
                except _Bad as e:
                    raise e.under(k) from None
            return types.MappingProxyType(out)
        return decode_map, lambda m: {k: venc(v) for k, v in m.items()}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        idec, ienc = _codec(args[0], plain_decimals)

        def decode_list(raw: Any) -> tuple[Any, ...]:
            if type(raw) is not list:
                raise _Bad(f"must be an array, not {_type_name(raw)}", raw)
            out = []
            for i, v in enumerate(raw):
                try:
                    out.append(idec(v))
                except _Bad as e:
                    raise e.under(str(i)) from None
            return tuple(out)
        return decode_list, lambda t: [ienc(v) for v in t]
    raise TypeError(f"no payload codec for {tp!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    key: str
    decode: Decode
    encode: Encode
    omit: bool
    default: Any


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    fields: tuple[_Field, ...]
    by_key: Mapping[str, _Field]
    keys: frozenset[str]
    rest: str | None  # the field that takes every other key (reconcile differences)


_SPECS: dict[type, _Spec] = {}


def _spec(cls: type[Payload]) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls)
        out: list[_Field] = []
        others = None
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = f.metadata
            if meta.get("rest"):
                others = f.name
                continue
            dec, enc = _codec(hints[f.name], bool(meta.get("plain")))
            omit = bool(meta.get("omit"))
            out.append(_Field(f.name, meta.get("key") or f.name, dec, enc, omit, f.default if omit else None))
        spec = _SPECS[cls] = _Spec(tuple(out), {x.key: x for x in out}, frozenset(x.key for x in out), others)
    return spec


def extra_keys() -> Any:
    """The field that takes every key the type does not name (an open-ended payload)."""
    return dataclasses.field(default_factory=lambda: types.MappingProxyType({}), metadata={"rest": True})


# ------------------------------------------------------------------------------- the bases
class Payload:
    """A typed JSON object of the event log (a whole payload, or a nested part of one)."""

    __slots__ = ()

    def to_payload(self) -> dict[str, Any]:
        """The JSON-ready dict the log stores (canonical JSON of it is what is hashed)."""
        spec = _spec(type(self))
        out: dict[str, Any] = {}
        for f in spec.fields:
            v = getattr(self, f.name)
            if f.omit and v == f.default and type(v) is type(f.default):
                continue
            out[f.key] = f.encode(v)
        if spec.rest is not None:
            extra = getattr(self, spec.rest)
            for k, v in extra.items():
                if k in spec.by_key:
                    raise EventPayloadError(self._kind(), spec.rest, k, "names a field the type has")
                out[k] = thaw(v)
        return out

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        """Read a parsed payload (``json.loads`` of the stored text); strict, see the module."""
        try:
            return cls._decode(payload)
        except _Bad as e:
            raise EventPayloadError(cls._kind(), ".".join(e.path), e.value, e.problem, e.hint) from None

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Read the stored payload text."""
        return cls.from_payload(json.loads(text))

    @classmethod
    def _kind(cls) -> str:
        return str(getattr(cls, "KIND", cls.__name__))

    @classmethod
    def _decode(cls, raw: Any) -> Self:
        if not isinstance(raw, Mapping):
            raise _Bad(f"must be an object, not {_type_name(raw)}", raw)
        spec = _SPECS.get(cls) or _spec(cls)
        values: dict[str, Any] = {}
        if spec.rest is not None:
            values[spec.rest] = types.MappingProxyType(
                {k: freeze(v) for k, v in raw.items() if k not in spec.by_key})
        elif not raw.keys() <= spec.keys:
            k = next(k for k in raw if k not in spec.keys)
            raise _Bad("unknown field", raw[k], (str(k),),
                       hint=f"{cls._kind()} has: " + ", ".join(sorted(spec.keys)))
        for f in spec.fields:
            v = raw.get(f.key, _ABSENT)
            if v is _ABSENT:
                if not f.omit:
                    raise _Bad("missing", None, (f.key,), hint=f"every {cls._kind()} payload has it")
                values[f.name] = f.default
                continue
            if f.omit and v == f.default and type(v) is type(f.default):
                raise _Bad("is the default, which writers leave out", v, (f.key,))
            try:
                values[f.name] = f.decode(v)
            except _Bad as e:
                raise e.under(f.key) from None
        return cls(**values)


_ABSENT = object()


class Event(Payload):
    """A whole payload of one event-log kind (``KIND``)."""

    __slots__ = ()
    KIND: ClassVar[str]
