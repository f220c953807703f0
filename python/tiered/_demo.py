# mypy: allow-untyped-defs, allow-untyped-calls
# (the workloads and their drivers stay as plain, unannotated Python on purpose)
"""The seed workloads from MOTIVATION.md and a side-by-side timing harness.

Each case runs the same code object twice in one process: once as a plain CPython
function and once compiled by tiered. The tiered copies live in a copy of this
module's globals where every workload name is bound to its tiered wrapper, so a
recursive call (``fib``) goes through the wrapper, as it would for a user who
wrote ``@tiered`` on the def. ``benches/compare.py`` reuses all of this.
"""

from __future__ import annotations

import dataclasses
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# --- the workloads (plain Python; tiered copies are made by `tiered_namespace`) ---------


def add1(x):
    return x + 1


def pysum(x):
    s = 0
    for i in x:
        s += i
    return s


def sum_it(seq, zero):
    res = zero
    for each in seq:
        res += each
    return res


def some_function(x):
    return x


def flat_rep(x, n):
    res = x
    while n:
        res += some_function(x)
        n -= 1
    return res


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


# --- the harness -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One workload call: ``func(*args)`` looked up by name in a namespace.

    ``chain`` feeds each result back as the next argument (``x = f(x)``): the
    way to time a tiny function such as ``add1`` with the least loop overhead
    while still depending on every call's result.
    """

    label: str
    func: str
    args: Callable[[], tuple[Any, ...]]
    chain: bool = False


SEED_CASES: tuple[Case, ...] = (
    Case("add1(x) in a Python loop", "add1", lambda: (0,), chain=True),
    Case("pysum(list(range(1000)))", "pysum", lambda: (list(range(1000)),)),
    Case("sum_it(1000 ints, 0)", "sum_it", lambda: (list(range(1000)), 0)),
    Case("sum_it(1000 floats, 0.0)", "sum_it", lambda: ([i * 0.5 for i in range(1000)], 0.0)),
    Case("flat_rep(7, 1000)", "flat_rep", lambda: (7, 1000)),
    Case("flat_rep('ab', 1000)", "flat_rep", lambda: ("ab", 1000)),
    Case("fib(27)", "fib", lambda: (27,)),
)

SEED_FUNCTIONS: tuple[str, ...] = ("add1", "pysum", "sum_it", "flat_rep", "fib")


def tiered_namespace(globals_: Mapping[str, Any], names: Iterable[str], strict: bool = False) -> dict[str, Any]:
    """A copy of ``globals_`` where each of ``names`` is a tiered copy of that function.

    The copies share code objects with the originals but see the new namespace as
    their globals, so calls between them (and recursion) stay in tiered code.
    """
    from tiered import tiered

    namespace = dict(globals_)
    for name in names:
        original = globals_[name]
        clone = types.FunctionType(
            original.__code__, namespace, original.__name__, original.__defaults__, original.__closure__
        )
        clone.__kwdefaults__ = original.__kwdefaults__
        clone.__qualname__ = original.__qualname__
        clone.__dict__.update(original.__dict__)
        namespace[name] = tiered(clone, strict=strict)
    return namespace


# Drivers: plain Python loops calling the workload; one per call shape so neither
# side pays for `f(*args)`.


def _chain1(f, x, n):
    for _ in range(n):
        x = f(x)
    return x


def _repeat1(f, a, n):
    r = None
    for _ in range(n):
        r = f(a)
    return r


def _repeat2(f, a, b, n):
    r = None
    for _ in range(n):
        r = f(a, b)
    return r


def _repeat3(f, a, b, c, n):
    r = None
    for _ in range(n):
        r = f(a, b, c)
    return r


def _repeat_any(f, args, n):
    r = None
    for _ in range(n):
        r = f(*args)
    return r


def _runner(case: Case, f: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[int], Any]:
    if case.chain:
        if len(args) != 1:
            raise ValueError(f"{case.label}: a chained case takes exactly one argument")
        return lambda n: _chain1(f, args[0], n)
    if len(args) == 1:
        return lambda n: _repeat1(f, args[0], n)
    if len(args) == 2:
        return lambda n: _repeat2(f, args[0], args[1], n)
    if len(args) == 3:
        return lambda n: _repeat3(f, args[0], args[1], args[2], n)
    return lambda n: _repeat_any(f, args, n)


def _timed(run: Callable[[int], Any], n: int) -> tuple[int, Any]:
    start = time.perf_counter_ns()
    result = run(n)
    return time.perf_counter_ns() - start, result


def same_result(a: Any, b: Any) -> bool:
    """Equal values of the same type (1 == 1.0 == True would hide a wrong result)."""
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclasses.dataclass
class Measurement:
    """The outcome of one case, both sides."""

    label: str
    iterations: int  # calls per timed run
    repeats: int  # timed tiered runs after the warm-up (CPython gets at least as many)
    cpython_ns: float  # best time per call
    tiered_ns: float | None  # None when the tiered side raised
    same: bool
    tier: str
    stats: dict[str, Any]
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.tiered_ns is None or self.cpython_ns <= 0:
            return None
        return self.tiered_ns / self.cpython_ns

    def as_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["ratio"] = self.ratio
        return row


def _stat_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, int) and not isinstance(value, bool):
            delta[key] = value - int(before.get(key, 0))
        else:
            delta[key] = value
    return delta


def tier_label(stats: Mapping[str, Any]) -> str:
    """Which tier ran the calls: "tier1", "tier2", "fallback: <reason>", or a mix
    such as "tier2 (98%) + tier1", from the (delta of the) stats counters."""
    calls = {
        "tier2": int(stats.get("native_calls", 0)),
        "tier1": int(stats.get("interp_calls", 0)),
        "fallback": int(stats.get("fallback_calls", 0)),
    }
    total = sum(calls.values())
    if total == 0:
        return "no calls counted"
    ran = sorted((name for name in calls if calls[name]), key=lambda name: -calls[name])
    names = []
    for name in ran:
        if name == "fallback":
            reasons = [f"{u.get('op', '?')}: {u.get('reason', '?')}" for u in stats.get("unsupported", [])]
            if reasons:
                more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
                name = f"fallback: {reasons[0]}{more}"
        names.append(name)
    if len(names) > 1:
        names[0] += f" ({100 * calls[ran[0]] // total}%)"
    label = " + ".join(names)
    deopts = int(stats.get("deopts", 0))
    return f"{label}, {deopts} deopts" if deopts else label


def measure(
    case: Case,
    plain_ns: Mapping[str, Any],
    tiered_ns: Mapping[str, Any],
    *,
    target_seconds: float = 0.3,
    repeats: int = 5,
) -> Measurement:
    """Time ``case`` under plain CPython and under tiered, interleaving the repeats.

    The iteration count is calibrated on the CPython side so that ``repeats``
    runs take about ``target_seconds``; both sides run the same count, after a
    warm-up run each. The best run per side is kept. If the tiered side turns
    out much slower, it gets fewer repeats so the whole demo stays short.
    """
    from tiered import TieredFunction
    from tiered import stats as tiered_stats

    args = case.args()
    plain_f = plain_ns[case.func]
    tiered_f = tiered_ns[case.func]
    plain_run = _runner(case, plain_f, args)
    tiered_run = _runner(case, tiered_f, args)

    # Calibrate: double n until one run takes >= 5 ms, then scale to the target.
    per_run_target_ns = max(target_seconds / max(repeats, 1), 1e-4) * 1e9
    n = 1
    while True:
        elapsed, _ = _timed(plain_run, n)
        if elapsed >= min(5e6, per_run_target_ns) or n >= 1 << 30:
            break
        n *= 2
    n = max(1, round(n * per_run_target_ns / max(elapsed, 1)))

    # Stats of every tiered function in the namespace, so a callee's tier (or
    # fallback) shows beside the case's own. Under TIERED_DISABLE=1 there are none.
    tiered_funcs = {name: f for name, f in tiered_ns.items() if isinstance(f, TieredFunction)}

    def snapshot() -> dict[str, Any]:
        return {name: tiered_stats(f) for name, f in tiered_funcs.items()}

    before = snapshot()
    error = None
    done = 0
    best_plain, plain_result = _timed(plain_run, n)  # warm-up, kept if it is the best
    best_tiered: int | None = None
    tiered_result: Any = None
    results_agree = True
    try:
        best_tiered, tiered_result = _timed(tiered_run, n)  # warm-up (and tier-up)
        budget_ns = 3 * target_seconds * 1e9  # the most the tiered side may take
        # A very slow tiered side keeps its warm-up run as the measurement (repeats == 0).
        tiered_repeats = max(0, min(repeats, int(budget_ns // max(best_tiered, 1)) - 1))
        done = 0
        for _ in range(repeats):
            elapsed, result = _timed(plain_run, n)
            best_plain = min(best_plain, elapsed)
            results_agree &= same_result(result, plain_result)
            if done < tiered_repeats:
                elapsed, result = _timed(tiered_run, n)
                best_tiered = min(best_tiered, elapsed)
                results_agree &= same_result(result, tiered_result)
                done += 1
        # One more direct call each: the checksum compared below.
        results_agree &= same_result(plain_f(*args), tiered_f(*args))
        results_agree &= same_result(plain_result, tiered_result)
    except Exception as exc:  # report it, never hide it
        error = f"{type(exc).__name__}: {exc}"
        best_tiered = None
        results_agree = False
    after = snapshot()
    deltas = {name: _stat_delta(before[name], after[name]) for name in tiered_funcs}
    delta = deltas.get(case.func, {})
    if case.func in deltas:
        tier = tier_label(delta)
    else:
        tier = "none: TIERED_DISABLE is set" if _tiered_disabled() else "none: not a tiered function"
    for name, callee in deltas.items():
        if name != case.func and callee.get("calls", 0):
            tier += f"; {name}: {tier_label(callee)}"
    return Measurement(
        label=case.label,
        iterations=n,
        repeats=done,
        cpython_ns=best_plain / n,
        tiered_ns=None if best_tiered is None else best_tiered / n,
        same=results_agree,
        tier=f"error: {error}" if error else tier,
        stats=delta,
        error=error,
    )


def _tiered_disabled() -> bool:
    import tiered

    return bool(tiered._DISABLED)


def run_cases(
    cases: Sequence[Case],
    plain_ns: Mapping[str, Any],
    tiered_ns: Mapping[str, Any],
    *,
    target_seconds: float = 0.3,
    repeats: int = 5,
    progress: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    """Measure every case, calling ``progress`` after each one."""
    results = []
    for case in cases:
        m = measure(case, plain_ns, tiered_ns, target_seconds=target_seconds, repeats=repeats)
        results.append(m)
        if progress is not None:
            progress(m)
    return results


# --- formatting ------------------------------------------------------------------------


def format_time(ns: float | None) -> str:
    """A per-call time with a readable unit."""
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A plain-text table; columns whose index is in ``right`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        parts = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


MEASUREMENT_HEADERS = ("case", "CPython", "tiered", "ratio", "same result", "tier")


def measurement_row(m: Measurement) -> tuple[str, ...]:
    return (
        m.label,
        format_time(m.cpython_ns),
        format_time(m.tiered_ns),
        format_ratio(m.ratio),
        "yes" if m.same else "NO",
        m.tier,
    )


def render_measurements(results: Sequence[Measurement]) -> str:
    return render_table(MEASUREMENT_HEADERS, [measurement_row(m) for m in results], right=(1, 2, 3))


def seed_namespaces(strict: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain, tiered) namespaces holding the seed workloads."""
    plain = dict(globals())
    return plain, tiered_namespace(plain, SEED_FUNCTIONS, strict=strict)
