"""Tiered calls nest on the C stack (CPython 3.11's Python-to-Python calls do not): with the
recursion limit raised far beyond what the stack holds, deep recursion must end in
RecursionError, never in a crash, on the main thread and on a thread with a small stack."""

from harness import run_python, same_as_cpython

PROGRAM = r"""
import sys, threading
from tiered import tiered, stats
sys.setrecursionlimit(10**6)

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
    # 1.8 KB of it per level (4,400 levels on an 8 MiB stack; 2,100 when its loop's frame
    # kept every op's temporaries, and the fuzzer's limit of 3,000 saw a RecursionError
    # CPython did not raise), native code about 0.5 KB.
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
