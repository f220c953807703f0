#!/usr/bin/env python3
# mypy: allow-untyped-defs, allow-untyped-calls
"""The comparison suite: workloads under plain CPython and under @tiered, side by side.

Both sides run in this one process, interleaved, on the same arguments; the
figures that matter are the ratios (tiered time / CPython time per call, below 1
is faster), since absolute times drift on a shared machine. Results are checked
too: the exit status is 1 if any tiered result differs from CPython's.

    python benches/compare.py                # the seed cases from MOTIVATION.md
    python benches/compare.py --extra        # plus more kernels (loops, floats, dicts, attributes, calls)
    python benches/compare.py --json > out.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from collections.abc import Sequence
from typing import Any

import tiered
from tiered import _demo

# --- extra workloads (the seed ones live in tiered/_demo.py) ----------------------------


def loop_range(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def nested_loops(n):
    total = 0
    for i in range(n):
        for j in range(n):
            total += i ^ j
    return total


def float_poly(n):
    x = 0.0
    acc = 0.0
    for _ in range(n):
        acc += x * x * 0.5 - x + 1.0
        x += 0.001
    return acc


def dict_count(words):
    counts = {}  # type: ignore[var-annotated]
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return counts


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):  # so results built by make_points can be compared
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def attr_sum(points):
    s = 0
    for p in points:
        s += p.x * p.y
    return s


def make_points(n):
    points = []
    for i in range(n):
        points.append(Point(i, i + 1))
    return points


def eval_a(i, j):
    return 1.0 / ((i + j) * (i + j + 1) // 2 + i + 1)


def mul_av(u):
    n = len(u)
    out = []
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += eval_a(i, j) * u[j]
        out.append(s)
    return out


def str_build(n):
    parts = []
    for i in range(n):
        parts.append(str(i))
    return ",".join(parts)


def squares(n):
    for i in range(n):
        yield i * i


def gen_total(n):
    t = 0
    for v in squares(n):
        t += v
    return t


EXTRA_FUNCTIONS = (
    "loop_range",
    "nested_loops",
    "float_poly",
    "dict_count",
    "attr_sum",
    "make_points",
    "eval_a",
    "mul_av",
    "str_build",
    "squares",
    "gen_total",
)

_WORDS = [f"w{(i * 7919) % 97}" for i in range(1000)]
_POINTS = make_points(1000)

EXTRA_CASES = (
    _demo.Case("loop_range(1000)", "loop_range", lambda: (1000,)),
    _demo.Case("nested_loops(40)", "nested_loops", lambda: (40,)),
    _demo.Case("float_poly(1000)", "float_poly", lambda: (1000,)),
    _demo.Case("dict_count(1000 words)", "dict_count", lambda: (_WORDS,)),
    _demo.Case("attr_sum(1000 points)", "attr_sum", lambda: (_POINTS,)),
    _demo.Case("make_points(200)", "make_points", lambda: (200,)),
    _demo.Case("mul_av(40 floats) calls eval_a", "mul_av", lambda: ([1.0] * 40,)),
    _demo.Case("str_build(300)", "str_build", lambda: (300,)),
    _demo.Case("gen_total(1000) over a generator", "gen_total", lambda: (1000,)),
)


# --- running -----------------------------------------------------------------------------


def _geomean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare tiered with CPython on the same workloads, side by side.")
    parser.add_argument("--extra", action="store_true", help="add the extra kernels to the seed cases")
    parser.add_argument("--only", action="append", metavar="TEXT", help="run only cases whose label contains TEXT")
    parser.add_argument(
        "--time",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="about how long the CPython side of each case runs (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="timed runs per side (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (few iterations, two repeats)")
    parser.add_argument("--strict", action="store_true", help="compile the workloads in strict mode")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.time <= 0 or args.repeat < 1:
        parser.error("--time must be positive and --repeat at least 1")

    seed_plain, seed_tiered = _demo.seed_namespaces(strict=args.strict)
    suites: list[tuple[str, Sequence[_demo.Case], dict[str, Any], dict[str, Any]]] = [
        ("seed", _demo.SEED_CASES, seed_plain, seed_tiered)
    ]
    if args.extra:
        extra_plain = dict(globals())
        extra_tiered = _demo.tiered_namespace(extra_plain, EXTRA_FUNCTIONS, strict=args.strict)
        suites.append(("extra", EXTRA_CASES, extra_plain, extra_tiered))

    target, repeats = (0.02, 2) if args.quick else (args.time, args.repeat)
    report: dict[str, Any] = {
        "environment": {
            "tiered": tiered.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "disabled": tiered._DISABLED,
        },
        "suites": {},
    }
    ok = True
    for name, cases, plain_ns, tiered_ns in suites:
        chosen = [c for c in cases if not args.only or any(s in c.label for s in args.only)]
        if not chosen:
            continue
        results = _demo.run_cases(chosen, plain_ns, tiered_ns, target_seconds=target, repeats=repeats)
        ok &= all(m.same for m in results)
        geomean = _geomean([m.ratio for m in results if m.ratio is not None])
        report["suites"][name] = {"results": [m.as_json() for m in results], "geomean_ratio": geomean}
        if not args.json:
            print(f"== {name} (ratio = tiered / CPython per call; below 1.00x is faster)")
            print(_demo.render_measurements(results))
            print(f"geometric mean ratio: {_demo.format_ratio(geomean)}")
            print()
    report["ok"] = ok
    if args.json:
        print(json.dumps(report, indent=2))
    elif not ok:
        print("RESULTS DIFFER from CPython: see the 'same result' column", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
