"""Generators' register files (`generator::files`): a generator runs on a file from its
code's pool from its first step to its last and gives it back, cleared, when it
finishes (or when it is freed unfinished); a code whose last first step finished (most
coroutines) runs the next first step on stack registers instead, and a file is taken
only if that step suspends. Each case makes more generators of one code than a pool
keeps, alive at once and finishing in other orders and other ways, so that files pass
between generators whose values differ: nothing one left may be seen by the next, and
no reference may be kept or lost (the harness counts the arguments' references)."""
import gc
import weakref

import pytest

from harness import cases, check
from tiered import stats, tiered


def maybe_bound(k, item):
    if k % 2:
        v = (k * 3, item)
    yield k
    # Unbound for even k: a file last used by an odd k's generator must not show its v.
    yield v


def unbound_after_bound(n, items):
    out = []
    for k in range(n):
        g = maybe_bound(k, items[k % len(items)])
        out.append(next(g))
        try:
            out.append(next(g))
        except UnboundLocalError as e:
            out.append(str(e))
        # Odd k: left suspended and freed so (closed by its finalizer); even k: finished
        # by its exception.
    return out


def counter(i, item):
    a, b, c = i, str(i), [item]
    for j in range(4):
        a += j
        yield a, b, len(c), c[0]
        c.append(j)
    return a


def interleaved(n, items):
    # n alive at once (more than a pool keeps), stepped in turn, finished in a
    # scrambled order, then the next batch made on the files they gave back.
    out = []
    for batch in range(2):
        gens = [counter(i + batch, items[i % len(items)]) for i in range(n)]
        for turn in range(3):
            for g in (gens if turn % 2 == 0 else reversed(gens)):
                out.append(next(g))
        for i in sorted(range(n), key=lambda i: (i * 7) % n):
            out.append(list(gens[i]))
        gens = None
    return out


def chain(depth, item):
    if depth:
        yield from chain(depth - 1, item)
    yield depth, item


def nested_chains(depth, item):
    # `depth` generators of one code nested in each other's `yield from`, each finishing
    # inside its parent's step; three chains, so the later ones run on files the first
    # gave back.
    return [list(chain(depth, item)) for _ in range(3)]


def raises_some(k, item):
    if k % 3 == 1:
        raise ValueError(k)
    x = [item, k]
    yield x
    if k % 3 == 2:
        raise KeyError(k)
    yield len(x)


def finishes_many_ways(n, items):
    out = []
    for k in range(n):
        g = raises_some(k, items[k % len(items)])
        try:
            out.append(list(g))
        except (ValueError, KeyError) as e:
            out.append(repr(e))
        if k % 5 == 0:
            g = raises_some(k + 3, items[0])
            out.append(next(g))
            g.close()
    return out


class Wait:
    def __await__(self):
        got = yield "waiting"
        return got


async def maybe_waits(k, item):
    x = [k * 2, item]
    if k % 3 == 0:
        x.append(await Wait())
    return x


def coroutines_that_sometimes_wait(n, items):
    # The first step suspends for every third coroutine only: a code's guess of whether
    # its first step suspends (stack registers or a file) is wrong again and again.
    out, waiting = [], []
    for k in range(n):
        c = maybe_waits(k, items[k % len(items)])
        try:
            out.append(("waits", c.send(None)))
            waiting.append(c)
        except StopIteration as e:
            out.append(("returned", e.value))
    for i, c in enumerate(reversed(waiting)):
        try:
            c.send(i)
        except StopIteration as e:
            out.append(("resumed", e.value))
    return out


async def leaf(k, item):
    return [k, item]


async def awaits_leaves(n, items):
    # Coroutines that never suspend: their first steps stay on stack registers.
    return [await leaf(k, items[k % len(items)]) for k in range(n)]


ITEMS = ([1], "s", (2.5,), {"k": 3})

ROWS = (
    (unbound_after_bound, (60, ITEMS)),
    (interleaved, (40, ITEMS)),
    (nested_chains, (40, ITEMS)),
    (finishes_many_ways, (60, ITEMS)),
    (coroutines_that_sometimes_wait, (60, ITEMS)),
    (awaits_leaves, (60, ITEMS)),
)


@pytest.mark.parametrize("f,args,kwargs", cases(*ROWS))
def test_register_files_agree_with_cpython(f, args, kwargs):
    check(f, *args, **kwargs)


def test_suspended_generators_freed_by_the_collector_release_their_files():
    # Generators suspended with values in their registers, each in a reference cycle
    # through a list it holds, freed by the collector: their values are released (the
    # weakly referenced items die) and their files go back to be reused.
    class Item:
        pass

    def holder(item, cell):
        box = [item]
        yield len(box)
        yield box[0] is cell

    def run(n):
        refs = []
        for _ in range(n):
            item = Item()
            refs.append(weakref.ref(item))
            cell = []
            g = holder(item, cell)
            next(g)
            cell.append(g)
        return refs

    for f in (run, tiered(run)):
        for _ in range(3):
            refs = f(40)
            gc.collect()
            assert all(r() is None for r in refs)
    assert stats(f)["native_calls"] + stats(f)["interp_calls"] > 0
