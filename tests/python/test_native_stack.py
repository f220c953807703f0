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
