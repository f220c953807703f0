"""Threads and process exits with tiered code running (issue 9): each program runs under
plain CPython and under tiered in fresh interpreters, and must give the same exit status,
stdout and stderr; ``ours(f)`` asserts the tiered functions really ran in our tiers."""

import sys

import pytest

from harness import same_as_cpython

# Daemon threads inside tiered code when the interpreter exits: sleeping in a C call,
# spinning in pure tiered code (waiting for the GIL at exit), blocked on a lock, deep in
# nested tiered calls, and one that ends itself with pthread_exit through ctypes. CPython
# ends them with pthread_exit(); a forced unwind through our frames used to abort.
DAEMONS = r"""
import threading, time, ctypes
from tiered import tiered

@tiered
def sleeper():
    n = 0
    while True:
        n += 1
        time.sleep(0.001)

@tiered
def spinner(box):
    i = 0
    while True:
        i += 1
        box[0] = i

@tiered
def waiter(lock):
    while True:
        lock.acquire(timeout=0.01)

@tiered
def nested(k):
    if k == 0:
        return sleeper()
    return [nested(k - 1)]

@tiered
def exits_itself(started):
    started.set()
    ctypes.CDLL(None).pthread_exit(None)

lock = threading.Lock()
lock.acquire()
box = [0]
started = threading.Event()
for f, a in [(sleeper, ()), (spinner, (box,)), (waiter, (lock,)), (nested, (5,)),
             (exits_itself, (started,))]:
    for _ in range(2):
        threading.Thread(target=f, args=a, daemon=True).start()
started.wait()
deadline = time.time() + 5
while box[0] < 1000 and time.time() < deadline:
    time.sleep(0.01)
print("exiting", box[0] >= 1000)
"""


@pytest.mark.parametrize("round", range(3))
def test_daemon_threads_in_tiered_code_at_exit(round):
    same_as_cpython(DAEMONS)


def test_daemon_thread_at_exit_with_atexit_and_finalizers():
    # The main thread runs tiered code from atexit and from __del__ during finalization
    # while daemon threads are still inside tiered loops.
    same_as_cpython(r"""
import atexit, threading, time
from tiered import tiered

@tiered
def work(n):
    s = 0
    for i in range(n):
        s += i * i
    return s

@tiered
def loop_forever(out):
    while True:
        out.append(work(50))
        if len(out) > 100:
            out.clear()

class Noisy:
    def __del__(self):
        print("del", work(10))

keep = Noisy()
atexit.register(lambda: print("atexit", work(100)))
out = []
for _ in range(3):
    threading.Thread(target=loop_forever, args=(out,), daemon=True).start()
time.sleep(0.1)
ours(work)
print("main done")
""")


def test_os_exit_from_tiered_code():
    # os._exit skips atexit handlers and does not flush stdio buffers: the same output.
    same_as_cpython(r"""
import os, sys, atexit
from tiered import tiered

atexit.register(lambda: print("atexit must not run"))

@tiered
def leave(code):
    sys.stdout.write("written, flushed\n")
    sys.stdout.flush()
    sys.stdout.write("written, never flushed\n")
    for i in range(1000):
        if i == 500:
            os._exit(code)
    return "unreachable"

leave(3)
""")


def test_os_exit_from_a_thread_in_tiered_code():
    same_as_cpython(r"""
import os, sys, threading, time
from tiered import tiered

@tiered
def leave(code):
    print("thread", flush=True)
    os._exit(code)

@tiered
def spin():
    while True:
        time.sleep(0.001)

threading.Thread(target=spin, daemon=True).start()
t = threading.Thread(target=leave, args=(7,))
t.start()
t.join()
print("never printed")
""")


def test_sys_exit_from_tiered_code():
    same_as_cpython(r"""
import sys, atexit, threading
from tiered import tiered

atexit.register(lambda: print("atexit runs"))

@tiered
def in_thread():
    sys.exit(9)          # ends the thread silently (threading ignores SystemExit)

@tiered
def finish(code):
    try:
        for i in range(10):
            if i == 3:
                sys.exit(code)
    finally:
        print("finally runs")

t = threading.Thread(target=in_thread)
t.start()
t.join()
ours(in_thread)
print("thread done")
finish(5)
""")


def test_threading_excepthook_sees_tiered_frames():
    # An exception escaping a thread that runs tiered code reaches threading.excepthook
    # with the same type, message, thread name, and the tiered function's file and line.
    same_as_cpython(r"""
import threading, traceback
from tiered import tiered

@tiered
def inner(x):
    return 10 // x

@tiered
def target(x):
    total = 0
    for i in range(3):
        total += inner(x - i)
    return total

def hook(args):
    frames = [(f.name, f.lineno) for f in traceback.extract_tb(args.exc_traceback)]
    print(args.exc_type.__name__, args.exc_value, args.thread.name, frames)

threading.excepthook = hook
t = threading.Thread(target=target, args=(2,), name="worker")
t.start()
t.join()
ours(target, inner)
""")


def test_fast_switching_threads_share_tiered_functions():
    # Four threads run the same tiered functions with the GIL switched every microsecond;
    # every result is deterministic, and matches CPython's.
    same_as_cpython(r"""
import sys, threading
from tiered import tiered

sys.setswitchinterval(1e-6)

class Acc:
    def __init__(self):
        self.total = 0
        self.items = []

@tiered
def step(acc, i):
    acc.total += i * i
    if i % 7 == 0:
        acc.items.append(i)
    return acc.total

@tiered
def work(acc, n, shared, lock):
    s = 0.0
    for i in range(n):
        step(acc, i)
        s += i / 3.0
        with lock:
            shared[i % 10] = shared.get(i % 10, 0) + 1
    return s

results = {}
shared = {}
lock = threading.Lock()
def run(k):
    acc = Acc()
    results[k] = (work(acc, 20000 + k, shared, lock), acc.total, len(acc.items))

threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(results.items()))
print(sorted(shared.items()))
ours(work, step)
""", timeout=120)


def test_atexit_handlers_call_tiered_code():
    same_as_cpython(r"""
import atexit
from tiered import tiered

@tiered
def fmt(xs):
    return ", ".join(f"{x:.2f}" for x in xs)

@tiered
def total(xs):
    s = 0
    for x in xs:
        s += x
    return s

data = [1.5, 2.25, 3.125]
atexit.register(lambda: print("second", total(data)))
atexit.register(lambda: print("first", fmt(data)))
print("main", total(data))
ours(total)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_fork_while_threads_run_tiered_code():
    # The child of a fork taken while other threads are inside tiered code (native loops
    # and tier 1) runs the same tiered functions; the parent carries on.
    same_as_cpython(r"""
import os, threading, time
from tiered import tiered

@tiered
def spin(stop, box):
    i = 0
    while not stop:
        i += 1
        if i % 1000 == 0:
            box[0] += 1
            time.sleep(0)
    return i

@tiered
def compute(n):
    d = {}
    for i in range(n):
        d[i % 17] = d.get(i % 17, 0) + i
    return sorted(d.items())[:3]

stop = []
box = [0]
threads = [threading.Thread(target=spin, args=(stop, box)) for _ in range(2)]
for t in threads:
    t.start()
while box[0] < 5:
    time.sleep(0.001)
print("before", compute(1000), flush=True)
pid = os.fork()
if pid == 0:
    print("child", compute(2000), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child status", status)
stop.append(1)
for t in threads:
    t.join()
print("parent", compute(3000))
ours(spin, compute)
""")
