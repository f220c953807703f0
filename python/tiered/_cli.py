"""The command line: ``python -m tiered {demo,dump,coverage,fuzz}``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import platform
import runpy
import sys
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import tiered
from tiered import _demo, _native

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command-line target: reported on stderr with exit status 2."""


# --- demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    cases = [c for c in _demo.SEED_CASES if not args.only or any(s in c.label for s in args.only)]
    if not cases:
        raise UsageError(f"no demo case matches {args.only!r}; cases: " + ", ".join(c.label for c in _demo.SEED_CASES))
    target, repeats = (0.02, 2) if args.quick else (args.time, args.repeat)
    try:
        plain_ns, tiered_ns = _demo.seed_namespaces(strict=args.strict)
    except tiered.UnsupportedError as exc:
        print(f"tiered demo: strict mode refused a workload: {exc}", file=sys.stderr)
        return EXIT_FAILED

    progress = _progress_printer() if not args.json else None
    results = _demo.run_cases(cases, plain_ns, tiered_ns, target_seconds=target, repeats=repeats, progress=progress)
    ok = all(m.same for m in results)
    if args.json:
        print(
            json.dumps({"environment": _environment(), "results": [m.as_json() for m in results], "ok": ok}, indent=2)
        )
    else:
        print(_banner(repeats))
        print()
        print(_demo.render_measurements(results))
        print()
        if ok:
            print("ratio = tiered time / CPython time per call (below 1.00x: tiered is faster)")
        else:
            bad = ", ".join(m.label for m in results if not m.same)
            print(f"RESULTS DIFFER from CPython in: {bad}")
    return EXIT_OK if ok else EXIT_FAILED


def _progress_printer() -> Callable[[_demo.Measurement], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(m: _demo.Measurement) -> None:
        print(f"  {m.label}: {_demo.format_ratio(m.ratio)}", file=sys.stderr)

    return show


def _environment() -> dict[str, Any]:
    return {
        "tiered": tiered.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "disabled": tiered._DISABLED,
        "strict_default": tiered._STRICT_DEFAULT,
    }


def _banner(repeats: int) -> str:
    line = (
        f"tiered {tiered.__version__} on {platform.python_implementation()} {platform.python_version()}"
        f" ({platform.machine()}); per-call times, best of up to {repeats} runs after a warm-up"
    )
    if tiered._DISABLED:
        line += "\nTIERED_DISABLE is set: the 'tiered' column is plain CPython too"
    return line


# --- dump ------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    func = resolve_target(args.target)
    if args.call is not None:
        # Run the function a few times first, so the dump shows what quickening and
        # tier 2 made of it. The expression sees the function's module (its globals).
        inner = getattr(func, "__wrapped__", func) if isinstance(func, tiered.TieredFunction) else func
        scope = dict(getattr(inner, "__globals__", {}))
        scope.setdefault("__builtins__", __builtins__)
        try:
            call_args = eval(args.call, scope, {})  # noqa: S307 - the user's own expression
        except Exception as exc:
            raise UsageError(f"--call {args.call!r}: {exc}") from None
        if not isinstance(call_args, tuple):
            call_args = (call_args,)
        try:
            w = tiered.tiered(inner)
            for _ in range(args.times):
                _run_body(w(*call_args))
        except Exception as exc:
            raise UsageError(f"{args.target}{call_args!r} raised {type(exc).__name__}: {exc}") from None
    try:
        text = tiered.dump(func, native=args.native)
    except TypeError as exc:
        raise UsageError(f"{args.target}: {exc}") from None
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _run_body(result: Any) -> None:
    """Runs what a generator, coroutine or async generator function returned to its end:
    their bodies run only as they are iterated or awaited. A coroutine goes through an
    event loop of its own (it may await asyncio's futures)."""
    if isinstance(result, types.GeneratorType):
        for _ in result:
            pass
    elif isinstance(result, types.CoroutineType):
        asyncio.run(result)
    elif isinstance(result, types.AsyncGeneratorType):

        async def drain() -> None:
            async for _ in result:
                pass

        asyncio.run(drain())


def resolve_target(target: str) -> Any:
    """``module:attr.path`` or ``path/to/file.py:attr.path`` to a function object."""
    where, sep, attr_path = target.rpartition(":")
    if not sep or not where or not attr_path:
        raise UsageError(f"bad target {target!r}: expected module:function or path/to/file.py:function")
    if where.endswith(".py") or os.sep in where or (os.altsep and os.altsep in where):
        namespace = _load_file(where)
    else:
        namespace = _import_module(where)
    obj: Any = namespace
    walked: list[str] = []
    for part in attr_path.split("."):
        if not part.isidentifier():
            raise UsageError(f"bad target {target!r}: {part!r} is not a Python identifier")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            scope = where + (":" + ".".join(walked) if walked else "")
            raise UsageError(f"{scope} has no attribute {part!r}") from None
        walked.append(part)
    func = _as_function(obj)
    if func is None:
        raise UsageError(f"{target} is {_kind(obj)}, not a Python function")
    return func


def _as_function(obj: Any) -> Any:
    """The Python function behind ``obj``, or None if there is none."""
    for _ in range(16):  # unwrap at most this many layers of decorators
        if isinstance(obj, (types.FunctionType, tiered.TieredFunction)):
            return obj
        if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            obj = obj.__func__
        elif isinstance(obj, property) and obj.fget is not None:
            obj = obj.fget
        elif hasattr(obj, "__wrapped__") and not isinstance(obj, type):
            obj = obj.__wrapped__
        else:
            return None
    return None


def _kind(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name} object"


def _import_module(name: str) -> types.ModuleType:
    if not all(part.isidentifier() for part in name.split(".")):
        raise UsageError(f"bad module name {name!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, "")  # as `python -c`: the current directory is importable
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"no module named {name!r}") from None
        raise UsageError(f"importing {name} failed: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"importing {name} failed: {type(exc).__name__}: {exc}") from exc


def _load_file(path: str) -> types.ModuleType:
    """Run a file as a module named after it (not ``__main__``: its main block stays idle)."""
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem.isidentifier() and stem not in sys.modules else f"__tiered_target_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # as `python file.py`: its siblings are importable
    sys.modules[name] = module  # dataclasses, pickle and friends look modules up by name
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:  # SystemExit at top level included: the file is not loadable
        sys.modules.pop(name, None)
        raise UsageError(f"running {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


# --- coverage --------------------------------------------------------------------------


def cmd_coverage(args: argparse.Namespace) -> int:
    status = EXIT_OK
    counts: Mapping[str, Any] | None = None
    reasons: Mapping[str, int] | None = None
    if args.run is not None:
        if not args.run:
            raise UsageError("--run needs a script: coverage --run script.py [args...]")
        status = _run_script(args.run[0], args.run[1:])
        counts = _native.op_counts()
        reasons = _native.fallback_reasons()
        _native.set_counting(False)
    report = coverage_report(counts, reasons)
    out: TextIO
    with _open_output(args.output) as out:
        if args.json:
            out.write(json.dumps(report, indent=2) + "\n")
        else:
            out.write(render_coverage(report, top=args.top) + "\n")
    return status


class _open_output:
    """stdout, or a file when ``--output`` is given (so a script's own prints stay apart)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file: TextIO | None = None

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        self.file = open(self.path, "w", encoding="utf-8")
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _run_script(script: str, script_args: Sequence[str]) -> int:
    """Run ``script`` as ``__main__`` with counting on; its exit status."""
    if not os.path.exists(script):
        raise UsageError(f"no such file: {script}")
    saved_argv = sys.argv[:]
    sys.argv = [script, *script_args]
    directory = os.path.dirname(os.path.abspath(script))
    sys.path.insert(0, directory)
    _native.reset_counts()
    _native.set_counting(True)
    try:
        runpy.run_path(script, run_name="__main__")
        return EXIT_OK
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        tb = exc.__traceback__
        script_path = os.path.abspath(script)
        while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != script_path:
            tb = tb.tb_next  # hide tiered's and runpy's own frames
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
        print(f"tiered coverage: {script} raised; the counts below cover what ran", file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout.flush()
        sys.argv = saved_argv
        if sys.path and sys.path[0] == directory:
            del sys.path[0]


def coverage_report(
    counts: Mapping[str, Any] | None = None, reasons: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The op table (with execution counts when given) and the untranslated opcodes."""
    ops: list[dict[str, Any]] = [dict(row) for row in _native.coverage_table()]
    if counts is not None:
        seen = set()
        for row in ops:
            c = counts.get(row["op"], {})
            row["tier1"], row["tier2"] = int(c.get("tier1", 0)), int(c.get("tier2", 0))
            row["deopts"] = int(c.get("deopts", 0))
            seen.add(row["op"])
        for op in sorted(set(counts) - seen):  # counted but not in the table: still show it
            c = counts[op]
            ops.append(
                {
                    "op": op,
                    "family": "?",
                    "doc": "",
                    "opcodes": [],
                    "interpreted": False,
                    "quickened": [],
                    "native": [],
                    "tier1": int(c.get("tier1", 0)),
                    "tier2": int(c.get("tier2", 0)),
                    "deopts": int(c.get("deopts", 0)),
                }
            )
    report: dict[str, Any] = {"ops": ops, "untranslated": [dict(r) for r in _native.untranslated_opcodes()]}
    if reasons is not None:
        report["fallback_reasons"] = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return report


def _names(items: Sequence[str], width: int = 44) -> str:
    """Comma-separated names, shortened to about ``width`` columns with a count of the rest
    (``--json`` has the full lists)."""
    if not items:
        return "-"
    shown: list[str] = []
    for i, name in enumerate(items):
        if shown and len(", ".join(shown + [name])) > width:
            return ", ".join(shown) + f" (+{len(items) - i} more)"
        shown.append(name)
    return ", ".join(shown)


def render_coverage(report: dict[str, Any], top: int = 10) -> str:
    ops = report["ops"]
    counted = bool(ops) and "tier1" in ops[0]
    headers = ["op", "family", "CPython opcodes", "interpreted", "quickened", "native"]
    right: tuple[int, ...] = ()
    if counted:
        headers += ["tier1", "tier2"]
        right = (6, 7)
    rows = []
    for row in ops:
        cells = [
            row["op"],
            row["family"],
            _names(row["opcodes"]),
            "yes" if row["interpreted"] else "no",
            _names(row["quickened"]),
            _names(row["native"]),
        ]
        if counted:
            cells += [f"{row['tier1']:,}", f"{row['tier2']:,}"]
        rows.append(cells)
    n_ops = len(ops)
    n_interp = sum(1 for r in ops if r["interpreted"])
    n_quick = sum(1 for r in ops if r["quickened"])
    n_native = sum(1 for r in ops if r["native"])
    opcodes = sorted({o for r in ops for o in r["opcodes"]})
    untranslated = report["untranslated"]
    parts = [
        _demo.render_table(headers, rows, right=right),
        "",
        (
            f"{n_ops} IR ops: {n_interp} interpreted, {n_quick} with quickened variants,"
            f" {n_native} with native templates; {len(opcodes)} CPython opcodes translated, {len(untranslated)} not"
        ),
    ]
    if counted:
        total1 = sum(r["tier1"] for r in ops)
        total2 = sum(r["tier2"] for r in ops)
        parts.append(f"ops executed: {total1:,} in tier 1, {total2:,} in tier 2")
        deopts = sorted(((r.get("deopts", 0), r["op"]) for r in ops if r.get("deopts", 0)), reverse=True)[:top]
        if deopts:
            parts.append("top native guard failures (deopts: the op ran in tier 1 instead): "
                         + ", ".join(f"{op} {n:,}" for n, op in deopts))
        else:
            parts.append("no native guard failed (no deopts)")
    if untranslated:
        parts += ["", "CPython opcodes that fall back to CPython (Unsupported):"]
        parts.append(_demo.render_table(["opcode", "reason"], [[u["opcode"], u["reason"]] for u in untranslated]))
    reasons = report.get("fallback_reasons")
    if reasons is not None:
        parts.append("")
        if reasons:
            shown = list(reasons.items())[:top]
            parts.append(f"top fallback reasons ({len(shown)} of {len(reasons)}):")
            parts.append(_demo.render_table(["calls", "reason"], [[f"{n:,}", r] for r, n in shown], right=(0,)))
        else:
            parts.append("no fallback calls")
    return "\n".join(parts)


# --- the parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tiered",
        description="tiered: a tiered JIT compiler for CPython 3.11.",
    )
    parser.add_argument("--version", action="version", version=f"tiered {tiered.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="time the seed examples under CPython and under @tiered",
        description="Time the seed examples (add1, pysum, sum_it, flat_rep, fib) under plain CPython and under "
        "@tiered in one process. Exit status 1 if any result differs from CPython's.",
    )
    demo.add_argument("--quick", action="store_true", help="a fast smoke run: few iterations, two repeats")
    demo.add_argument(
        "--time",
        type=_positive_float,
        default=0.3,
        metavar="SECONDS",
        help="about how long the CPython side of each case runs (default: %(default)s)",
    )
    demo.add_argument(
        "--repeat",
        type=_positive_int,
        default=5,
        metavar="N",
        help="timed runs per side after the warm-up; the best counts (default: %(default)s)",
    )
    demo.add_argument(
        "--only", action="append", metavar="TEXT", help="run only the cases whose label contains TEXT (repeatable)"
    )
    demo.add_argument("--strict", action="store_true", help="compile the workloads in strict mode")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.set_defaults(handler=cmd_demo)

    dump = sub.add_parser(
        "dump",
        help="print a function's bytecode beside its IR",
        description="Print the CPython bytecode of a function beside tiered's IR for it. Untranslatable "
        "opcodes show as Unsupported ops with their reason.",
    )
    dump.add_argument(
        "target",
        metavar="TARGET",
        help="module:function or path/to/file.py:function; dotted paths such as mod:Class.method work",
    )
    dump.add_argument(
        "--call",
        metavar="ARGS",
        help="a Python expression for the arguments (a tuple, or one value), evaluated in the "
        "function's module: call the function with them --times times (running the generators, "
        "coroutines and async generators it returns to their end) before dumping, to see its quickened IR and native code",
    )
    dump.add_argument("--times", type=int, default=100, help="how many calls --call makes (default 100)")
    dump.add_argument("--native", action="store_true", help="also print the Cranelift IR and machine code")
    dump.set_defaults(handler=cmd_dump)

    coverage = sub.add_parser(
        "coverage",
        help="which CPython opcodes each tier handles (and, with --run, what a script executed)",
        description="Print one row per IR op: the CPython opcodes translated to it and whether tier 1 interprets "
        "it, its quickened variants and its native templates; then the opcodes that fall back to CPython. With "
        "--run, run a script as __main__ with per-op counters on and add the counts and the top fallback reasons.",
    )
    coverage.add_argument("--json", action="store_true", help="print the report as JSON")
    coverage.add_argument(
        "--top",
        type=_positive_int,
        default=10,
        metavar="N",
        help="how many fallback reasons to list with --run (default: %(default)s)",
    )
    coverage.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    coverage.add_argument(
        "--run",
        nargs=argparse.REMAINDER,
        metavar="SCRIPT ARGS",
        help="run SCRIPT with ARGS as __main__ first (must come last: everything after it goes to the script)",
    )
    coverage.set_defaults(handler=cmd_coverage)

    fuzz = sub.add_parser(
        "fuzz",
        help="the differential fuzzer: random programs under CPython and every tiered path",
        description="Generate random Python programs and run each under CPython and under tiered on every "
        "execution path, comparing results, exceptions, output and argument state. Exit status 1 if any "
        "program differed. Options: --minutes N, --seconds N, --count N, --seed N, --paths A,B, "
        "--save DIR (minimized regressions), --jobs N, --size N, --replay FILE...",
        add_help=False,
    )
    fuzz.add_argument("options", nargs=argparse.REMAINDER, help="see `python -m tiered fuzz --help`")
    fuzz.set_defaults(handler=cmd_fuzz)
    return parser


def cmd_fuzz(args: argparse.Namespace) -> int:
    from tiered._fuzz import run

    return run.main(args.options)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fuzz"]:
        # Its options are its own (argparse would take them for the main parser's).
        return cmd_fuzz(argparse.Namespace(options=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `python -m tiered coverage | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail too
        return EXIT_FAILED
