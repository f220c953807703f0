"""Real CPython frames for tiered activations (issue 10): everything that reads the stack
sees what it sees under CPython. Each program runs under plain CPython and tiered, in
fresh interpreters, with the same exit status, stdout and stderr; ``ours(f, ...)`` asserts
the tiered functions ran in our tiers (no fallback)."""

from harness import same_as_cpython

# Register a program's source with linecache so tracebacks show its lines and 3.11's carets.
SOURCE = r"""
import linecache
def load(src, name, g):
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    exec(compile(src, name, "exec"), g)
"""


def test_logging_and_warnings_see_the_tiered_function():
    same_as_cpython(SOURCE + r'''
import logging, sys, warnings
from tiered import tiered
logging.basicConfig(stream=sys.stdout, format="%(funcName)s:%(lineno)d %(message)s",
                    level=logging.INFO)
warnings.simplefilter("always")
warnings.showwarning = lambda m, c, f, l, *a: print("warn", c.__name__, f, l, m)
src = """
import logging, warnings
log = logging.getLogger("x")
def helper():
    warnings.warn("from helper", stacklevel=2)
def process(n):
    total = 0
    for i in range(n):
        total += i
    log.info("total %d", total)
    warnings.warn("direct", stacklevel=1)
    helper()
    return total
def outer(n):
    return process(n) + 1
"""
g = {}
load(src, "<prog>", g)
for name in ("process", "outer"):
    g[name] = tiered(g[name])
for _ in range(4):
    g["outer"](5)
ours(g["process"], g["outer"])
''')


def test_getframe_chains_and_caller_locals_stay_current():
    # A caller's locals read through sys._getframe(1) and inspect's f_back chain, in a loop
    # that changes them between reads (a synced activation that runs again is stale).
    same_as_cpython(r'''
import sys, inspect
from tiered import tiered

def peek(n):
    f = sys._getframe(n)
    return f.f_code.co_name, f.f_lineno, sorted((k, v) for k, v in f.f_locals.items()
                                                 if k != "out")

@tiered
def mid(z):
    q = z * 2
    a = peek(1)
    b = peek(2)
    return a, b, [fr.function for fr in inspect.stack()[:4]]

@tiered
def outer(k):
    out = []
    for i in range(k):
        x = i * 10
        out.append(mid(x))
        out.append(peek(0)[0])
        y = x + 1.5
        out.append(mid(y))
    return out

for _ in range(3):
    print(outer(4))
ours(mid, outer)
''')


def test_a_compared_local_read_only_by_its_if_stays_in_the_frame():
    # `x = a < b; if x:` in native code: the comparison's bool goes to the `if` in a
    # machine register (its register-file stores are dropped when nothing reads them),
    # but x is a local, so the frame must still show it to whoever looks later.
    same_as_cpython(r'''
import sys
from tiered import tiered

def caller_locals():
    return sorted(sys._getframe(1).f_locals.items())

@tiered
def f(a, b):
    x = a < b
    if x:
        pass
    y = a is b
    if y:
        pass
    return caller_locals()

for _ in range(40):
    r = [f(1, 2), f(2, 1), f(3, 3), f(1.5, 2.5), f("a", "b")]
print(r)
ours(f)
''')


def test_frame_readers_at_every_level_of_a_deep_recursion():
    # Each level reads the stack: syncing every activation at every level would be
    # quadratic in the depth; the clean bit keeps it linear. (Depth is bounded by tier 1's
    # native stack use: see README, Limits.)
    same_as_cpython(r'''
import sys
from tiered import tiered
sys.setrecursionlimit(10000)

@tiered
def down(n):
    if n == 0:
        return sys._getframe(3).f_locals["n"]
    v = sys._getframe(1).f_locals.get("n", -1)
    return down(n - 1) + (v - n)

for _ in range(3):
    print(down(900))
ours(down)
''', timeout=120)


def test_tracebacks_have_lines_and_carets():
    same_as_cpython(SOURCE + r'''
import traceback
from tiered import tiered
src = """
def inner(d, k):
    return d[k] + 1
def outer(d):
    total = 0
    for k in ("a", "b", "c"):
        total += inner(d, k) * 2
    return total
"""
g = {}
load(src, "<tb>", g)
for name in ("inner", "outer"):
    g[name] = tiered(g[name])
for d in ({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": None}, {"a": 1}):
    try:
        print(g["outer"](d))
    except Exception:
        print(traceback.format_exc())
ours(g["inner"], g["outer"])
''')


def test_frame_builtins_through_other_names_and_future_flags():
    same_as_cpython(r'''
from __future__ import annotations
import sys
from tiered import tiered
_globals = globals
_locals = locals
marker = "module"

@tiered
def reads(a):
    b = a + 1
    g = _globals()["marker"]
    l = sorted(_locals())
    code = "def f(x: undefined_name) -> int: pass\nr = f.__annotations__"
    ns = {}
    exec(code, ns)
    ev = eval("a + b")
    return g, l, ns["r"], ev, sorted(vars()), dir()[:3]

for _ in range(3):
    print(reads(1))
ours(reads)
''')


def test_library_code_that_reads_its_callers_module():
    same_as_cpython(r'''
import enum, pickle, typing
from tiered import tiered

@tiered
def make():
    UserId = typing.NewType("UserId", int)
    Color = enum.Enum("Color", "RED GREEN")
    Point = typing.NamedTuple("Point", [("x", int), ("y", int)])
    return UserId.__module__, Color.__module__, Point.__module__

for _ in range(3):
    print(make())
ours(make)
''')


def test_zero_arg_super_and_class_cell():
    same_as_cpython(r'''
from tiered import tiered

class Base:
    def hello(self, n):
        return ["base", n]

class Child(Base):
    @tiered
    def hello(self, n):
        r = super().hello(n)
        r.append(__class__.__name__)
        return r

class Grand(Child):
    @tiered
    def hello(self, n):
        return super().hello(n * 2) + ["grand"]

for _ in range(3):
    print(Child().hello(1), Grand().hello(2))
ours(Child.hello, Grand.hello)
''')


def test_tiered_functions_answer_as_functions():
    # Identity (issue 10): code that checks isinstance(f, FunctionType) or
    # inspect.isfunction (doctest's finder, dataclass-style walks) treats a tiered function
    # as the function it wraps.
    same_as_cpython(r'''
import doctest, inspect, os, sys, tempfile, types
from tiered import tiered
src = """
def double(x):
    \"\"\"
    >>> double(21)
    42
    \"\"\"
    return x * 2

class K:
    def tripled(self, x):
        \"\"\"
        >>> K().tripled(2)
        6
        \"\"\"
        return x * 3
"""
d = tempfile.mkdtemp()
with open(os.path.join(d, "modx.py"), "w") as fh:
    fh.write(src)
sys.path.insert(0, d)
import modx
modx.double = tiered(modx.double)
modx.K.tripled = tiered(modx.K.tripled)
print(isinstance(modx.double, types.FunctionType), inspect.isfunction(modx.double),
      inspect.isfunction(modx.K.tripled), inspect.ismethod(modx.K().tripled))
tests = doctest.DocTestFinder().find(modx)
print(sorted((t.name, t.lineno, len(t.examples)) for t in tests))
runner = doctest.DocTestRunner()
for t in sorted(tests, key=lambda t: t.name):
    runner.run(t)
print(runner.summarize(verbose=False))
ours(modx.double, modx.K.tripled)
''')


PY_SPY_TARGET = r'''
import sys, time
from tiered import tiered, stats

@tiered
def busy(seconds):
    total = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i in range(2000):
            total += i * i
    return total

busy(0.05)
busy(0.05)
s = stats(busy)
print("ready", s["calls"] == 2 and s["fallback_calls"] == 0, flush=True)
busy(60)
'''


def test_py_spy_dump_finds_the_tiered_function_and_its_line(tmp_path):
    """A sampling profiler reading the process from outside (py-spy walks the thread's
    frame chain in memory, as it does for CPython) sees the tiered function at the line
    its native loop is running."""
    import os
    import shutil
    import subprocess
    import sys

    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    assert spy, "py-spy is a test dependency (pip install '.[test]')"
    script = tmp_path / "busy.py"
    script.write_text(PY_SPY_TARGET)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().split() == ["ready", "True"]
        dumps = []
        for _ in range(5):
            out = subprocess.run([spy, "dump", "--pid", str(p.pid)], capture_output=True,
                                 text=True, timeout=60)
            dumps.append(out.stdout + out.stderr)
            if "busy (busy.py:1" in out.stdout:
                break
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    # The loop's lines are 9-11 (the while test, the for, the body); line 18 calls it.
    lines = {f"busy (busy.py:{n})" for n in (9, 10, 11)}
    assert any(l in d for d in dumps for l in lines), "\n---\n".join(dumps)
    assert any("<module> (busy.py:18)" in d for d in dumps), "\n---\n".join(dumps)


def test_a_frame_object_that_outlives_its_call_keeps_the_final_locals():
    # sys._getframe() kept past the return, and a traceback's frame after the handler:
    # their f_locals are the locals as the function ended (CPython's frame object takes
    # the frame over then), not as they were when the object was made.
    same_as_cpython(r'''
import sys
from tiered import tiered

class Big:
    def __init__(self, n):
        self.n = n
    def __repr__(self):
        return f"Big({self.n})"

@tiered
def keep(n):
    x = Big(n)
    fr = sys._getframe()
    x = Big(n + 1)
    y = [x, n]
    return fr

@tiered
def caught(n):
    x = Big(n)
    try:
        raise KeyError(n)
    except KeyError as e:
        tb = e.__traceback__
    x = Big(-n)
    z = n * 2
    return tb

for i in range(6):
    f = keep(i)
    print(sorted((k, repr(v)) for k, v in f.f_locals.items() if k != "fr"), f.f_lineno)
    t = caught(i)
    print(sorted((k, repr(v)) for k, v in t.tb_frame.f_locals.items() if k != "tb"),
          t.tb_lineno, t.tb_frame.f_lineno)
ours(keep, caught)
''')
