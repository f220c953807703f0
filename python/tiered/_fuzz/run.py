"""The differential fuzzer: runs generated programs (``gen.py``) under CPython and under
tiered on every execution path, compares everything they do, and minimizes and saves any
program on which they differ.

Programs run in worker processes (``python -m tiered._fuzz.run --worker``), one program
at a time, so a crash or a hang costs a worker, not the run: the parent sees which
program was running and reports it. A worker runs a program first under CPython, then
once per path, each in a fresh module namespace, calling ``entry`` with the same argument
sets in the same order, and compares per call: the result, the exception (type, message,
cause and context), the printed output, the arguments afterwards, the objects released
during the call (each program's ``__del__`` logs to ``GDEL``) and how many references the
arguments have after it (a leak changes no result); then the module's globals. A path
may take at most ``SLOWDOWN`` times CPython's CPU time (a SIGPROF timer; tiered code
checks the eval breaker, so the signal interrupts it too), else it counts as a hang.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from tiered._fuzz.gen import ARGUMENT_SETS, generate
from tiered._fuzz.outcome import describe_exc, normalize, references, safe_repr

#: Execution paths: name -> (tiered options, rounds of the argument sets). The last one
#: keeps the default thresholds and calls enough times to quicken and compile.
PATHS: dict[str, tuple[dict, int]] = {
    "tier1-generic": ({"quicken": False, "jit": False}, 1),
    "tier1-quickened": ({"quicken": True, "jit": False}, 1),
    "native-first-call": ({"quicken": True, "jit": True, "jit_threshold": 0, "osr_threshold": 0}, 1),
    "native-after-quickening": ({"quicken": True, "jit": True, "jit_threshold": 1, "osr_threshold": 1}, 2),
    "default-after-warmup": ({"quicken": True, "jit": True, "jit_threshold": 20, "osr_threshold": 500}, 4),
}

#: A tiered path may take this many times CPython's time (plus BASE_BUDGET) before it
#: counts as a hang.
SLOWDOWN = 40
BASE_BUDGET = 3.0
#: On native-first-call every function is compiled at its first call, on
#: native-after-quickening at its second (and on both again after deopts): a program
#: CPython runs at once may spend seconds compiling there (seed 240143766 under some hash
#: seeds: 3.7 s of CPU on native-first-call; seed 18000657: 4.1 s on
#: native-after-quickening, 0.15 s in tier 1), which is slow warm-up, not a hang.
COMPILE_BUDGET = {"native-first-call": 10.0, "native-after-quickening": 10.0}
#: CPython itself may take this long per program; slower programs are skipped.
CPYTHON_BUDGET = 2.0


class _Timeout(BaseException):
    """Raised by the alarm (a BaseException: programs catch Exception)."""


#: Whether the alarm fired during the current run, even if the program then swallowed
#: the `_Timeout` (a context manager's `__exit__` returning true does).
_fired = False


def _alarm(_signum, _frame):
    global _fired
    _fired = True
    raise _Timeout


@dataclass
class PathRun:
    """Everything one execution of a program did."""

    calls: list = field(default_factory=list)
    module: Any = None
    final: Any = None
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)


def _compile(src: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(src, "<fuzz>", "exec")


def run_path(src: str, opts: dict | None, arg_sets: list[str], rounds: int, budget: float) -> PathRun:
    """Runs the program once: the module, then ``entry`` on each argument set, ``rounds``
    times. ``opts`` None runs plain CPython."""
    from tiered import tiered

    wrappers: list = []

    def T(f):  # noqa: N802 - the generated programs' decorator
        if opts is None:
            return f
        w = tiered(f, **opts)
        wrappers.append(w)
        return w

    code = _compile(src)
    ns: dict = {"T": T, "__name__": "fuzzmod"}
    out = PathRun()
    start = time.process_time()
    # CPU time, not wall time: a loaded machine must not turn slow runs into "hangs".
    signal.setitimer(signal.ITIMER_PROF, budget)
    try:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(code, ns)
            out.module = (None, buf.getvalue())
        except Exception as e:  # noqa: BLE001
            out.module = (describe_exc(e), buf.getvalue())
            return out
        entry = ns.get("entry")
        log = ns.get("GDEL")
        for _ in range(rounds):
            for a in arg_sets:
                args = list(eval(a))  # noqa: S307 - our own literal
                buf = io.StringIO()
                raised, value = False, None
                logged = len(log) if isinstance(log, list) else 0
                try:
                    with contextlib.redirect_stdout(buf):
                        result = entry(*args)
                    value = normalize(result)
                    del result
                except Exception as e:  # noqa: BLE001
                    raised, value = True, describe_exc(e)
                released = [safe_repr(x) for x in log[logged:]] if isinstance(log, list) else None
                out.calls.append((raised, value, buf.getvalue(), normalize(args), released,
                                  references(args, _fresh)))
        out.final = normalize({k: v for k, v in ns.items() if k[:1] == "G"})
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        out.seconds = time.process_time() - start
        _count(wrappers, out.counts)
    return out


def _fresh(x: Any) -> bool:
    """What each call's argument literals make afresh: lists, floats, ints past the
    small-int cache (`outcome.references`)."""
    return type(x) in (list, float) or (type(x) is int and not -5 <= x <= 256)


def _count(wrappers: list, into: dict) -> None:
    from tiered import stats

    for w in wrappers:
        s = stats(w)
        for k in ("calls", "fallback_calls", "interp_calls", "native_calls", "deopts"):
            into[k] = into.get(k, 0) + s[k]


def _first_difference(expected: PathRun, got: PathRun) -> str | None:
    if expected.module != got.module:
        return f"module body: CPython {expected.module!r}\n  tiered {got.module!r}"
    for i, (e, g) in enumerate(zip(expected.calls, got.calls)):
        if e != g:
            what = ("raised", "value/exception", "stdout", "arguments after",
                    "objects released (GDEL) during the call", "references to the arguments after")
            for name, x, y in zip(what, e, g):
                if x != y:
                    return f"call {i}: {name} differs\n{_show(x, y)}"
    if len(expected.calls) != len(got.calls):
        return f"{len(expected.calls)} calls under CPython, {len(got.calls)} tiered"
    if expected.final != got.final:
        return f"globals afterwards: CPython {expected.final!r}\n  tiered {got.final!r}"
    return None


def _show(cpython: Any, tiered: Any, width: int = 1500) -> str:
    """Two differing records, shortened: for lists (a call's releases), the first item
    where they part and a few around it."""
    if isinstance(cpython, list) and isinstance(tiered, list):
        parted = (k for k, (x, y) in enumerate(zip(cpython, tiered)) if x != y)
        at = next(parted, min(len(cpython), len(tiered)))
        lo = max(0, at - 2)
        return (f"  from item {at} (CPython {len(cpython)} items, tiered {len(tiered)}):\n"
                f"  CPython [{lo}:] {cpython[lo:at + 3]!r}\n  tiered  [{lo}:] {tiered[lo:at + 3]!r}")
    return f"  CPython {repr(cpython)[:width]}\n  tiered  {repr(tiered)[:width]}"


#: Where a worker notes what it is running ("cpython" or a path), so that a parent that
#: must kill a stuck worker knows whether CPython itself was stuck (in a long C call the
#: alarm cannot interrupt: the program is skipped) or a tiered path (a hang).
_PHASE_FILE: str | None = None


#: How long (wall clock) past its own CPU budget, times WALL_FACTOR, a phase may run
#: before the parent kills the worker (a loaded machine runs it slower).
GRACE = 30.0
WALL_FACTOR = 4


def _phase(what: str, budget: float) -> None:
    if _PHASE_FILE:
        with open(_PHASE_FILE, "w") as f:
            f.write(f"{what} {time.time() + WALL_FACTOR * budget + GRACE}")


def check_program(src: str, arg_sets: list[str], paths: list[str]) -> dict:
    """Runs ``src`` under CPython and on each path: the verdict (status ok, skip or
    diverge; for a divergence the path and what differed) and the tier counters."""
    global _fired
    rounds = max(PATHS[p][1] for p in paths)
    signal.signal(signal.SIGPROF, _alarm)
    _phase("cpython", CPYTHON_BUDGET)
    _fired = False
    try:
        ref = run_path(src, None, arg_sets, rounds, CPYTHON_BUDGET)
    except (_Timeout, RecursionError, MemoryError) as e:
        return {"status": "skip", "why": f"CPython: {type(e).__name__}"}
    if _fired:
        return {"status": "skip", "why": "CPython: _Timeout (swallowed by the program)"}
    per_call = len(arg_sets)
    counts: dict = {}
    for p in paths:
        opts, r = PATHS[p]
        expected = PathRun(ref.calls[: r * per_call], ref.module, ref.final if r == rounds else None)
        budget = COMPILE_BUDGET.get(p, BASE_BUDGET) + SLOWDOWN * ref.seconds
        _phase(p, budget)
        _fired = False
        try:
            got = run_path(src, opts, arg_sets, r, budget)
            if _fired:
                raise _Timeout
        except _Timeout:
            return {"status": "diverge", "path": p, "kind": "hang",
                    "detail": f"no result after {budget:.1f} s (CPython: {ref.seconds:.2f} s)"}
        if r != rounds:
            got.final = None
        diff = _first_difference(expected, got)
        if diff is not None:
            return {"status": "diverge", "path": p, "kind": "mismatch", "detail": diff}
        for k, v in got.counts.items():
            counts[k] = counts.get(k, 0) + v
    return {"status": "ok", "counts": counts}


# --- workers ------------------------------------------------------------------------


def worker_main(phase_file: str | None) -> int:
    """Reads JSON requests (program, argument sets, paths) from stdin, one per line, and
    answers each with a JSON verdict line."""
    global _PHASE_FILE
    _PHASE_FILE = phase_file
    sys.setrecursionlimit(3000)
    # A program that allocates without bound gets a MemoryError (on either side, so a
    # difference shows) instead of the machine's OOM killer.
    import resource

    limit = WORKER_MEMORY
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # The verdicts have the parent's pipe to themselves: what a program prints outside
    # its capture (a suspended generator's `finally`, run when the garbage collector takes
    # the program's namespace; anything written to `sys.__stdout__` or to fd 1) goes to
    # /dev/null instead of into the protocol, where the parent took it for a verdict.
    sys.stdout.flush()
    verdicts = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            verdict = check_program(req["src"], req["args"], req["paths"])
        except BaseException as e:  # noqa: BLE001 - report, never die silently
            verdict = {"status": "diverge", "path": "?", "kind": "fuzzer-error",
                       "detail": f"{type(e).__name__}: {e}"}
        print(json.dumps(verdict), file=verdicts, flush=True)
    return 0


#: Address space a worker may use.
WORKER_MEMORY = 8 << 30

#: Programs a worker checks before it is replaced: native code of functions that are gone
#: is not freed yet (about 150 KB per compiled function), and each program compiles a few
#: hundred of them over its paths; an hour in one worker reached 24 GB.
PROGRAMS_PER_WORKER = 50


class Worker:
    """A worker process, replaced when it dies or hangs, and after
    `PROGRAMS_PER_WORKER` programs."""

    def __init__(self) -> None:
        import tempfile

        fd, self.phase_file = tempfile.mkstemp(prefix="tiered-fuzz-phase-")
        os.close(fd)
        env = dict(os.environ, PYTHONHASHSEED="0")
        for k in ("TIERED_DISABLE", "TIERED_STRICT", "TIERED_JIT", "TIERED_QUICKEN",
                  "TIERED_JIT_THRESHOLD", "TIERED_OSR_THRESHOLD"):
            env.pop(k, None)
        self.answered = 0
        self.p = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "tiered._fuzz.run", "--worker", self.phase_file],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )

    def ask(self, src: str, arg_sets: list[str], paths: list[str], hard_timeout: float) -> dict:
        """The verdict on one program; a crash or hang of the worker is a divergence."""
        assert self.p.stdin and self.p.stdout
        self.p.stdin.write(json.dumps({"src": src, "args": arg_sets, "paths": paths}) + "\n")
        self.p.stdin.flush()
        start = time.monotonic()
        while True:
            ready, _, _ = select.select([self.p.stdout], [], [], 1.0)
            if ready:
                break
            if time.monotonic() - start > hard_timeout or self.overdue():
                return self.stuck(time.monotonic() - start)
        line = self.p.stdout.readline()
        if not line:
            code = self.p.wait()
            err = self.p.stderr.read() if self.p.stderr else ""
            return {"status": "diverge", "path": "?", "kind": "crash",
                    "detail": f"the worker died (status {code})\n{err[-3000:]}"}
        return json.loads(line)

    def phase(self) -> tuple[str, float]:
        """What the worker is running, and until when it may."""
        try:
            with open(self.phase_file) as f:
                what, until = f.read().split()
                return what, float(until)
        except (OSError, ValueError):
            return "?", float("inf")

    def overdue(self) -> bool:
        return time.time() > self.phase()[1]

    def stuck(self, waited: float) -> dict:
        """Kills a worker that did not answer: the verdict on what it was running (for a
        hang of a tiered path, with the native stacks gdb sees, when gdb is there)."""
        phase = self.phase()[0]
        stacks = "" if phase == "cpython" else _native_stacks(self.p.pid)
        self.kill()
        if phase == "cpython":
            return {"status": "skip", "why": "CPython stuck in a long C call"}
        return {"status": "diverge", "path": phase, "kind": "hang",
                "detail": f"no answer within {waited:.0f} s (the alarm did not interrupt it)\n{stacks}"}

    def kill(self) -> None:
        self.p.kill()
        self.p.wait()
        self._close_pipes()

    def close(self) -> None:
        if self.p.poll() is None:
            assert self.p.stdin
            self.p.stdin.close()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f is not None and not f.closed:
                f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.phase_file)


def _native_stacks(pid: int) -> str:
    """The native stack of every thread of process `pid` (gdb), or ''."""
    try:
        r = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt 40"],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return "\n".join(ln for ln in r.stdout.splitlines() if ln.startswith(("#", "Thread")))[-6000:]


def ask_once(src: str, arg_sets: list[str], paths: list[str], hard_timeout: float = 120) -> dict:
    """One program in a fresh worker."""
    w = Worker()
    try:
        return w.ask(src, arg_sets, paths, hard_timeout)
    finally:
        w.close()


# --- minimizing and saving --------------------------------------------------------------


def _statement_lists(tree: ast.AST):
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                yield body
        if isinstance(node, ast.Try):
            for h in node.handlers:
                yield h.body


def minimize(src: str, arg_sets: list[str], verdict: dict, budget_s: float = 300) -> tuple[str, list[str]]:
    """A smaller program (and fewer argument sets) that diverges the same way: the same
    path and kind. Greedy: drop argument sets, then statements, while it still does."""
    deadline = time.monotonic() + budget_s
    path = verdict.get("path")
    paths = [path] if path in PATHS else list(PATHS)

    def same(s: str, a: list[str]) -> bool:
        if time.monotonic() > deadline:
            return False
        try:
            _compile(s)
        except SyntaxError:
            return False
        v = ask_once(s, a, paths, hard_timeout=60)
        return v["status"] == "diverge" and v.get("kind") == verdict.get("kind")

    for i in range(len(arg_sets) - 1, -1, -1):
        if len(arg_sets) > 1 and same(src, arg_sets[:i] + arg_sets[i + 1:]):
            arg_sets = arg_sets[:i] + arg_sets[i + 1:]

    def spots(s: str) -> list[tuple[int, int]]:
        return [(li, i) for li, body in enumerate(_statement_lists(ast.parse(s))) for i in range(len(body))]

    def without(s: str, li: int, i: int) -> str | None:
        tree = ast.parse(s)
        body = list(_statement_lists(tree))[li]
        if len(body) == 1:
            if isinstance(body[0], ast.Pass):
                return None
            body[0] = ast.Pass()
        else:
            del body[i]
        return ast.unparse(tree)

    # From the last statement back: each one the divergence survives without goes.
    k = len(spots(src)) - 1
    while k >= 0 and time.monotonic() < deadline:
        places = spots(src)
        k = min(k, len(places) - 1)
        candidate = without(src, *places[k])
        if candidate is not None and same(candidate, arg_sets):
            src = candidate
        k -= 1
    return src, arg_sets


def regression_text(src: str, arg_sets: list[str], verdict: dict, seed: int | None) -> str:
    head = [
        "# A program on which tiered and CPython differed, found by the fuzzer",
        f"# (seed {seed}, path {verdict.get('path')}, {verdict.get('kind')}); minimized.",
        "# Replayed on every path by tests/python/test_fuzz.py.",
        f"# FUZZ-ARGS: {json.dumps(arg_sets)}",
    ]
    detail = [f"#   {ln}" for ln in str(verdict.get("detail", "")).splitlines()[:12]]
    return "\n".join(head + ["# What differed:"] + detail) + "\n" + src


def read_regression(text: str) -> tuple[str, list[str]]:
    """The program and argument sets of a saved regression."""
    for line in text.splitlines():
        if line.startswith("# FUZZ-ARGS: "):
            return text, json.loads(line[len("# FUZZ-ARGS: "):])
    return text, list(ARGUMENT_SETS)


# --- the command --------------------------------------------------------------------


def fuzz(seconds: float, seed: int, count: int | None, paths: list[str], save: str | None,
         jobs: int, size: int, out=sys.stdout) -> int:
    """Generates and checks programs until the time or count is used up. Returns the number
    of divergences found."""
    workers = [Worker() for _ in range(jobs)]
    busy: dict = {}  # worker index -> (seed, src, start)
    stop_at = time.monotonic() + seconds
    next_seed = seed
    ran = skipped = 0
    found: list = []
    totals: dict = {}
    started = time.monotonic()

    def submit(i: int) -> None:
        nonlocal next_seed
        src = generate(next_seed, size)
        w = workers[i]
        assert w.p.stdin
        w.p.stdin.write(json.dumps({"src": src, "args": ARGUMENT_SETS, "paths": paths}) + "\n")
        w.p.stdin.flush()
        busy[i] = (next_seed, src, time.monotonic())
        next_seed += 1

    def more() -> bool:
        return time.monotonic() < stop_at and (count is None or next_seed < seed + count)

    for i in range(jobs):
        if more():
            submit(i)
    hard = BASE_BUDGET * 4 + CPYTHON_BUDGET * (SLOWDOWN + 1) * len(paths)
    while busy:
        fds = {workers[i].p.stdout.fileno(): i for i in busy}
        ready, _, _ = select.select(list(fds), [], [], 1.0)
        now = time.monotonic()
        done: list = []
        for fd in ready:
            i = fds[fd]
            line = workers[i].p.stdout.readline()
            if not line:
                code = workers[i].p.wait()
                err = workers[i].p.stderr.read()
                done.append((i, {"status": "diverge", "path": "?", "kind": "crash",
                                 "detail": f"the worker died (status {code})\n{err[-3000:]}"}))
                continue
            done.append((i, json.loads(line)))
        for i, (s, src, t0) in list(busy.items()):
            if (now - t0 > hard or workers[i].overdue()) and all(d[0] != i for d in done):
                done.append((i, workers[i].stuck(now - t0)))
        for i, verdict in done:
            s, src, _ = busy.pop(i)
            workers[i].answered += 1
            if workers[i].p.poll() is not None or workers[i].answered >= PROGRAMS_PER_WORKER:
                workers[i].close()
                workers[i] = Worker()
            if verdict["status"] == "skip":
                skipped += 1
            elif verdict["status"] == "ok":
                ran += 1
                for k, v in verdict.get("counts", {}).items():
                    totals[k] = totals.get(k, 0) + v
            else:
                found.append((s, src, verdict))
                print(f"seed {s}: {verdict['kind']} on {verdict['path']}\n  {verdict['detail']}", file=out, flush=True)
            if more():
                submit(i)
    for w in workers:
        w.close()
    elapsed = time.monotonic() - started
    calls = totals.get("calls", 0)
    ours = totals.get("interp_calls", 0) + totals.get("native_calls", 0)
    print(f"fuzz: {ran + skipped + len(found)} programs in {elapsed:.0f} s (seeds {seed}..{next_seed - 1}, "
          f"paths: {', '.join(paths)}): {ran} agreed, {skipped} skipped (CPython too slow or too deep), "
          f"{len(found)} differed", file=out)
    if calls:
        print(f"  tiered calls: {calls:,}, in our tiers {ours:,} ({100 * ours / calls:.0f}%: "
              f"{totals.get('native_calls', 0):,} with native code), fell back {totals.get('fallback_calls', 0):,}, "
              f"deopts {totals.get('deopts', 0):,}", file=out)
    for s, src, verdict in found:
        if not save:
            continue
        small, args = minimize(src, list(ARGUMENT_SETS), verdict)
        os.makedirs(save, exist_ok=True)
        name = os.path.join(save, f"seed_{s}_{verdict['kind']}.py")
        with open(name, "w") as fh:
            fh.write(regression_text(small, args, verdict, s))
        print(f"  saved (minimized, {small.count(chr(10))} lines): {name}", file=out)
    return len(found)


def replay(path: str, paths: list[str]) -> dict:
    """The verdict on a saved regression."""
    with open(path) as fh:
        src, args = read_regression(fh.read())
    return ask_once(src, args, paths)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tiered fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", metavar="PHASE_FILE", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, default=None, help="how long to run (default 1)")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--count", type=int, default=None, help="stop after this many programs")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: from the clock)")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated: " + ", ".join(PATHS))
    ap.add_argument("--save", default=None, help="directory for minimized regressions")
    ap.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--size", type=int, default=3, help="program size (statements per body)")
    ap.add_argument("--replay", nargs="*", default=None, help="saved regressions to re-check")
    a = ap.parse_args(argv)
    if a.worker:
        return worker_main(a.worker)
    paths = [p for p in a.paths.split(",") if p]
    bad = [p for p in paths if p not in PATHS]
    if bad:
        ap.error(f"unknown path(s) {bad}; known: {list(PATHS)}")
    if a.replay is not None:
        failed = 0
        for f in a.replay:
            v = replay(f, paths)
            print(f"{f}: {v['status']}" + (f" ({v['kind']} on {v['path']}: {v['detail']})" if v["status"] == "diverge" else ""))
            failed += v["status"] == "diverge"
        return 1 if failed else 0
    seconds = a.seconds if a.seconds is not None else 60 * (a.minutes if a.minutes is not None else 1)
    seed = a.seed if a.seed is not None else int(time.time()) % 1_000_000 * 1000
    n = fuzz(seconds, seed, a.count, paths, a.save, a.jobs, a.size)
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
