"""Instruction counts (valgrind's callgrind) of the seed cases, CPython vs tiered, in one run.

Wall-clock ratios on a shared 2-core machine move by 10-20% run to run; instruction counts
of the same binary and inputs do not. Each case runs in its own process under callgrind,
once plainly and once tiered, warmed up first so quickening and tier 2 have happened; the
measured calls then run inside functools.reduce and callgrind collects only there
(--toggle-collect=functools_reduce), so start-up, imports and warm-up are not counted.

    python benches/callgrind.py [--calls N] [--warmup N] [--only TEXT] [--json]

Needs valgrind (Debian's package). Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

PROGRAM = r"""
import functools, sys
import tiered._demo as d
case = next(c for c in d.SEED_CASES if c.label == sys.argv[1])
mode, calls, warmup = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ns = d.tiered_namespace(vars(d), d.SEED_FUNCTIONS) if mode == "tiered" else vars(d)
f = ns[case.func]
args = case.args()
run = d._runner(case, f, args)
scale = 10_000 if case.chain else 1  # a chained tiny call needs many calls to measure
run(warmup * scale)  # quickening and tier 2 happen here, outside the measured part
functools.reduce(lambda _acc, _x: run(calls * scale), range(1), None)  # the measured part
"""


def count(label: str, mode: str, calls: int, warmup: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=functools_reduce", f"--callgrind-out-file={out}",
               sys.executable, "-c", PROGRAM, label, mode, str(calls), str(warmup)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"callgrind failed for {label} ({mode}):\n{r.stderr[-2000:]}")
        m = re.search(r"^summary:\s+(\d+)", open(out).read(), re.M)
        if not m:
            raise SystemExit("no summary line in callgrind output")
        return int(m.group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20, help="measured calls per case (default 20)")
    p.add_argument("--warmup", type=int, default=30, help="unmeasured calls first (default 30, past the tier-2 threshold)")
    p.add_argument("--only", help="only cases whose label contains this text")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    import tiered._demo as d

    rows = []
    for case in d.SEED_CASES:
        if a.only and a.only not in case.label:
            continue
        per = {}
        for mode in ("cpython", "tiered"):
            scale = 10_000 if case.chain else 1
            per[mode] = count(case.label, mode, a.calls, a.warmup) / (a.calls * scale)
        rows.append({"case": case.label, "cpython_instr": per["cpython"], "tiered_instr": per["tiered"],
                     "ratio": per["tiered"] / per["cpython"] if per["cpython"] else None})
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'case':<26} {'CPython instr/call':>20} {'tiered instr/call':>20} {'ratio':>7}")
    for r in rows:
        print(f"{r['case']:<26} {r['cpython_instr']:>20,.0f} {r['tiered_instr']:>20,.0f} {r['ratio']:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
