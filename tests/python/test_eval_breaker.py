"""The eval breaker (issue 9): tiered code checks it where CPython 3.11's eval loop does
(function entry, back edges, after calls), so signal handlers, pending calls, exceptions
sent from other threads and GIL drop requests are handled at the same points. Each program
runs under CPython and under tiered (same status and output); ``ours(f)`` asserts the
function ran in our tiers."""

from harness import same_as_cpython


def test_keyboard_interrupt_in_tight_loops_is_caught_by_the_function():
    # The handler raises at the loop's back edge; the function's own `except` catches it
    # (the check has the back edge's handler), in `while` and `for` loops.
    same_as_cpython(r"""
import signal
from tiered import tiered

def handler(signum, frame):
    raise KeyboardInterrupt("from handler")

signal.signal(signal.SIGALRM, handler)

@tiered
def spin_while():
    n = 0
    try:
        while True:
            n += 1
    except KeyboardInterrupt as e:
        return "while", str(e), n > 0

@tiered
def spin_for():
    n = 0
    try:
        for i in range(10**15):
            n = i
    except KeyboardInterrupt as e:
        return "for", str(e), n > 0

@tiered
def spin_while_cond(box):
    try:
        while box[0] is not None:
            box[0] += 1
    except KeyboardInterrupt as e:
        return "while-cond", str(e), box[0] > 0

for f, a in [(spin_while, ()), (spin_for, ()), (spin_while_cond, ([0],))]:
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    print(f(*a))
ours(spin_while, spin_for, spin_while_cond)
""")


def test_keyboard_interrupt_traceback_has_the_function_and_the_handler():
    same_as_cpython(r"""
import signal, traceback
from tiered import tiered

def handler(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGALRM, handler)

@tiered
def spin():
    while True:
        pass

signal.setitimer(signal.ITIMER_REAL, 0.05)
try:
    spin()
except KeyboardInterrupt as e:
    print([f.name for f in traceback.extract_tb(e.__traceback__)])
ours(spin)
""")


def test_signal_handler_runs_right_after_a_c_call():
    # The signal arrives during a long C call that does not check for signals itself; the
    # Python handler runs right after the call returns (3.11 checks after every call of a
    # builtin), before the next statement reads the flag it sets.
    same_as_cpython(r"""
import signal
from tiered import tiered

flag = [False]
signal.signal(signal.SIGALRM, lambda *a: flag.__setitem__(0, True))

@tiered
def work(n):
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    total = sum(range(n))
    seen = flag[0]
    flag[0] = False
    return total > 0, seen

print(work(200_000_000))
ours(work)
""", timeout=120)


def test_exception_from_another_thread_reaches_a_sleeping_loop_at_once():
    # PyThreadState_SetAsyncExc (what timeouts and test runners use): the loop sleeps 0.1 s
    # per iteration, and must stop at its next check, not thousands of iterations later.
    same_as_cpython(r"""
import ctypes, threading, time
from tiered import tiered

class Stop(Exception):
    pass

@tiered
def sleeper(log):
    i = 0
    while True:
        time.sleep(0.1)
        i += 1
        log.append(i)

result = []
def run():
    try:
        sleeper([])
    except Stop:
        result.append("stopped")

t = threading.Thread(target=run)
t.start()
time.sleep(0.35)
start = time.time()
ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(Stop))
t.join(10)
print(result, time.time() - start < 1.0)
ours(sleeper)
""")


def test_pending_calls_run_in_tiered_loops():
    # A pending call queued from another thread runs at the main thread's next check and
    # ends the loop it is in.
    same_as_cpython(r"""
import threading, time, _testcapi
from tiered import tiered

stop = []

@tiered
def spin(stop):
    n = 0
    while not stop:
        n += 1
    return n > 0

def queue():
    time.sleep(0.05)
    _testcapi._pending_threadfunc(lambda: stop.append(1))

threading.Thread(target=queue).start()
print(spin(stop))
ours(spin)
""")


def test_other_threads_get_the_gil_from_a_pure_tiered_loop():
    # No call in the loop: only its back edge lets the other thread run (GIL drop
    # request); without that the loop would spin forever. Only what does not depend on
    # the scheduler is printed: whether the loop went round before the producer was done
    # depends on it, for CPython as for us (under load CPython's own run printed False).
    same_as_cpython(r"""
import threading, time
from tiered import tiered

@tiered
def wait_for(box, n):
    i = 0
    while len(box) < n:
        i += 1
    return i

box = []
def produce():
    for k in range(5):
        time.sleep(0.005)
        box.append(k)

threading.Thread(target=produce).start()
wait_for(box, 5)
print(box)
ours(wait_for)
""")
