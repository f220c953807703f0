"""Kernels for the instruction-count benchmarks (benches/benches/ops.rs), one per op family.

    python benches/workloads.py FAMILY MODE      # MODE: cpython or tiered

The kernel is called enough times first for quickening and tier 2 to have happened, then
once more inside functools.reduce: the benchmarks run callgrind with
--toggle-collect=functools_reduce, so only that last call is counted (not interpreter
start-up, imports or warm-up). Each kernel exercises one op family's quickened variants.
"""

from __future__ import annotations

import functools
import sys


def arith(xs):
    s = 0
    f = 0.5
    for x in xs:
        s = s + x * 3 - (x & 7)
        f = f * 0.5 + x
    return s, f


def compare(xs):
    n = 0
    for x in xs:
        if x < 500:
            n += 1
        if x == "never":
            n -= 1
    return n


G = 3


def globals_(xs):
    s = 0
    for _ in xs:
        s += G + len(xs)
    return s


def _callee(a, b):
    return a + b


def calls(xs):
    s = 0
    for x in xs:
        s = _callee(s, x)
    return s


def iter_(d):
    s = 0
    for k in d:
        s += k
    for k, v in d.items():
        s += v
    for c in "abc" * 100:
        s += c == "a"
    return s


def subscr(xs):
    s = 0
    for i in range(len(xs)):
        s += xs[i] + xs[-1]
    return s


class _Point:
    def __init__(self, x):
        self.x = x
        self.y = 0


def attrs(points):
    s = 0
    for p in points:
        s += p.x
        p.y = s
    return s


def build(pairs):
    out = []
    for a, b in pairs:
        out.append((b, a))
    return len(out)


KERNELS = {
    "arith": (arith, lambda: (list(range(1000)),)),
    "compare": (compare, lambda: (list(range(1000)),)),
    "globals": (globals_, lambda: (list(range(1000)),)),
    "calls": (calls, lambda: (list(range(1000)),)),
    "iter": (iter_, lambda: ({i: i for i in range(1000)},)),
    "subscr": (subscr, lambda: (list(range(1000)),)),
    "attrs": (attrs, lambda: ([_Point(i) for i in range(1000)],)),
    "build": (build, lambda: ([(i, -i) for i in range(1000)],)),
}

WARMUP = 50


def main() -> None:
    family, mode = sys.argv[1], sys.argv[2]
    f, make_args = KERNELS[family]
    if mode == "tiered":
        from tiered import tiered

        f = tiered(f)
    elif mode != "cpython":
        raise SystemExit(f"unknown mode {mode!r} (cpython or tiered)")
    args = make_args()
    for _ in range(WARMUP):
        f(*args)
    functools.reduce(lambda _acc, _x: f(*args), range(1), None)


if __name__ == "__main__":
    main()
