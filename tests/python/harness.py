"""Differential test harness for tiered (DESIGN.md §6).

Every case runs under plain CPython (the oracle) and then ``REPEAT`` times
(default 2: first call generic, then quickened) through one fresh ``tiered``
wrapper, each run on its own deep copy of the arguments. The runs must agree on

* the return value (compared through :func:`normalize`: type and ``repr``,
  recursively through containers, so ``nan == nan``, ``-0.0 != 0.0``,
  ``1 != 1.0 != True``),
* the exception: type, ``str(exc)``, and the types/messages of
  ``__cause__``/``__context__`` (and ``__suppress_context__``),
* side effects: the (deep-copied) arguments after the call, i.e. mutation of
  anything passed in (pass a ``log`` list to record events), and stdout,
* ``sys.exc_info()`` right after the call returned (no handled exception may
  leak out of the callee),
* how many references the arguments the copy made afresh (containers,
  instances, and their items) hold after the call: a reference taken and never
  released changes no result, but changes this count.

Two kinds of assertion (DESIGN.md §6 "runs right" vs "runs right *and* in our
tiers"):

* :func:`check` — agrees with CPython AND ran in tier 1 (strict wrapper, at
  least one interpreter call, no fallback, nothing unsupported).
* :func:`check_call_shape` — like :func:`check` for calls whose argument
  binding fails (the body never runs, so no interpreter call is required).
* :func:`check_fallback` — agrees with CPython AND fell back with a reason.
* :func:`check_agrees` — agrees with CPython; a fallback is allowed but must
  carry a reason (frame introspection, class bodies...).
* :func:`check_traceback` — the traceback of an exception leaving tiered code
  names the function, its file and CPython's line.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import os
import subprocess
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from tiered import UnsupportedError, stats, tiered

# How many times the (same) tiered wrapper is called per case. The first call
# translates and runs generic ops; later calls run the quickened code.
REPEAT = int(os.environ.get("TIERED_TEST_REPEAT", "2"))

# Comparable forms of values and exceptions: one definition, shared with the fuzzer.
from tiered._fuzz.outcome import describe_exc, normalize, references, tname as _tname  # noqa: E402,F401

@dataclass
class Outcome:
    """What one call did."""

    raised: bool
    value: Any  # normalized return value, or describe_exc(exception)
    args_after: Any
    kwargs_after: Any
    stdout: str
    exc_info_after: Any
    refs_after: Any = None
    exc: BaseException | None = field(default=None, compare=False, repr=False)
    result: Any = field(default=None, compare=False, repr=False)

    def comparable(self) -> tuple:
        return (self.raised, self.value, self.args_after, self.kwargs_after, self.stdout,
                self.exc_info_after, self.refs_after)


def run(fn: Callable, args: tuple, kwargs: dict) -> Outcome:
    """Call ``fn`` on a private deep copy of the arguments and record everything."""
    a, k = copy.deepcopy((tuple(args), dict(kwargs)))
    buf = io.StringIO()
    exc: BaseException | None = None
    result = None
    exc_info_after = None
    with contextlib.redirect_stdout(buf):
        try:
            result = fn(*a, **k)
            exc_info_after = _tname(sys.exc_info()[0]) if sys.exc_info()[0] else None
        except (Exception, SystemExit, GeneratorExit) as e:  # not KeyboardInterrupt / pytest outcomes
            exc = e
        if exc is None:
            result, exc = _drain(result)
    raised = exc is not None
    return Outcome(
        raised=raised,
        value=describe_exc(exc) if raised else normalize(result),
        args_after=normalize(a),
        kwargs_after=normalize(k),
        stdout=buf.getvalue(),
        exc_info_after=exc_info_after,
        refs_after=references((*a, *k.values()), _fresh),
        exc=exc,
        result=result,
    )


_SHARED = (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType,
           types.MethodType, types.CodeType)


def _fresh(x: Any) -> bool:
    """What the call's private deep copy of its arguments made afresh: containers and
    instances (`outcome.references`; deepcopy shares numbers, strings and functions)."""
    t = type(x)
    return t in (list, dict, set, bytearray) or (
        t.__module__ != "builtins" and not isinstance(x, _SHARED))


def _drive(aw: Any) -> Any:
    """Run an awaitable that never really suspends (no event loop needed)."""
    it = aw.__await__()
    try:
        while True:
            it.send(None)
    except StopIteration as stop:
        return stop.value


def _drain(result: Any) -> tuple[Any, BaseException | None]:
    """Generators, coroutines and async generators are consumed (bounded) so
    that what they yield/return is compared too; the consumption happens with
    stdout still captured."""
    items: list = []
    try:
        if isinstance(result, types.GeneratorType):
            for n, x in enumerate(result):
                if n >= 10_000:
                    break
                items.append(x)
            result.close()
            return ("<generator yielded>", items), None
        if isinstance(result, types.CoroutineType):
            try:
                return ("<coroutine returned>", _drive(result)), None
            finally:
                result.close()
        if isinstance(result, types.AsyncGeneratorType):
            try:
                while len(items) < 10_000:
                    items.append(_drive(result.__anext__()))
            except StopAsyncIteration:
                pass
            _drive(result.aclose())
            return ("<async generator yielded>", items), None
    except (Exception, SystemExit, GeneratorExit) as e:
        return None, e
    return result, None


def assert_same(expected: Outcome, got: Outcome, what: str) -> None:
    names = ("raised", "value/exception", "args after call", "kwargs after call", "stdout",
             "sys.exc_info() after call", "references to the arguments after call")
    for name, e, g in zip(names, expected.comparable(), got.comparable()):
        assert g == e, (
            f"{what}: {name} differs from CPython\n  CPython: {e!r}\n  tiered:  {g!r}"
        )


def _skip_if_tracing() -> None:
    if sys.gettrace() is not None or sys.getprofile() is not None:
        pytest.skip("a trace/profile function is active: by contract tiered falls back to CPython")


def native_default_only() -> None:
    """Skips a test that measures the native code of the default thresholds ("stays
    native" tests) on every other path."""
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")


def fresh(f: Callable, name: str) -> Callable:
    """`f` with a code object of its own (named `name`): the registry keeps one compiled
    form per code object, which other tests' runs have quickened already."""
    return types.FunctionType(f.__code__.replace(co_name=name), f.__globals__)


def check(f: Callable, /, *args: Any, **kwargs: Any) -> Outcome:
    """Agrees with CPython AND ran in tier 1 (strict wrapper, no fallback)."""
    expected, w = _check_strict(f, args, kwargs)
    assert_tier1(w, f)
    return expected


def check_call_shape(f: Callable, /, *args: Any, **kwargs: Any) -> Outcome:
    """A call into the wrapper (possibly with a wrong shape) agrees with
    CPython, including the exact TypeError text, without any fallback."""
    expected, w = _check_strict(f, args, kwargs)
    s = stats(w)
    assert s["fallback_calls"] == 0 and s["unsupported"] == [], f"{f.__qualname__}: {s!r}"
    if not expected.raised:
        assert_tier1(w, f)
    return expected


def _check_strict(f: Callable, args: tuple, kwargs: dict) -> tuple[Outcome, Any]:
    _skip_if_tracing()
    expected = run(f, args, kwargs)
    w = tiered(f, strict=True)
    for i in range(REPEAT):
        got = run(w, args, kwargs)
        if isinstance(got.exc, UnsupportedError) and not isinstance(expected.exc, UnsupportedError):
            pytest.fail(f"{f.__qualname__}: strict tiered raised UnsupportedError: {got.exc}\n"
                        f"stats: {stats(w)!r}")
        assert_same(expected, got, f"{f.__qualname__} (tiered call {i + 1})")
    return expected, w


def assert_tier1(w: Any, f: Callable | None = None) -> None:
    """The calls ran in tiered's own tiers (interpreter or native code), not in CPython.
    With TIERED_EXPECT_NATIVE=1 (the tier-2 path, thresholds at zero) every call must have
    run native code."""
    s = stats(w)
    name = f.__qualname__ if f is not None else repr(w)
    ours = s["interp_calls"] + s["native_calls"]
    assert ours >= 1, f"{name}: no call ran in tiered's tiers: {s!r}"
    if os.environ.get("TIERED_EXPECT_NATIVE") == "1":
        assert s["native_calls"] == ours, f"{name}: expected every call in native code: {s!r}"
    assert s["fallback_calls"] == 0, f"{name}: fell back to CPython: {s!r}"
    assert s["unsupported"] == [], f"{name}: unsupported ops: {s!r}"
    # A generator's body runs at its resumptions: in our tiers too.
    assert s["cpython_resumes"] == 0, f"{name}: a generator resumed in CPython: {s!r}"
    if f is not None and (inspect.isgeneratorfunction(f) or inspect.iscoroutinefunction(f)
                          or inspect.isasyncgenfunction(f)):
        assert s["resumes"] >= 1, f"{name}: no generator resumed in tiered's tiers: {s!r}"
    if os.environ.get("TIERED_EXPECT_NATIVE") == "1":
        assert s["native_resumes"] == s["resumes"], f"{name}: a resumption in tier 1: {s!r}"


def _check_non_strict(f: Callable, args: tuple, kwargs: dict) -> tuple[Outcome, Any]:
    """CPython's outcome, and a non-strict wrapper that agreed with it REPEAT times."""
    _skip_if_tracing()
    expected = run(f, args, kwargs)
    w = tiered(f)
    for i in range(REPEAT):
        got = run(w, args, kwargs)
        assert_same(expected, got, f"{f.__qualname__} (non-strict tiered call {i + 1})")
    return expected, w


def check_fallback(f: Callable, reason: str | tuple[str, ...], /, *args: Any, **kwargs: Any) -> Outcome:
    """Agrees with CPython AND fell back with a reason containing ``reason``
    (case-insensitive; a tuple means any of them); the strict wrapper raises
    UnsupportedError instead."""
    expected, w = _check_non_strict(f, args, kwargs)
    s = stats(w)
    assert s["fallback_calls"] >= 1, f"{f.__qualname__}: expected a fallback: {s!r}"
    reasons = [u["reason"] for u in s["unsupported"]]
    wanted = (reason,) if isinstance(reason, str) else reason
    assert any(want.lower() in r.lower() for r in reasons for want in wanted), (
        f"{f.__qualname__}: no unsupported reason mentions {reason!r}: {s['unsupported']!r}"
    )
    for u in s["unsupported"]:
        assert isinstance(u["op"], str) and isinstance(u["reason"], str) and u["reason"]
    strict = tiered(f, strict=True)
    a, k = copy.deepcopy((args, kwargs))
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            r = strict(*a, **k)
        except UnsupportedError:
            pass
        else:
            if hasattr(r, "close"):
                r.close()  # don't leave an un-awaited coroutine behind
            pytest.fail(f"{f.__qualname__}: strict wrapper did not raise UnsupportedError")
    assert issubclass(UnsupportedError, Exception)
    return expected


def check_agrees(f: Callable, /, *args: Any, **kwargs: Any) -> Outcome:
    """Agrees with CPython; tier 1 or fallback both fine, but a fallback must
    come with a non-empty reason."""
    expected, w = _check_non_strict(f, args, kwargs)
    s = stats(w)
    assert s["calls"] == REPEAT, s
    if s["fallback_calls"]:
        assert s["unsupported"], f"{f.__qualname__}: fell back without a reason: {s!r}"
        for u in s["unsupported"]:
            assert isinstance(u["op"], str) and u["reason"], s
    return expected


def _walk_tb(tb: types.TracebackType | None):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def check_traceback(f: Callable, /, *args: Any, **kwargs: Any) -> None:
    """``f`` must raise. The exception leaving the tiered wrapper must have
    traceback entries for ``f`` (by co_name and co_filename) at exactly the
    lines CPython reports for ``f``'s frames."""
    _skip_if_tracing()
    expected = run(f, args, kwargs)
    assert expected.raised, f"{f.__qualname__} must raise for check_traceback"
    want = [tb.tb_lineno for tb in _walk_tb(expected.exc.__traceback__)
            if tb.tb_frame.f_code is f.__code__]
    assert want, "CPython traceback does not contain the function (bad case)"
    w = tiered(f, strict=True)
    got = run(w, args, kwargs)
    assert_same(expected, got, f"{f.__qualname__} (tiered)")
    code = f.__code__
    entries = [tb for tb in _walk_tb(got.exc.__traceback__)
               if tb.tb_frame.f_code.co_name == code.co_name
               and tb.tb_frame.f_code.co_filename == code.co_filename]
    assert entries, (
        f"no traceback entry for {code.co_name} in {code.co_filename}: "
        f"{[(tb.tb_frame.f_code.co_filename, tb.tb_frame.f_code.co_name, tb.tb_lineno) for tb in _walk_tb(got.exc.__traceback__)]}"
    )
    assert [tb.tb_lineno for tb in entries] == want, (
        f"traceback lines for {code.co_name}: CPython {want}, tiered {[tb.tb_lineno for tb in entries]}"
    )
    assert_tier1(w, f)


def cases(*rows: tuple, prefix: str = "") -> list:
    """Turn ``(f, args)`` / ``(f, args, kwargs)`` rows into pytest params with
    unique readable ids ``<function>-<n>``."""
    out = []
    counts: dict[str, int] = {}
    for row in rows:
        if len(row) == 2:
            f, args = row
            kwargs: dict = {}
        else:
            f, args, kwargs = row
        name = prefix + f.__name__
        n = counts.get(name, 0)
        counts[name] = n + 1
        out.append(pytest.param(f, tuple(args), dict(kwargs), id=f"{name}-{n}"))
    return out


def run_python(code: str, *, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (same sys.path), for things that may crash."""
    full_env = dict(os.environ)
    import tiered as _pkg

    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(_pkg.__file__)))
    here = os.path.dirname(os.path.abspath(__file__))
    extra = [pkg_root, here] + [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    full_env["PYTHONPATH"] = os.pathsep.join(extra)
    full_env.pop("TIERED_DISABLE", None)
    full_env.pop("TIERED_STRICT", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


#: Prepended to programs run by :func:`same_as_cpython`: ``ours(*fs)`` asserts (only when
#: tiered is enabled) that each tiered function ran in our tiers and never fell back.
_OURS_PRELUDE = r"""
import os as _os
def ours(*fs):
    if _os.environ.get("TIERED_DISABLE") == "1":
        return
    from tiered import stats as _stats
    for _f in fs:
        _s = _stats(_f)
        assert _s["fallback_calls"] == 0 and _s["interp_calls"] + _s["native_calls"] > 0, (_f, _s)
"""


def same_as_cpython(code: str, *, timeout: float = 60, compare_stderr: bool = True,
                    env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter twice, once with ``TIERED_DISABLE=1`` (plain
    CPython) and once tiered, and asserts both give the same exit status, stdout and (by
    default) stderr. ``ours(f, ...)`` is defined in the program (see ``_OURS_PRELUDE``).
    Returns the tiered run."""
    code = _OURS_PRELUDE + code
    plain = run_python(code, env={**(env or {}), "TIERED_DISABLE": "1"}, timeout=timeout)
    got = run_python(code, env=env, timeout=timeout)
    assert (got.returncode, got.stdout) == (plain.returncode, plain.stdout), (
        f"CPython: status {plain.returncode}\n{plain.stdout}\n{plain.stderr}\n"
        f"tiered: status {got.returncode}\n{got.stdout}\n{got.stderr}"
    )
    if compare_stderr:
        assert got.stderr == plain.stderr, f"CPython stderr:\n{plain.stderr}\ntiered stderr:\n{got.stderr}"
    return got


def outcome(step: Callable[[], Any]) -> tuple:
    """What one step of a script did: its value, or its exception (type, message, and its
    cause's type), for scripts run on CPython's objects and on tiered ones alike."""
    try:
        return ("ok", step())
    except BaseException as e:  # noqa: BLE001 - the script compares every exception
        return ("raised", type(e).__name__, str(e), type(e.__cause__).__name__)


def counted_ops(warm_up, measured):
    """Per op, how many times each tier ran it (`_native.op_counts()`) while `measured()`
    ran, after `warm_up()`: counting is on for both (it is compiled into native code, so
    it must be on before the code is), and off again afterwards."""
    from tiered import _native

    _native.set_counting(True)
    try:
        warm_up()
        _native.reset_counts()
        measured()
        return _native.op_counts()
    finally:
        _native.set_counting(False)
