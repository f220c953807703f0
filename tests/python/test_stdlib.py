"""CPython's own test suites, run with the module's pure-Python functions
replaced by their tiered versions (DESIGN.md §6).

`test.test_heapq` builds its pure-Python module with
`import_fresh_module('heapq', blocked=['_heapq'])` (kept as `py_heapq`) and
`test.test_bisect` likewise (`py_bisect`); the test classes reach the functions
through `self.module.<name>`, and the functions reach each other through the
fresh module's globals. So replacing the attributes of that fresh module object
makes both the tests and the internal calls go through tiered wrappers.
"""

import importlib
import io
import inspect
import types
import unittest

import pytest

from tiered import stats, tiered

# module name -> (CPython test module, attribute holding the fresh pure-Python module)
SUITES = {
    "heapq": ("test.test_heapq", "py_heapq"),
    "bisect": ("test.test_bisect", "py_bisect"),
}

_GEN_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _fresh_module(modname):
    test_mod = importlib.import_module(SUITES[modname][0])
    return test_mod, getattr(test_mod, SUITES[modname][1])


def _pure_functions(mod):
    """name -> function for every Python function defined in `mod` itself
    (aliases such as bisect.bisect = bisect_right included)."""
    out = {}
    for name, val in vars(mod).items():
        if (isinstance(val, types.FunctionType) and val.__module__ == mod.__name__
                and val.__code__.co_filename == mod.__file__):
            out[name] = val
    return out


_RUNS = {}


def _run_suite(modname):
    """Patch, run the whole CPython test module through unittest, restore.
    Cached: the suite runs once per pytest session."""
    if modname in _RUNS:
        return _RUNS[modname]
    test_mod, mod = _fresh_module(modname)
    originals = _pure_functions(mod)
    assert originals, f"no pure-Python functions found in {mod!r}"
    wrappers_by_id = {}
    wrappers = {}
    for name, fn in originals.items():
        w = wrappers_by_id.setdefault(id(fn), tiered(fn))  # aliases share one wrapper
        wrappers[name] = w
    try:
        for name, w in wrappers.items():
            setattr(mod, name, w)
        suite = unittest.defaultTestLoader.loadTestsFromModule(test_mod)
        stream = io.StringIO()
        result = unittest.TextTestRunner(stream=stream, verbosity=2, warnings="error").run(suite)
    finally:
        for name, fn in originals.items():
            setattr(mod, name, fn)
    _RUNS[modname] = (result, stream.getvalue(), originals, wrappers)
    return _RUNS[modname]


def _function_ids():
    ids = []
    for modname in SUITES:
        _, mod = _fresh_module(modname)
        for name, fn in sorted(_pure_functions(mod).items()):
            if name != fn.__name__:
                continue  # an alias (bisect.bisect is bisect_right): same wrapper, same stats
            marks = [pytest.mark.real_tiering] if fn.__code__.co_flags & _GEN_FLAGS else []
            ids.append(pytest.param(modname, name, id=f"{modname}.{name}", marks=marks))
    return ids


@pytest.mark.parametrize("modname", list(SUITES))
def test_cpython_suite_passes_with_tiered_functions(modname):
    result, output, originals, wrappers = _run_suite(modname)
    assert result.testsRun > 10, output
    assert result.wasSuccessful(), output
    # the Python implementation really was exercised
    assert any(stats(w)["calls"] > 0 for w in wrappers.values())


@pytest.mark.parametrize("modname,name", _function_ids())
def test_cpython_suite_ran_function_in_tier1(modname, name):
    result, output, originals, wrappers = _run_suite(modname)
    fn, w = originals[name], wrappers[name]
    s = stats(w)
    assert s["calls"] > 0, f"{modname}.{name} was never called by the CPython suite: {s}"
    assert s["interp_calls"] + s["native_calls"] > 0, f"{modname}.{name}: {s}"
    assert s["fallback_calls"] == 0, f"{modname}.{name}: {s}"
    assert s["unsupported"] == [], f"{modname}.{name}: {s}"
    if fn.__code__.co_flags & _GEN_FLAGS:
        # generators (heapq.merge): their bodies ran in our tiers too
        assert s["resumes"] > 0 and s["cpython_resumes"] == 0, f"{modname}.{name}: {s}"


# More of CPython's own suites, each in a fresh interpreter (the functions of the module
# under test are replaced by tiered ones for the whole process): pure-Python modules
# whose tests are quick. Tier 2 comes in after two calls, so most calls run native code.
MORE_SUITES = [
    ("textwrap", "test.test_textwrap"),
    ("difflib", "test.test_difflib"),
    ("colorsys", "test.test_colorsys"),
    ("shlex", "test.test_shlex"),
    ("fractions", "test.test_fractions"),
    ("ipaddress", "test.test_ipaddress"),
    ("pprint", "test.test_pprint"),
    ("calendar", "test.test_calendar"),
    ("statistics", "test.test_statistics"),
]

# Suites whose tests read frames, build classes and call functions by identity (issue 10):
# typing and enum take `__module__` from the caller's frame, doctest's finder walks
# functions, timeit generates code and reads globals through an alias, dataclasses
# execs generated methods, contextlib's tests check tracebacks. Slower than the rest
# (about a minute and a half together), so they run on the default-thresholds path only (each suite
# program sets its own tier-up threshold anyway).
FRAME_SUITES = [
    ("typing", "test.test_typing"),
    ("enum", "test.test_enum"),
    ("dataclasses", "test.test_dataclasses"),
    ("doctest", "test.test_doctest"),
    ("timeit", "test.test_timeit"),
    ("contextlib", "test.test_contextlib"),
    # asyncio's own modules, each under its tests (about 30 s together): event loops,
    # futures, tasks, locks, queues and streams, with every def of the module tiered, its
    # coroutines and generators included (resumed in our tiers: checked below).
    ("asyncio.base_events", "test.test_asyncio.test_base_events"),
    ("asyncio.events", "test.test_asyncio.test_events"),
    ("asyncio.futures", "test.test_asyncio.test_futures"),
    ("asyncio.tasks", "test.test_asyncio.test_tasks"),
    ("asyncio.locks", "test.test_asyncio.test_locks"),
    ("asyncio.queues", "test.test_asyncio.test_queues"),
    ("asyncio.streams", "test.test_asyncio.test_streams"),
]

# Every function of the module and of its classes (inside staticmethod and classmethod
# too) gets one wrapper, shared by its aliases, as decorating each def in the source would
# give (enum makes `Flag.__new__` an alias of `Enum.__new__`'s function, and compares
# them by identity).
_SUITE_PROGRAM = r"""
import sys, types, unittest, importlib
from tiered import tiered, stats
modname, testname = sys.argv[1], sys.argv[2]
mod = importlib.import_module(modname)
wrapped = {}
def wrap(f):
    if id(f) not in wrapped:
        wrapped[id(f)] = (f, tiered(f))
    return wrapped[id(f)][1]
def ours(f):
    return type(f) is types.FunctionType and f.__module__ == modname
for k, v in list(vars(mod).items()):
    if ours(v):
        setattr(mod, k, wrap(v))
    elif isinstance(v, type) and v.__module__ == modname:
        for kk, vv in list(vars(v).items()):
            if ours(vv):
                setattr(v, kk, wrap(vv))
            elif isinstance(vv, (staticmethod, classmethod)) and ours(vv.__func__):
                setattr(v, kk, type(vv)(wrap(vv.__func__)))
t = importlib.import_module(testname)
suite = unittest.defaultTestLoader.loadTestsFromModule(t)
r = unittest.TextTestRunner(verbosity=0, stream=sys.stderr).run(suite)
s = [stats(w) for _, w in wrapped.values()]
print(r.testsRun, len(r.failures) + len(r.errors), sum(x["interp_calls"] + x["native_calls"] for x in s),
      sum(x["resumes"] for x in s), sum(x["cpython_resumes"] for x in s))
"""


def _frame_suites():
    import os

    on = os.environ.get("TIERED_PYTEST_DEFAULT") == "1"
    mark = [] if on else [pytest.mark.skip(reason="runs on the default-thresholds path")]
    return [pytest.param(m, t, marks=mark) for m, t in FRAME_SUITES]


@pytest.mark.parametrize("modname,testname", MORE_SUITES + _frame_suites())
def test_cpython_suite_with_tiered_module(modname, testname):
    from harness import run_python

    env = {"TIERED_JIT_THRESHOLD": "2"}
    r = run_python(_SUITE_PROGRAM.replace("sys.argv[1], sys.argv[2]", f"{modname!r}, {testname!r}"), env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ran, bad, ours, resumes, cpython_resumes = map(int, r.stdout.split())
    assert ran > 0 and bad == 0, r.stderr[-3000:]
    if modname.startswith("asyncio."):
        # Their coroutines ran in our tiers (a test that sets a trace function resumes
        # in CPython's loop meanwhile).
        assert resumes > 0 and resumes >= cpython_resumes, (resumes, cpython_resumes)
    assert ours > 0, "no call of the module's functions ran in tiered's tiers"
