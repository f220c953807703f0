"""tiered: a tiered JIT compiler for stock CPython 3.11, written in Rust.

Decorate a function with ``@tiered`` and its calls run in tiered's own tiers
(a quickening interpreter over an SSA IR, then native code), giving exactly the
results CPython gives. Anything tiered cannot translate runs in CPython itself,
counted and explained by :func:`stats`.

Environment variables, read once at import:

``TIERED_DISABLE=1``
    ``tiered(f)`` returns ``f`` unchanged (handy to bisect a suspected JIT bug).
``TIERED_STRICT=1``
    strict mode becomes the default: an untranslatable function raises
    :class:`UnsupportedError` instead of falling back to CPython.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from tiered import _native
from tiered._native import TieredFunction, UnsupportedError

_Wrapper = TypeVar("_Wrapper", staticmethod, classmethod)  # type: ignore[type-arg]

if TYPE_CHECKING:
    from typing import ParamSpec, Protocol

    from tiered._native import Stats

    _P = ParamSpec("_P")
    _R = TypeVar("_R")

    class _Decorator(Protocol):
        """What ``tiered()`` and ``tiered(strict=...)`` return."""

        @overload
        def __call__(self, func: _Wrapper, /) -> _Wrapper: ...  # type: ignore[overload-overlap]
        @overload
        def __call__(self, func: Callable[_P, _R], /) -> TieredFunction[_P, _R]: ...


# Keep in step with pyproject.toml and the workspace Cargo.toml.
__version__ = "0.1.0"

__all__ = ["TieredFunction", "UnsupportedError", "__version__", "dump", "stats", "tiered"]

_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def _env_flag(name: str) -> bool:
    """True when the environment variable is set to anything but 0/false/no/off/empty."""
    return os.environ.get(name, "").strip().lower() not in _FALSE_WORDS


# Read once, at import: flipping them later does not change functions already decorated.
_DISABLED = _env_flag("TIERED_DISABLE")
_STRICT_DEFAULT = _env_flag("TIERED_STRICT")

_MISSING = object()


@overload
def tiered(func: None = None, /, *, strict: bool | None = None, quicken: bool | None = None, jit: bool | None = None, jit_threshold: int | None = None, osr_threshold: int | None = None) -> _Decorator: ...
@overload
def tiered(func: _Wrapper, /, *, strict: bool | None = None, quicken: bool | None = None, jit: bool | None = None, jit_threshold: int | None = None, osr_threshold: int | None = None) -> _Wrapper: ...  # type: ignore[overload-overlap]
@overload
def tiered(func: Callable[_P, _R], /, *, strict: bool | None = None, quicken: bool | None = None, jit: bool | None = None, jit_threshold: int | None = None, osr_threshold: int | None = None) -> TieredFunction[_P, _R]: ...


def tiered(func: Any = None, /, *, strict: bool | None = None, quicken: bool | None = None, jit: bool | None = None, jit_threshold: int | None = None, osr_threshold: int | None = None) -> Any:
    """Compile ``func`` with tiered. Usable as ``@tiered``, ``@tiered()``,
    ``@tiered(strict=True)`` or ``tiered(func, strict=True)``.

    ``strict=True`` raises :class:`UnsupportedError` where tiered would otherwise
    run the function in CPython; the default comes from ``TIERED_STRICT``.
    Staticmethod and classmethod objects are unwrapped, compiled and re-wrapped,
    so the decorator may go on either side of ``@staticmethod``/``@classmethod``.

    Tiering options (default: the environment variables of the same names, see the
    README): ``quicken`` (tier 1 specializes its ops), ``jit`` (tier 2 exists),
    ``jit_threshold`` (calls before native code), ``osr_threshold`` (loop back edges
    before a running loop continues in native code).
    """
    for name, value in (("strict", strict), ("quicken", quicken), ("jit", jit)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"tiered(): {name} must be a bool, not {type(value).__name__}")
    for name, value in (("jit_threshold", jit_threshold), ("osr_threshold", osr_threshold)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise TypeError(f"tiered(): {name} must be a non-negative int, not {value!r}")
    opts = {"quicken": quicken, "jit": jit, "jit_threshold": jit_threshold, "osr_threshold": osr_threshold}
    if func is None:
        return functools.partial(_tiered, strict=strict, **opts)
    return _tiered(func, strict=strict, **opts)


def _tiered(func: Any, strict: bool | None, **opts: Any) -> Any:
    if isinstance(func, (staticmethod, classmethod)):
        # Re-wrap with the same descriptor type: `@tiered @staticmethod def f` works
        # like `@staticmethod @tiered def f`.
        return type(func)(_tiered(func.__func__, strict, **opts))
    if isinstance(func, TieredFunction):
        # Re-decorating compiles the original function again (e.g. to change strictness).
        func = getattr(func, "__wrapped__", func)
    if not isinstance(func, types.FunctionType):
        raise TypeError(_not_a_function_message("tiered()", func))
    if _DISABLED:
        return func
    wrapper = _native.jit(func, _STRICT_DEFAULT if strict is None else strict, **opts)
    # Attributes the native wrapper already forwards to `func` (e.g. a read-only
    # __annotations__) need no copy; copying them could fail on a read-only slot.
    assigned = tuple(
        name
        for name in functools.WRAPPER_ASSIGNMENTS
        if getattr(wrapper, name, _MISSING) is not getattr(func, name, _MISSING)
    )
    return functools.update_wrapper(wrapper, func, assigned=assigned)


def _not_a_function_message(who: str, obj: object) -> str:
    kind = "class" if isinstance(obj, type) else type(obj).__name__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    what = f"{kind} {name!r}" if isinstance(name, str) else f"{_article(kind)} {kind} object"
    if isinstance(obj, types.MethodType):
        hint = "; decorate the function in the class body instead of a bound method"
    elif isinstance(obj, type):
        hint = "; decorate the class's methods instead"
    elif isinstance(obj, (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)):
        hint = "; built-in functions are already native code"
    elif isinstance(obj, functools.partial):
        hint = "; decorate the function the partial wraps"
    elif callable(obj) and hasattr(obj, "__wrapped__"):
        hint = "; put @tiered directly on the def, below other decorators"
    else:
        hint = ""
    return f"{who} expects a Python function (def or lambda), got {what}{hint}"


def _unwrap_descriptor(func: Any) -> Any:
    """The function behind a staticmethod/classmethod object or a bound method."""
    if isinstance(func, (staticmethod, classmethod, types.MethodType)):
        return func.__func__
    return func


def stats(func: TieredFunction[..., Any]) -> Stats:
    """Call counters for a function decorated with ``@tiered``: ``calls``,
    ``fallback_calls`` (run by CPython), ``interp_calls`` (tier 1),
    ``native_calls`` (tier 2), ``deopts``, ``unsupported``: a list of
    ``{"op", "reason"}`` for what made it fall back, ``last_fallback``,
    ``native_entry``: whether calls from CPython now enter native code directly,
    ``native_compiles``, ``compile_ms`` (time from hot to native code, all compiles)
    ``code_bytes`` (its machine code now), ``code_by_kind`` (those bytes by template, op
    or control instruction, as ``(hot, cold)``: cold being slow paths, placed after all
    hot code; ``"(rest)"`` for the prologue and shared exits; the entries are not in it) and ``native_entries`` (which entries into it
    are compiled: ``"cpython"``, ``"slot"``, ``"direct"``); for a generator or coroutine function,
    ``resumes`` (in our tiers), ``native_resumes`` (of those, in native code) and
    ``cpython_resumes`` (steps CPython's loop ran instead). Counters other than the call
    counts are per code object, shared by every wrapper of it."""
    target = _unwrap_descriptor(func)
    if not isinstance(target, TieredFunction):
        message = f"tiered.stats() expects a function decorated with @tiered, got {_describe(target)}"
        if _DISABLED and isinstance(target, types.FunctionType):
            message += " (TIERED_DISABLE is set, so @tiered returned functions unchanged)"
        raise TypeError(message)
    return _native.stats(target)


def dump(func: Callable[..., Any], native: bool = False) -> str:
    """The function's CPython bytecode beside tiered's IR for it, its quickened IR (after
    the calls so far) and its tier-2 state, as text; with ``native=True`` also the
    Cranelift IR and machine code once it has been compiled.

    Takes a plain Python function or a ``@tiered`` one. Opcodes tiered cannot
    translate show as ``Unsupported`` ops with their reason."""
    target = _unwrap_descriptor(func)
    if not isinstance(target, (TieredFunction, types.FunctionType)):
        raise TypeError(_not_a_function_message("tiered.dump()", target))
    return _native.dump(target, native)


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    kind = "plain function" if isinstance(obj, types.FunctionType) else type(obj).__name__
    return f"{kind} {name!r}" if isinstance(name, str) else f"{_article(kind)} {kind} object"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
