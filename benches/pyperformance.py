"""The pyperformance benchmarks that need only the standard library, under plain CPython
and with every def of the benchmark decorated with @tiered, side by side.

    python benches/pyperformance.py                  # all of them
    python benches/pyperformance.py --only richards,go --runs 5
    TIERED_JIT=0 python benches/pyperformance.py     # tier 1 alone

The benchmark sources come from the pyperformance wheel on PyPI (`pip download`, once,
into ~/.cache/tiered-pyperformance; `--source DIR` points at an unpacked copy instead).
Each benchmark's `run_benchmark.py` runs as `__main__` in a fresh interpreter, with a
small stand-in for `pyperf` that records what it registers (`bench_func`,
`bench_time_func`, `bench_async_func`; `bench_command` benchmarks, which time whole
processes, are left out). For the tiered engine every function of the benchmark module
and of its classes (staticmethods and classmethods included) is replaced by one tiered
wrapper before anything runs, so internal calls go through tiered too. Each engine then
runs the registered work `--warmups` times (and at least half a second) untimed, then
`--runs` timed runs of as many calls as last 0.1 s, and keeps the best time per call;
the engines alternate, in separate processes, `--rounds` times per benchmark, and the
best time of each engine is kept. The same work runs on both sides, and what it returns (one extra
call, repr'd) must be equal, else the row says so. Per benchmark the table gives the
ratio tiered/CPython (lower is faster), how many of the benchmark's functions ran in our
tiers, how many of their calls fell back, and the deopt count; then the geometric mean.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile

VERSION = "1.14.0"
CACHE = os.path.expanduser("~/.cache/tiered-pyperformance")

# Run as the child: the stand-in pyperf, the decoration, the timing.
CHILD = r'''
import argparse, asyncio, builtins, json, os, runpy, sys, time, types

engine, script, warmups, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
extra = json.loads(sys.argv[5])
registered = []

class Runner:
    def __init__(self, *a, **k):
        self.metadata = {}
        self.argparser = argparse.ArgumentParser()
        self.args = None
    def parse_args(self, args=None):
        self.args = self.argparser.parse_args(extra)
        return self.args
    def bench_func(self, name, func, *args, inner_loops=None, **k):
        registered.append(("func", name, func, args))
    def bench_time_func(self, name, func, *args, inner_loops=None, **k):
        registered.append(("time", name, func, args))
    def bench_async_func(self, name, func, *args, inner_loops=None, **k):
        registered.append(("async", name, func, args))
    def bench_command(self, name, command):
        registered.append(("command", name, None, ()))

pyperf = types.ModuleType("pyperf")
pyperf.Runner = Runner
pyperf.perf_counter = time.perf_counter
pyperf.python_implementation = lambda: sys.implementation.name
sys.modules["pyperf"] = pyperf

wrapped = {}
if engine == "tiered":
    from tiered import tiered, stats
    # Decorate the benchmark's own functions the moment they are registered: the script's
    # globals are complete then (registration is the last thing it does).
    def decorate(g):
        def wrap(f):
            if id(f) not in wrapped:
                wrapped[id(f)] = (f, tiered(f))
            return wrapped[id(f)][1]
        def own(f):
            return type(f) is types.FunctionType and f.__globals__ is g
        for k, v in list(g.items()):
            if own(v):
                g[k] = wrap(v)
            elif isinstance(v, type) and v.__module__ == "__main__":
                for kk, vv in list(vars(v).items()):
                    if own(vv):
                        setattr(v, kk, wrap(vv))
                    elif isinstance(vv, (staticmethod, classmethod)) and own(vv.__func__):
                        setattr(v, kk, type(vv)(wrap(vv.__func__)))
    _orig = {n: getattr(Runner, n) for n in ("bench_func", "bench_time_func", "bench_async_func")}
    def make(n):
        def reg(self, name, func, *args, **k):
            g = sys.modules["__main__"].__dict__
            if not wrapped:
                decorate(g)
            # The callable as the script now sees it (a bound method's function replaced).
            if isinstance(func, types.MethodType):
                func = getattr(func.__self__, func.__func__.__name__)
            elif id(func) in wrapped:
                func = wrapped[id(func)][1]
            _orig[n](self, name, func, *args, **k)
        return reg
    for n in _orig:
        setattr(Runner, n, make(n))

sys.argv = [script]
sys.path.insert(0, os.path.dirname(script))
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass

def once(kind, func, args):
    if kind == "func":
        t = time.perf_counter(); r = func(*args); return time.perf_counter() - t, r
    if kind == "time":
        return func(1, *args), None
    if kind == "async":
        t = time.perf_counter(); r = asyncio.run(func(*args)); return time.perf_counter() - t, r
    raise ValueError(kind)

out = {"results": {}, "times": {}}
for kind, name, func, args in registered:
    if kind == "command":
        out["skipped"] = "bench_command"
        continue
    # Warm-up: `warmups` calls and at least half a second (tier-up and compiles happen
    # here); then `runs` timed runs of enough calls to last 0.1 s each; the best run's
    # time per call counts.
    t0 = time.perf_counter()
    n = 0
    while n < warmups or time.perf_counter() - t0 < 0.5:
        t, r = once(kind, func, args)
        n += 1
    loops = max(1, int(0.1 / max(t, 1e-6)))
    best = None
    for _ in range(runs):
        total = 0.0
        for _ in range(loops):
            t, r = once(kind, func, args)
            total += t
        best = total / loops if best is None else min(best, total / loops)
    out["times"][name] = best
    out["results"][name] = repr(r)[:200]
if engine == "tiered":
    ss = [stats(w) for _, w in wrapped.values()]
    out["functions"] = len(ss)
    out["ours"] = sum(1 for s in ss if s["interp_calls"] + s["native_calls"] > 0)
    out["fallback_calls"] = sum(s["fallback_calls"] for s in ss)
    out["deopts"] = sum(s["deopts"] for s in ss)
    # Per native compile, the time from hot to native code (a function's compiles averaged).
    out["compile_ms"] = [s["compile_ms"] / s["native_compiles"] for s in ss if s["native_compiles"]]
    out["code_bytes"] = sum(s["code_bytes"] for s in ss)
print("RESULT " + json.dumps(out))
'''


def benchmarks_dir(source: str | None) -> str:
    if source:
        return source
    root = os.path.join(CACHE, VERSION)
    bench = os.path.join(root, "pyperformance", "data-files", "benchmarks")
    if not os.path.isdir(bench):
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d,
                            f"pyperformance=={VERSION}"], check=True)
            (whl,) = glob.glob(os.path.join(d, "*.whl"))
            zipfile.ZipFile(whl).extractall(root)
    return bench


def stdlib_only(bench: str) -> list[tuple[str, str, list[str]]]:
    """(name, script, extra options) of every stdlib-only benchmark and variant (a
    benchmark directory's own pyproject.toml and its bm_*.toml files each name one)."""
    import tomllib

    out = []
    for d in sorted(glob.glob(os.path.join(bench, "bm_*"))):
        script = os.path.join(d, "run_benchmark.py")
        try:
            meta = tomllib.load(open(os.path.join(d, "pyproject.toml"), "rb"))
        except OSError:
            continue
        deps = meta.get("project", {}).get("dependencies", [])
        if not os.path.exists(script) or any(x.strip() != "pyperf" for x in deps):
            continue
        if "bench_command" in open(script).read():
            continue
        variants = {}
        for f in [os.path.join(d, "pyproject.toml")] + sorted(glob.glob(os.path.join(d, "bm_*.toml"))):
            tp = tomllib.load(open(f, "rb")).get("tool", {}).get("pyperformance", {})
            name = tp.get("name") or os.path.basename(d)[3:]
            variants[name] = list(tp.get("extra_opts", []))
        out.extend((name, script, opts) for name, opts in sorted(variants.items()))
    return out


def run_one(script: str, extra: list[str], engine: str, warmups: int, runs: int,
            timeout: float):
    env = dict(os.environ)
    if engine == "cpython":
        env["TIERED_DISABLE"] = "1"
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, engine, script, str(warmups), str(runs),
                            json.dumps(extra)],
                           capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"exit {p.returncode}: " + (p.stderr.strip().splitlines() or ["?"])[-1][:120]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated benchmark names")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmups", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two engines")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--source", help="an unpacked pyperformance benchmarks directory")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bench = benchmarks_dir(a.source)
    names = stdlib_only(bench)
    if a.only:
        wanted = a.only.split(",")
        names = [n for n in names if n[0] in wanted]
    rows = []
    for name, script, extra in names:
        best = {"cpython": None, "tiered": None}
        info = {}
        for _ in range(a.rounds):
            for engine in ("cpython", "tiered"):
                r = run_one(script, extra, engine, a.warmups, a.runs, a.timeout)
                if "error" in r:
                    info.setdefault("error", f"{engine}: {r['error']}")
                    continue
                total = sum(r["times"].values())
                if best[engine] is None or total < best[engine][0]:
                    best[engine] = (total, r)
        row = {"name": name}
        if best["cpython"] and best["cpython"][0] <= 0:
            info.setdefault("error", "nothing timed (no bench_func/bench_time_func ran)")
        elif best["cpython"] and best["tiered"]:
            c, t = best["cpython"][1], best["tiered"][1]
            row.update(cpython=best["cpython"][0], tiered=best["tiered"][0],
                       ratio=best["tiered"][0] / best["cpython"][0],
                       same=c["results"] == t["results"], functions=t.get("functions", 0),
                       ours=t.get("ours", 0), fallback_calls=t.get("fallback_calls", 0),
                       deopts=t.get("deopts", 0), compile_ms=t.get("compile_ms", []),
                       code_bytes=t.get("code_bytes", 0))
        row.update(info)
        rows.append(row)
        if not a.json:
            print(fmt(row), flush=True)
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
    compiles = [ms for r in rows for ms in r.get("compile_ms", [])]
    median = statistics.median(compiles) if compiles else float("nan")
    if a.json:
        print(json.dumps({"rows": rows, "geomean": geo, "compile_ms_median": median}, indent=1))
    else:
        print(f"geometric mean of {len(ratios)} ratios: {geo:.2f}x "
              f"(TIERED_JIT={os.environ.get('TIERED_JIT', '1')}); "
              f"median time from hot to native code {median:.2f} ms over "
              f"{len(compiles)} compiled functions")
    return 0 if all(r.get("same", False) for r in rows if "ratio" in r) else 1


def fmt(r: dict) -> str:
    if "ratio" not in r:
        return f"{r['name']:<24} {r.get('error', 'no result')}"
    return (f"{r['name']:<24} {r['cpython'] * 1e3:10.1f} ms {r['tiered'] * 1e3:10.1f} ms "
            f"{r['ratio']:6.2f}x  same={'yes' if r['same'] else 'NO'}  "
            f"in our tiers {r['ours']}/{r['functions']} functions, "
            f"{r['fallback_calls']} fallback calls, {r['deopts']} deopts, "
            f"{len(r['compile_ms'])} compiled "
            f"(median {statistics.median(r['compile_ms']) if r['compile_ms'] else 0:.1f} ms, "
            f"{r['code_bytes'] // 1024} KiB)")


if __name__ == "__main__":
    sys.exit(main())
