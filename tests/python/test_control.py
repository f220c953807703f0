"""Control flow: if/elif/else, while, for over every kind of iterable, break,
continue, else clauses, returns from inside loops and try/finally."""

import pytest

from harness import cases, check, counted_ops


def classify(x):
    if x < 0:
        return "neg"
    elif x == 0:
        return "zero"
    elif x < 10:
        return "small"
    else:
        return "big"


def nested_if(a, b):
    if a:
        if b:
            r = 1
        else:
            r = 2
    else:
        r = 3 if b else 4
    return r


def if_no_else(x, log):
    if x:
        log.append("taken")
    log.append("after")


def ternary_chain(x):
    return "a" if x == 1 else "b" if x == 2 else "c"


def while_count(n):
    i = 0
    total = 0
    while i < n:
        total += i
        i += 1
    return total


def while_break_continue(n):
    out = []
    i = 0
    while True:
        i += 1
        if i % 3 == 0:
            continue
        if i > n:
            break
        out.append(i)
    return out


def while_else(n, stop):
    i = 0
    while i < n:
        if i == stop:
            r = "broke"
            break
        i += 1
    else:
        r = "exhausted"
    return r, i


def while_false_else():
    while False:
        return "never"
    else:
        return "else ran"


def for_list(xs):
    out = []
    for x in xs:
        out.append(x * 2)
    return out


def for_each_kind(it):
    out = []
    for x in it:
        out.append(x)
    return out


def for_dict_items(d):
    out = []
    for k, v in d.items():
        out.append((k, v))
    for k in d:
        out.append(k)
    for v in d.values():
        out.append(v)
    return out


def for_set(s):
    return sorted([x for x in s])


def for_else(xs, target):
    for x in xs:
        if x == target:
            r = ("found", x)
            break
    else:
        r = ("not found", None)
    return r


def for_continue(xs):
    out = []
    for x in xs:
        if x % 2:
            continue
        out.append(x)
    else:
        out.append("else")
    return out


def nested_break(n):
    pairs = []
    for i in range(n):
        for j in range(n):
            if j > i:
                break
            if (i + j) % 3 == 0:
                continue
            pairs.append((i, j))
        else:
            pairs.append("inner-else")
        if i == n - 2:
            break
    return pairs


def loop_var_after(xs):
    x = "unset"
    for x in xs:
        pass
    return x


def empty_loops():
    out = []
    for x in []:
        out.append(x)
    for x in "":
        out.append(x)
    for x in range(0):
        out.append(x)
    for x in {}:
        out.append(x)
    for x in set():
        out.append(x)
    for x in range(5, 0):
        out.append(x)
    return out


def range_variants():
    return ([i for i in range(10, 0, -3)], [i for i in range(-5, 5, 4)], list(range(2**63 - 2, 2**63 + 2)),
            [i for i in range(0, -10, -4)], len(range(0, 10**20, 7)))


def range_bad_step():
    return list(range(0, 10, 0))


def raise_mid_loop(xs, log):
    for x in xs:
        log.append(x)
        if x == 3:
            raise ValueError(f"stop at {x}")
    return "done"


def catch_mid_loop(xs):
    out = []
    for x in xs:
        try:
            out.append(10 // x)
        except ZeroDivisionError as e:
            out.append(str(e))
            continue
        finally:
            out.append("f")
    return out


def append_while_iterating(xs):
    for x in xs:
        if len(xs) < 10:
            xs.append(x + 1)
    return xs


def remove_while_iterating(xs):
    seen = []
    for x in xs:
        seen.append(x)
        if x % 2 == 0:
            xs.remove(x)
    return seen, xs


def dict_change_while_iterating(d):
    for k in d:
        d[k + 100] = 0
    return d


def return_in_loop(xs, target):
    for i, x in enumerate(xs):
        while True:
            if x == target:
                return i
            break
    return -1


def return_in_try_finally(log):
    for i in range(5):
        try:
            if i == 2:
                return ("returned", i)
        finally:
            log.append(i)
    return "end"


def finally_overrides_return(log):
    try:
        return "try"
    finally:
        log.append("finally")


def break_in_try_finally(log):
    for i in range(5):
        try:
            if i == 1:
                break
            log.append(("body", i))
        finally:
            log.append(("finally", i))
    return i


def continue_in_try_finally(log):
    for i in range(3):
        try:
            if i == 1:
                continue
            log.append(("body", i))
        finally:
            log.append(("finally", i))
    return log


class Countdown:
    """An iterator class written in Python."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return self

    def __next__(self):
        if self.n <= 0:
            raise StopIteration
        self.n -= 1
        return self.n

    def __repr__(self):
        return f"Countdown({self.n})"


class SeqOnly:
    """Iterable through the old __getitem__ protocol."""

    def __getitem__(self, i):
        if i >= 3:
            raise IndexError
        return i * i

    def __repr__(self):
        return "SeqOnly()"


class BadIter:
    def __iter__(self):
        return 42

    def __repr__(self):
        return "BadIter()"


class RaisingIter:
    def __iter__(self):
        raise ValueError("no iterating this")


class RaisingNext:
    def __iter__(self):
        return self

    def __next__(self):
        raise KeyError("next failed")

    def __repr__(self):
        return "RaisingNext()"


def for_iter_class(n):
    out = []
    for x in Countdown(n):
        out.append(x)
    return out


def for_builtin_iterators(xs):
    out = []
    for i, x in enumerate(xs, 1):
        out.append((i, x))
    for a, b in zip(xs, reversed(xs)):
        out.append(a - b)
    for x in iter(xs):
        out.append(x)
    for x in map(abs, xs):
        out.append(x)
    for x in filter(None, xs):
        out.append(x)
    return out


def for_not_iterable(x):
    for _ in x:
        pass


def next_builtin(xs):
    it = iter(xs)
    a = next(it)
    b = next(it, "default")
    c = next(it, "default")
    return a, b, c


def next_exhausted():
    it = iter([])
    return next(it)


def while_with_complex_cond(xs):
    i = 0
    while i < len(xs) and xs[i] is not None and (xs[i] > 0 or xs[i] == -1):
        i += 1
    return i


def deep_nesting(n):
    count = 0
    for a in range(n):
        for b in range(n):
            for c in range(n):
                if a == b:
                    continue
                while c > 0:
                    c -= 1
                    if c == a:
                        break
                    count += 1
    return count


def sum_squares(n):
    s = 0
    i = 0
    while i < n:
        s += i * i
        i += 1
    return s


def match_stmt(x):
    match x:
        case 0:
            return "zero"
        case [a, b]:
            return ("pair", a, b)
        case {"k": v}:
            return ("dict", v)
        case str() as s if len(s) > 2:
            return ("long str", s)
        case int(n) | float(n):
            return ("num", n)
        case _:
            return "other"


def iterate_each(items):
    # GET_ITER raising inside a try, in a loop (native code's GetIter template raises to
    # the handler): not iterable, __iter__ raising, __iter__ returning a non-iterator.
    out = []
    for x in items:
        try:
            for y in x:
                out.append(y)
        except (TypeError, ValueError) as e:
            out.append((type(e).__name__, str(e)))
    return out


def merged_locals(n, step):
    # Locals set on one side of an if, or on each side, or swapped, in loops: the merges'
    # parameters share registers with the values passed to them (`lower::coalesce`), so
    # these edges move nothing; what each holds must stay its own.
    s, best, a, b = 0, None, 0, 1
    for i in range(n):
        if i % 3 == 0:
            s += i * step
        elif i % 3 == 1:
            s -= step
        if best is None or i * step > best:
            best = i * step
        a, b = b, a + b
        t = s if i % 2 else -s
        s = t if i % 5 == 0 else s
    return s, best, a, b


CASES = cases(
    (classify, (-3,)), (classify, (0,)), (classify, (5,)), (classify, (50,)), (classify, (2**70,)),
    (classify, (0.0,)), (classify, (float("nan"),)), (classify, ("x",)),
    (nested_if, (1, 1)), (nested_if, (1, 0)), (nested_if, (0, 1)), (nested_if, (0, 0)), (nested_if, ([], "x")),
    (if_no_else, (0, [])), (if_no_else, (1, [])),
    (ternary_chain, (1,)), (ternary_chain, (2,)), (ternary_chain, (3,)),
    (while_count, (0,)), (while_count, (100,)), (while_count, (-1,)),
    (while_break_continue, (10,)),
    (while_else, (5, 2)), (while_else, (5, 9)), (while_else, (0, 0)), (while_false_else, ()),
    (for_list, ([1, 2, 3],)), (for_list, ([],)), (for_list, (["a", [1]],)),
    (for_each_kind, ([1, 2],)), (for_each_kind, ((1, 2),)), (for_each_kind, (range(3),)),
    (for_each_kind, ("héllo",)), (for_each_kind, ({"a": 1, "b": 2},)), (for_each_kind, (b"ab",)),
    (for_each_kind, (bytearray(b"xy"),)), (for_each_kind, (frozenset({3}),)), (for_each_kind, (SeqOnly(),)),
    (for_each_kind, (Countdown(4),)), (for_each_kind, (BadIter(),)), (for_each_kind, (RaisingNext(),)),
    (for_each_kind, ({5, 1, 3},)),
    (for_dict_items, ({"x": 1, "y": 2},)), (for_set, ({3, 1, 2},)),
    (for_else, ([1, 2, 3], 2)), (for_else, ([1, 2, 3], 7)), (for_else, ([], 1)),
    (for_continue, (list(range(7)),)), (nested_break, (5,)), (loop_var_after, ([1, 2],)),
    (loop_var_after, ([],)), (empty_loops, ()), (range_variants, ()), (range_bad_step, ()),
    (raise_mid_loop, ([1, 2, 3, 4], [])), (raise_mid_loop, ([1, 2], [])),
    (catch_mid_loop, ([1, 0, 2, 0],)),
    (append_while_iterating, ([1, 2],)), (remove_while_iterating, ([2, 4, 6, 7, 8],)),
    (dict_change_while_iterating, ({1: 1},)),
    (return_in_loop, ([5, 6, 7], 6)), (return_in_loop, ([5, 6, 7], 9)),
    (return_in_try_finally, ([],)), (finally_overrides_return, ([],)),
    (break_in_try_finally, ([],)), (continue_in_try_finally, ([],)),
    (for_iter_class, (5,)), (for_iter_class, (0,)), (for_builtin_iterators, ([3, -1, 0, 2],)),
    (for_not_iterable, (5,)), (for_not_iterable, (None,)), (next_builtin, ([1],)),
    (iterate_each, ([[1, 2], 5, (3,), None, BadIter(), "ab", RaisingIter(), 2.5, {4: 0}] * 30,)),
    (next_builtin, ([1, 2, 3],)), (next_exhausted, ()),
    (while_with_complex_cond, ([1, 2, -1, 0, 5],)), (while_with_complex_cond, ([1, None],)),
    (while_with_complex_cond, ([1, "x"],)),
    (deep_nesting, (6,)), (sum_squares, (1000,)),
    (merged_locals, (40, 3)), (merged_locals, (40, 2.5)), (merged_locals, (7, 10**20)),
    (merged_locals, (5, "x")),
    (match_stmt, (0,)), (match_stmt, ([1, 2],)), (match_stmt, ({"k": 3, "j": 4},)), (match_stmt, ("abc",)),
    (match_stmt, ("ab",)), (match_stmt, (2.5,)), (match_stmt, ((1, 2, 3),)), (match_stmt, (False,)),
)


@pytest.mark.parametrize("f,args,kwargs", CASES)
def test_control(f, args, kwargs):
    check(f, *args, **kwargs)


# --- iteration over generators: the generator runs wherever it runs; the
# --- caller itself must stay in tier 1.

def gen_numbers(n):
    for i in range(n):
        yield i * i


def for_generator(n):
    out = []
    for x in gen_numbers(n):
        out.append(x)
    return out


def for_generator_break(n):
    g = gen_numbers(n)
    for x in g:
        if x > 10:
            break
    return x, next(g), list(g)


def gen_raises():
    yield 1
    raise RuntimeError("generator failed")


def for_generator_raises():
    out = []
    try:
        for x in gen_raises():
            out.append(x)
    except RuntimeError as e:
        out.append(str(e))
    return out


@pytest.mark.genexpr
@pytest.mark.parametrize("f,args,kwargs", cases(
    (for_generator, (6,)), (for_generator, (0,)), (for_generator_break, (10,)), (for_generator_raises, ()),
))
def test_for_over_generator(f, args, kwargs):
    check(f, *args, **kwargs)


# --- a loop's end in native code: the iterator lets go of its sequence -----------

class Noisy:
    """Logs its release, so when a list or tuple is let go (at its loop's end) shows."""

    log = []

    def __init__(self, name):
        self.name = name

    def __del__(self):
        Noisy.log.append(("del", self.name))


def loop_ends_release(n):
    Noisy.log = []
    log = Noisy.log
    for i in range(n):
        for x in [Noisy(i)]:  # the list is released as the loop ends, before "after"
            log.append(("in", x.name))
        del x
        log.append(("after", i))
        for y in (Noisy(-i), i):
            log.append(("t", y if isinstance(y, int) else y.name))
        log.append(("after tuple", i))
        it = iter([i, i + 1])
        for z in it:
            log.append(("z", z))
        for z in it:  # already exhausted: ends at once
            log.append(("again", z))
        log.append(("last", z))
        for k in range(i, i):
            log.append(("never", k))
    return log


def test_loop_ends_release_their_sequence_when_cpython_does():
    check(loop_ends_release, 25)


def short_loops(rows):
    total = 0
    for row in rows:
        for x in row:
            total += x
        for i in range(len(row)):
            total += i
        for t in (1, 2):
            total += t
    return total


class Countdown:
    """An iterator of a class (its type's tp_iternext looks `__next__` up): ForIter has
    no variant for it and settles generic."""

    def __init__(self, n, fail_at=None):
        self.n, self.fail_at = n, fail_at

    def __iter__(self):
        return self

    def __next__(self):
        if self.n == self.fail_at:
            raise KeyError(self.n)
        if self.n <= 0:
            raise StopIteration("done")
        self.n -= 1
        return self.n


def class_iterators(n):
    out = []
    for i in range(n):
        for x in Countdown(i % 4):
            out.append(x)
        try:
            for x in Countdown(5, fail_at=i % 6):
                out.append(("f", x))
        except KeyError as e:
            out.append(("caught", e.args))
        for x in Countdown(3):
            if x == 1:
                break
            out.append(("b", x))
    return out


def test_class_iterators_in_a_loop():
    check(class_iterators, 30)


def test_class_iterators_stay_native():
    # ForIterGeneric: the type's tp_iternext called from native code, not the op's
    # generic path in tier 1 (xml's iterparse iterator, 1.2M times a run).
    import os
    import types

    from tiered import tiered

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")

    def drain(its):
        total = 0
        for it in its:
            for x in it:
                total += x
        return total

    w = tiered(types.FunctionType(drain.__code__.replace(co_name="drain_fresh"), drain.__globals__),
               strict=True)

    def warm_up():
        for _ in range(40):
            assert w([Countdown(3), Countdown(2)]) == 4

    def measured():
        w([Countdown(3), Countdown(2)])

    counts = counted_ops(warm_up, measured)["ForIter"]
    assert counts["tier1"] == 0 and counts["deopts"] == 0 and counts["tier2"] > 0, counts


def test_loop_ends_stay_native():
    # Each inner loop ends (list, range, tuple iterators) in native code, not through
    # the op's generic path.
    import os
    import types

    from tiered import tiered

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    w = tiered(types.FunctionType(short_loops.__code__.replace(co_name="short_fresh"), short_loops.__globals__),
               strict=True)
    rows = [[1, 2], [3], []] * 10

    def warm_up():
        for _ in range(30):
            w(rows)

    def measured():
        for _ in range(10):
            assert w(rows) == short_loops(rows)

    counts = counted_ops(warm_up, measured)["ForIter"]
    assert counts["tier1"] == 0 and counts["tier2"] > 0, counts
