"""Tiered calls nest on the C stack (CPython 3.11's Python-to-Python calls do not): with the
recursion limit raised far beyond what the thread's stack holds, deep recursion goes on on
segments of stack of our own (`stack::grow`) as CPython's goes on, and ends in CPython's
RecursionError at the limit, never in a crash, on the main thread and on threads with
small stacks."""

from harness import run_python, same_as_cpython

PROGRAM = r"""
import sys, threading
from tiered import tiered, stats
sys.setrecursionlimit(200000)

@tiered
def down(n):
    if n == 0:
        return 0
    return down(n - 1) + 1

assert down(2000) == 2000
try:
    down(10**6)
except RecursionError as e:
    print("main:", e)

def worker():
    try:
        down(10**6)
    except RecursionError as e:
        print("thread:", e)

threading.stack_size(512 * 1024)
t = threading.Thread(target=worker)
t.start()
t.join()
# Threads one after another, with different stack sizes: a new thread's state may reuse
# a dead one's address, and must not inherit its stack limit.
for size in (8 * 1024 * 1024, 256 * 1024, 16 * 1024 * 1024, 384 * 1024):
    threading.stack_size(size)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
assert stats(down)["fallback_calls"] == 0
print("done")
"""


def test_deep_recursion_raises_instead_of_crashing():
    r = run_python(PROGRAM, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "main: maximum recursion depth exceeded" in r.stdout
    assert r.stdout.count("thread: maximum recursion depth exceeded") == 5
    assert r.stdout.rstrip().endswith("done")


def test_recursion_within_a_raised_limit_runs_as_in_cpython_on_every_tier():
    # 3,500 levels (limit 4,000), where CPython needs no C stack: tier 1 nests about
    # 1.8 KB of it per level (2,100 levels fit an 8 MiB stack when its loop's frame kept
    # every op's temporaries, and the fuzzer's limit of 3,000 saw a RecursionError CPython
    # did not raise), native code about 0.5 KB. (Past the stack, segments: below.)
    same_as_cpython(r"""
import sys
from tiered import tiered
sys.setrecursionlimit(4000)

@tiered
def down(n):
    total = 0
    for i in range(2):
        total += i
    if n == 0:
        return total
    return down(n - 1) + 1

print(down(3500))
ours(down)
""")


def test_comparisons_in_the_frame_at_the_recursion_limit_raise_where_cpython_raises():
    # In the frame at the recursion limit, CPython's COMPARE_OP raises RecursionError
    # "... in comparison" before comparing, unless 3.11 specialized it: a conditional
    # jump takes the result, and the operands are two floats, two one-digit ints, or two
    # strs compared by == or !=. Our quickened and native compares never check, so that
    # frame runs in tier 1, which checks as CPython does; before, the error came one
    # frame later, at the next call (no " in comparison"), with `depth` one deeper. Each
    # function is made anew for each pair of operand types: CPython's first call after a
    # site's types change still compares as before its specializer catches up, which is
    # not a state worth copying.
    same_as_cpython(r"""
from tiered import tiered

SOURCE = '''
depth = 0

def stored(n, a, b):
    global depth
    depth = n
    x = a < b
    return stored(n + 1, a, b) + x

def branch_lt(n, a, b):
    global depth
    depth = n
    if a < b:
        n += 0
    return branch_lt(n + 1, a, b)

def branch_eq(n, a, b):
    global depth
    depth = n
    if a == b:
        n += 0
    return branch_eq(n + 1, a, b)

def loops(n, a, b):
    global depth
    depth = n
    i = 0
    while i < 300:
        i += 1
    x = i == a
    return loops(n + 1, a, b) + x
'''

for name in ("stored", "branch_lt", "branch_eq", "loops"):
    for a, b in ((1, 2), (2**40, 3), (1.5, 2.5), (1, 2.5), ("a", "b"), ((1,), (2,))):
        ns = {}
        exec(SOURCE, ns)
        f = ns[name] = tiered(ns[name])
        for _ in range(3):
            try:
                f(0, a, b)
            except RecursionError as e:
                print(name, repr(a), repr(b), e, ns["depth"])
        ours(f)
""", timeout=120)


def test_recursion_past_the_threads_stack_runs_as_in_cpython():
    # 40,000 levels under a limit of 41,000: far past what an 8 MiB stack holds on any path
    # (tier 1 nests 1.9 to 3.5 KB of it per level, native code about 0.5 KB), so the calls
    # go on through several segments, with the limit's errors, tracebacks, exceptions and
    # frames as CPython's. `loops` is the fuzzer's shape (seed 12406): CPython calls
    # range() without a recursion check, and range() compares its bounds in C, so the frame
    # at the limit raises "... in comparison" there; tier 1 used to raise at the call
    # before, about 2,300 levels deep under a limit of 3,000, its stack spent.
    same_as_cpython(r"""
import sys, traceback
from tiered import tiered
sys.setrecursionlimit(41000)

@tiered
def down(n):
    total = 0
    for i in range(2):
        total += i
    if n == 0:
        return total
    return down(n - 1) + 1

depth = 0

@tiered
def loops(p):
    global depth
    depth += 1
    for i in range(1, 3):
        for j in range(1):
            v = helper(i)
    p -= p % (p or 1)

helper = loops

@tiered
def raising(n):
    if n == 0:
        raise ValueError("from the bottom")
    try:
        return raising(n - 1)
    except ValueError as e:
        e.args += (n,) if n % 10000 == 0 else ()
        raise

@tiered
def reader(n):
    marker = n * 2
    if n == 0:
        f = sys._getframe()
        seen = total = 0
        while f is not None:
            loc = f.f_locals
            if f.f_code is reader.__code__:
                seen += 1
                total += loc["marker"]
            f = f.f_back
        return seen, total
    return reader(n - 1)

print(down(40000))
for limit in (3000, 41000):
    sys.setrecursionlimit(limit)
    for k in range(2):
        depth = 0
        try:
            loops(5)
        except RecursionError as e:
            print(limit, depth, e, len(traceback.extract_tb(e.__traceback__)))
try:
    raising(35000)
except ValueError as e:
    print(e.args)
print(reader(35000))
ours(down, loops, raising, reader)
""", timeout=300)


def test_threads_with_small_stacks_recurse_as_in_cpython():
    same_as_cpython(r"""
import sys, threading
from tiered import tiered
sys.setrecursionlimit(30000)

@tiered
def down(n):
    if n == 0:
        return 0
    return down(n - 1) + 1

out = []
def body():
    out.append(down(25000))
    try:
        down(10**6)
    except RecursionError as e:
        out.append(str(e))

for size in (256 * 1024, 512 * 1024, 0):
    threading.stack_size(size)
    t = threading.Thread(target=body)
    t.start()
    t.join()
threading.stack_size(0)
print(out)
ours(down)
""", timeout=300)


def test_daemon_threads_deep_on_segments_at_exit():
    # A daemon thread that CPython ends at exit (pthread_exit's forced unwind) while it
    # runs on a segment: the segment's own unwind buffer (`thread_exit`) lands the unwind
    # on the segment's bottom before it reaches a Rust frame, as the thread's own buffer
    # does for its stack.
    same_as_cpython(r"""
import sys, threading, time
from tiered import tiered
sys.setrecursionlimit(100000)
ready = threading.Event()

@tiered
def deep(n, block):
    if n == 0:
        ready.set()
        while block:
            time.sleep(0.001)
        return 0
    return deep(n - 1, block)

deep(100, False)
ours(deep)
for stack in (0, 512 * 1024):
    threading.stack_size(stack)
    threading.Thread(target=deep, args=(60000, True), daemon=True).start()
    print(ready.wait(120))
    ready.clear()
print("exiting")
""", timeout=300)


def test_generators_nested_past_the_threads_stack_run_as_in_cpython():
    # Each step of a generator nested in another nests our step on the C stack (as
    # CPython's own steps do, in C): 20,000 levels of `yield from` and 6,000 of `for`
    # over a recursive generator take segments of stack on every path; the 6,000 used
    # to raise RecursionError. (CPython's own steps nest on the C stack: 60,000 levels
    # crash it.)
    same_as_cpython(r"""
import sys
from tiered import tiered
sys.setrecursionlimit(50000)

@tiered
def walk(n):
    if n:
        yield from walk(n - 1)
    else:
        yield 1
        yield 2

@tiered
def nest(n):
    if n:
        for x in nest(n - 1):
            yield x + 1
    else:
        yield 0

print(sum(walk(20000)), list(nest(6000)))
sys.setrecursionlimit(5000)
try:
    sum(walk(6000))
except RecursionError as e:
    print(e)
ours(walk, nest)
""", timeout=300)
