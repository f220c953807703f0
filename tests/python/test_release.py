"""When objects are released: where CPython releases them (at `del`, at rebinding, when the
op that consumed a temporary is done, on the way to a handler, at the frame's end), so
`__del__`, weakref callbacks and `gc.collect()` see the same program. Each case logs the
releases among the function's own events and returns the log; the order must agree with
CPython on every tier."""
import gc
import weakref

import pytest

from harness import cases, check

LOG = []


class D:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        LOG.append(("del", self.name))


def note(*what):
    LOG.append(what)


def take(log=None):
    LOG.clear()
    return log


def done():
    out = list(LOG)
    LOG.clear()
    return out


def rebinding_in_a_loop(n):
    take()
    for i in range(n):
        w = D(i)
        note("made", i)
        if i % 2:
            w = None
            note("rebound", i)
    note("loop done")
    del w
    note("deleted")
    return done()


def del_then_call(n):
    take()
    out = []
    for i in range(n):
        x = D(i)
        r = weakref.ref(x)
        del x
        out.append(r() is None)
    return out, done()


def temporary_consumed_by_a_call(n):
    take()
    for i in range(n):
        note("len", len(str(D(i).name)))
        note("next", i)
    return done()


def unused_call_result(n):
    take()
    for i in range(n):
        D(i)
        note("after", i)
    return done()


def locals_at_return(n):
    # `inner` is nested in tiered code, so it runs in our tiers too.
    def inner(n):
        a = D("a")
        b = D("b")
        note("body", n)
        return n

    take()
    for i in range(n):
        note("returned", inner(i))
    return done()


def locals_released_in_slot_order(n):
    # `a` comes first among the frame's slots but gets its object last: CPython clears a
    # frame slot by slot.
    def inner(flag):
        a = None
        b = D(("b", flag))
        a = D(("a", flag))
        c = [D(("c", flag))]
        note("body", flag)
        return flag

    def raising(flag):
        a = None
        b = D(("b", flag))
        a = D(("a", flag))
        return b.name[flag]

    take()
    for i in range(n):
        note("returned", inner(i))
        try:
            raising(i)
        except IndexError:
            note("raised", i)
    return done()


def loop_variable_keeps_its_last_item(n):
    take()
    for o in [D(i) for i in range(n)]:
        note("saw", o.name)
    note("after loop", o.name)
    o = None
    note("rebound")
    return done()


def temporaries_released_on_the_way_to_a_handler(n):
    take()
    out = []
    for i in range(n):
        try:
            out.append((D(i), 1 // (i % 2)))
        except ZeroDivisionError:
            note("handler", i)
    out.clear()
    note("cleared")
    return done()


def _gather(*a):
    return a


def stack_values_released_top_down(n):
    # An exception leaves values on the stack: CPython's unwinder pops them top down,
    # before the handler runs, or before the frame's locals when nothing catches it.
    def leaves(i):
        x = D(("local", i))
        return _gather(D(("p", i)), D(("q", i)), 1 // (i % 2)), x

    take()
    for i in range(n):
        try:
            _gather(D(("x", i)), D(("y", i)), [D(("z", i))], 1 // (i % 2))
        except ZeroDivisionError:
            note("handler", i)
        try:
            leaves(i)
        except ZeroDivisionError:
            note("left", i)
    return done()


def branch_only_one_side_rebinds(n):
    take()
    x = D("first")
    for i in range(n):
        if i == n // 2:
            x = D(i)
            note("rebound", i)
        else:
            note("kept", i)
    return done()


def swapped_locals(n):
    take()
    a, b = D("a"), D("b")
    for i in range(n):
        a, b = b, a
    a = None
    note("a gone")
    b = None
    note("b gone")
    return done()


class Node:
    def __init__(self):
        self.other = self


def cyclic_garbage_collected(n):
    # pyperformance's gc_collect pattern: the list is the only reference to the cycles.
    nodes = [Node() for _ in range(n)]
    del nodes
    return gc.collect() >= n


def weakref_callback_order(n):
    take()
    keep = []
    for i in range(n):
        x = D(i)
        keep.append(weakref.ref(x, lambda r, i=i: note("callback", i)))
        x = D(-i)
        note("rebound", i)
    del x
    return done()


class Ctx:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return D(("entered", self.name))

    def __exit__(self, *exc):
        note("exit", self.name, exc[0] is not None)
        return exc[0] is KeyError


def tangled_control_flow(n):
    # Values made and dropped on every kind of path through a loop: continue, break,
    # a caught exception, a with block that swallows one, a value only one branch keeps.
    take()
    keep = None
    for i in range(n):
        t = D(("t", i))
        if i % 5 == 0:
            continue
        try:
            u = D(("u", i))
            if i % 3 == 0:
                raise ValueError(i)
            keep = u if i % 4 == 0 else keep
        except ValueError:
            note("caught", i)
        with Ctx(i) as c:
            if i % 7 == 0:
                raise KeyError(i)
            w = (c, D(("w", i)))
        if i == n - 2:
            break
        note("iteration", i)
    note("loop done")
    keep = t = u = c = w = None
    note("all rebound")
    return done()


def make_and_call_a_closure(n):
    # Each call makes a closure over a new object and calls it: the quickened call site
    # must not keep the first closure (and so its object) alive.
    take()
    for i in range(n):
        step_with_a_closure(i)
        note("call done", i)
    return done()


def step_with_a_closure(i):
    obj = D(i)

    def read():
        return obj.name

    return read()


def merged_values_share_a_register(n):
    # A local set on one side of an if, a conditional expression's value and a handler
    # reached with such a local live: the merges' parameters share a register with the
    # values passed to them (`lower::coalesce`), and each value is still released where
    # CPython releases it.
    take()
    best = D(("best", -1))
    for i in range(n):
        cand = D(("cand", i))
        if i % 3 == 0:
            best = cand
            note("took", i)
        elif i % 3 == 1:
            note("skipped", i)
        pick = cand if i % 2 else best
        note("pick", pick.name)
        try:
            if i == n - 2:
                raise KeyError(i)
        except KeyError:
            note("caught", best.name)
        note("iteration", i)
    note("loop done")
    best = cand = pick = None
    note("all rebound")
    return done()


class Link:
    def __init__(self, name, link):
        self.name = name
        self.link = link

    def __del__(self):
        LOG.append(("del", self.name))


def walk_a_list_releasing_it(n):
    # `t = t.link` in a loop, on both sides of an if: the attribute's value shares the
    # register of the object it was read from (`lower::coalesce`), whose write releases
    # that object, as CPython's LOAD_ATTR releases its owner once it has the attribute.
    # The list's tail has no `link`: the last read raises, with `t` still the tail.
    take()
    head = Link(0, None)
    del head.link
    for i in range(1, n):
        head = Link(i, head)
    t = head
    del head
    steps = 0
    try:
        while t is not None:
            note("at", t.name)
            if t.name % 2:
                t = t.link
            else:
                t = t.link
                note("even")
            steps += 1
    except AttributeError:
        note("no link", t.name)
    note("walked", steps)
    t = None
    note("dropped")
    return done()


def attribute_replaces_its_object(n):
    # `x = x.link` on one side of an if in a loop, `x` a new object each iteration: the
    # attribute's value is written over the object it was read from (one register,
    # `lower::coalesce`), and that write must release the object, the one place it can.
    take()
    for i in range(n):
        x = Link(("outer", i), Link(("inner", i), None))
        if i % 2:
            x = x.link
            note("followed", i)
        note("holding", x.name)
    note("loop done")
    x = None
    note("dropped")
    return done()


def result_rebinds_a_local_it_replaces(n):
    # `x = src.name` and `x = i + 100` on one side of an if, `x` a new object each
    # iteration and deleted at its end: the attribute's and the sum's values share the
    # register of the object `x` held, which their frame states alone read, so their
    # writes must release it (they did not: the object leaked once the loop ran natively).
    take()
    src = Link(("src", 0), None)
    for i in range(n):
        x = Link(("x", i), None)
        if i % 3 == 1:
            x = src.name
        elif i % 3 == 2:
            x = i + 100
        note("holding", x if isinstance(x, (tuple, int)) else x.name)
        del x
        note("deleted", i)
    note("loop done")
    return done()


def bool_then_object_in_one_register(n):
    # `v = src is None`, then on one side `v = src.link`: the bool's and the object's
    # values share a register (`lower::coalesce`), which native code must not take for
    # one that only ever holds a bool (owning nothing, never released).
    take()
    src = Link(("src", 0), None)
    for i in range(n):
        src.link = D(("item", i))
        v = src is None
        if i % 2:
            v = src.link
        src.link = None
        note("unlinked", i, v is True)
        del v
        note("deleted", i)
    note("loop done")
    return done()


ROWS = (
    (make_and_call_a_closure, (4,)),
    (tangled_control_flow, (30,)),
    (merged_values_share_a_register, (8,)),
    (walk_a_list_releasing_it, (6,)),
    (attribute_replaces_its_object, (6,)),
    (result_rebinds_a_local_it_replaces, (9,)),
    (bool_then_object_in_one_register, (6,)),
    (rebinding_in_a_loop, (6,)),
    (del_then_call, (5,)),
    (temporary_consumed_by_a_call, (4,)),
    (unused_call_result, (4,)),
    (locals_at_return, (3,)),
    (locals_released_in_slot_order, (4,)),
    (loop_variable_keeps_its_last_item, (3,)),
    (temporaries_released_on_the_way_to_a_handler, (4,)),
    (stack_values_released_top_down, (3,)),
    (branch_only_one_side_rebinds, (5,)),
    (swapped_locals, (3,)),
    (cyclic_garbage_collected, (100,)),
    (weakref_callback_order, (4,)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_objects_are_released_where_cpython_releases_them(f, args, kwargs):
    check(f, *args, **kwargs)
