"""What a call did, in comparable form: shared by the differential test harness and the
fuzzer, so both compare exactly the same things the same way."""

from __future__ import annotations

import re
import sys
import types
from typing import Any

_ADDR = re.compile(r"0x[0-9a-fA-F]+")


def clean(s: str) -> str:
    """Hide object addresses, which legitimately differ between two runs."""
    return _ADDR.sub("0x?", s)


def safe_repr(v: Any) -> str:
    try:
        return clean(repr(v))
    except Exception as e:  # noqa: BLE001 - a raising __repr__ is still comparable
        return f"<repr raised {type(e).__name__}>"


def tname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


_SCALARS = (bool, int, float, complex, str, bytes, bytearray, type(None), type(...),
            type(NotImplemented), range, slice)


def normalize(v: Any, _seen: frozenset = frozenset()) -> Any:
    """A comparable, address-free description of ``v``: type plus repr, recursively, so
    ``nan == nan``, ``-0.0 != 0.0`` and ``1 != 1.0 != True``."""
    t = type(v)
    if isinstance(v, _SCALARS):
        return (tname(t), safe_repr(v))
    if id(v) in _seen:
        return (tname(t), "<cycle>")
    seen = _seen | {id(v)}
    if isinstance(v, (list, tuple)):
        return (tname(t), [normalize(x, seen) for x in v])
    if isinstance(v, dict):
        return (tname(t), [(normalize(k, seen), normalize(x, seen)) for k, x in v.items()])
    if isinstance(v, (set, frozenset)):
        return (tname(t), sorted(repr(normalize(x, seen)) for x in v))
    if isinstance(v, BaseException):
        return (tname(t), clean(str(v)), normalize(v.args, seen))
    if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, type)):
        return (tname(t), getattr(v, "__qualname__", repr(v)))
    if isinstance(v, types.MethodType):
        return (tname(t), v.__func__.__qualname__, normalize(v.__self__, seen))
    if isinstance(v, types.ModuleType):
        return (tname(t), v.__name__)
    if isinstance(v, (types.GeneratorType, types.CoroutineType)):
        return (tname(t), v.__qualname__)
    if t.__repr__ is not object.__repr__:
        return (tname(t), safe_repr(v))
    state: list = []
    d = getattr(v, "__dict__", None)
    if isinstance(d, dict):
        state.append(normalize(d, seen))
    for klass in t.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            try:
                state.append((slot, normalize(getattr(v, slot), seen)))
            except AttributeError:
                state.append((slot, "<unset>"))
    return (tname(t), state)


def describe_exc(e: BaseException | None, depth: int = 0) -> Any:
    """Type, message, and (recursively, bounded) the cause/context chain."""
    if e is None:
        return None
    if depth > 6:
        return (tname(type(e)), "...")
    return (
        tname(type(e)),
        clean(str(e)),
        e.__suppress_context__,
        describe_exc(e.__cause__, depth + 1),
        describe_exc(e.__context__, depth + 1),
    )


def references(values, fresh) -> list[int]:
    """How many references each of ``values`` that ``fresh`` picks (objects a call got
    afresh, so that nothing else counts toward them), and each item of a list, set or
    dict among them that it picks, holds: a reference taken and never released changes
    no result, but changes this count."""
    seen: list = []
    for x in values:
        if fresh(x):
            seen.append(x)
            items = x.values() if type(x) is dict else x if type(x) in (list, set) else ()
            seen += [y for y in items if fresh(y)]
    return [sys.getrefcount(x) for x in seen]
