"""Trace and profile functions switched on while tiered code runs (issue 9): from that
moment the running tiered activations give the events CPython's eval loop gives (c_call,
c_return, c_exception for builtins they call, return when they exit), in tier 1 and after
native code leaves for it. Each program runs under plain CPython and tiered, in fresh
interpreters, with the same output; ``ours`` asserts the functions ran in our tiers."""

import os

from harness import same_as_cpython

PROFILE_EVENTS = r"""
import sys
from tiered import tiered
events = []
def prof(frame, event, arg):
    name = getattr(arg, "__name__", None) if event.startswith("c_") else None
    events.append((event, frame.f_code.co_name, name))
"""


def test_setprofile_inside_a_callee_reaches_every_caller():
    same_as_cpython(PROFILE_EVENTS + r'''
@tiered
def setp(p):
    sys.setprofile(p)

@tiered
def h(y):
    return y * 2

@tiered
def mid(x, p):
    setp(p)
    y = h(x)
    try:
        int("nope")
    except ValueError:
        pass
    return y + len([y])

@tiered
def top(x, p):
    return mid(x, p) + abs(-x)

for i in range(40):          # warm: native code, direct calls
    top(i, None)
print(top(3, prof))
sys.setprofile(None)
for e in events:
    print(e)
# h, called with the hook on, runs in CPython (so the hook sees it), as designed.
ours(setp, mid, top)
''')


def test_setprofile_inside_a_hot_loop():
    same_as_cpython(PROFILE_EVENTS + r'''
@tiered
def loop(n, p):
    total = 0
    for i in range(n):
        if i == n // 2:
            sys.setprofile(p)
        total += len(str(i))
    return total

for _ in range(30):
    loop(2000, None)
print(loop(2000, prof))
sys.setprofile(None)
print(len(events), events[:6], events[-4:])
ours(loop)
''')


def test_setprofile_inside_a_property_getter_in_a_hot_loop():
    # No call op: the hook comes on inside an attribute load (a property a plain class
    # defines, so CPython runs its getter). The loop's next eval breaker check sees the
    # thread's `use_tracing` and leaves for tier 1, which gives the builtins' events.
    same_as_cpython(PROFILE_EVENTS + r'''
class Switch:
    def __init__(self):
        self.p = None
    @property
    def on(self):
        sys.setprofile(self.p)
        return 1

@tiered
def loop(n, s):
    total = 0
    for i in range(n):
        if i == n // 2:
            total += s.on
        total += len(str(i))
    return total

s = Switch()
for _ in range(30):
    loop(2000, s)
s.p = prof
print(loop(2000, s))
sys.setprofile(None)
print(len(events), events[:6], events[-4:])
ours(loop)
''')


def test_cprofile_enabled_and_disabled_inside_tiered_code():
    same_as_cpython(r'''
import cProfile
from tiered import tiered

@tiered
def helper(i):
    return str(i) * 2

@tiered
def work(n):
    pr = cProfile.Profile()
    pr.enable()
    s = 0
    for i in range(n):
        s += len(helper(i))
    pr.disable()
    return pr, s

for _ in range(30):
    work(100)
pr, s = work(100)
print(s)
rows = sorted((getattr(e.code, "co_name", str(e.code)), e.callcount) for e in pr.getstats())
for r in rows:
    print(r)
ours(work)  # helper is called with the profiler on: CPython runs it
''')


def test_settrace_inside_a_callee_gives_return_events_to_frames_it_traces():
    # A trace function set mid-call sees only frames whose f_trace is set (new calls, and
    # frames a debugger marks); the tiered caller's return goes to the global hook, which
    # ignores a frame without f_trace, as in CPython.
    same_as_cpython(r'''
import sys
from tiered import tiered
seen = []
def tr(frame, event, arg):
    seen.append((event, frame.f_code.co_name))
    return tr

@tiered
def sett(t):
    sys.settrace(t)
    f = sys._getframe(1)
    f.f_trace = t          # as pdb.set_trace marks its caller

@tiered
def h(y):
    z = y * 2
    return z

@tiered
def g(x, t):
    sett(t)
    return h(x) + 1

for i in range(40):
    g(i, None)
print(g(3, tr))
sys.settrace(None)
print([s for s in seen if s[0] != "line"])
ours(sett, g)
''')


def test_a_debugger_marking_a_running_tiered_frame_gets_its_lines_and_locals():
    # What pdb.set_trace() does from inside tiered code: settrace, and f_trace set on the
    # caller's frame; from then on that frame reports each new line (with its locals, as
    # the debugger would print them), backward jumps, exceptions and its return.
    same_as_cpython(r"""
import sys
from tiered import tiered
seen = []
def local_tr(frame, event, arg):
    loc = {k: v for k, v in frame.f_locals.items() if k not in ("t",)}
    extra = arg[0].__name__ if event == "exception" else None
    seen.append((event, frame.f_code.co_name, frame.f_lineno - frame.f_code.co_firstlineno,
                 sorted(loc.items()), extra))
    return local_tr
def global_tr(frame, event, arg):
    return local_tr

@tiered
def set_trace(t):
    sys.settrace(t)
    sys._getframe(1).f_trace = local_tr

@tiered
def work(n, t):
    total = 0
    set_trace(t)
    for i in range(n):
        total += i
        if i == 1:
            try:
                {}[i]
            except KeyError:
                total -= 100
    return total

for i in range(40):
    work(3, None)
print(work(3, global_tr))
sys.settrace(None)
for s in seen:
    print(s)
ours(work)
""")


def test_breakpoint_inside_tiered_code_steps_like_cpython(tmp_path):
    # pdb from inside a tiered function (warm: native code): it stops at the next line,
    # steps through the loop, prints locals, continues.
    import os
    import subprocess
    import sys

    src = tmp_path / "prog.py"
    src.write_text(
        "from tiered import tiered, stats\n"
        "@tiered\n"
        "def work(n):\n"
        "    total = 0\n"
        "    for i in range(n):\n"
        "        total += i\n"
        "        if i == 2 and n == 4:\n"
        "            breakpoint()\n"
        "        total *= 2\n"
        "    return total\n"
        "for _ in range(50):\n"
        "    work(5)\n"
        "print(work(4))\n"
        "import os\n"
        "if os.environ.get('TIERED_DISABLE') != '1':\n"
        "    s = stats(work)\n"
        "    assert s['fallback_calls'] == 0 and s['interp_calls'] + s['native_calls'] > 0, s\n"
    )
    commands = "p total, i\nn\np total\nn\nn\np total\nc\n"
    env = dict(os.environ)
    env.pop("PYTHONBREAKPOINT", None)

    def run(disable):
        e = dict(env)
        if disable:
            e["TIERED_DISABLE"] = "1"
        else:
            e.pop("TIERED_DISABLE", None)
        return subprocess.run([sys.executable, str(src)], input=commands, capture_output=True,
                              text=True, env=e, timeout=60)

    plain, got = run(True), run(False)
    assert (got.returncode, got.stdout) == (plain.returncode, plain.stdout), (plain, got)
    assert "(Pdb) (4, 2)" in got.stdout


def test_a_direct_native_callee_that_turns_a_profiler_on_makes_its_caller_report():
    # Same argument types as in warm-up, so the call is a direct native call (or the
    # callee is emitted inline): no eval breaker check follows it; the callee's exit must
    # tell the caller, whose next builtin call is reported.
    same_as_cpython(PROFILE_EVENTS + r'''
@tiered
def setp(on):
    if on:
        sys.setprofile(prof)
    return 0

@tiered
def mid(on):
    setp(on)
    return len("ab") + abs(-1)

@tiered
def nested(on):
    return mid(on) + 1

for _ in range(40):
    nested(False)
print(nested(True))
sys.setprofile(None)
for e in events:
    print(e)
ours(setp, mid, nested)
''')
