"""Comprehensions, lambdas, nested functions, closures, nonlocal, del of
locals, assert.

PYTEST_DONT_REWRITE: the case functions contain `assert` statements that must
stay plain CPython asserts (pytest's rewriting would change their bytecode).
"""

import pytest

from harness import cases, check, counted_ops


# --- comprehensions ----------------------------------------------------------------

def list_comp(xs):
    return [x * 2 for x in xs]


def list_comp_if(xs):
    return [x for x in xs if x % 2 if x > 1]


def set_comp(xs):
    return {x % 3 for x in xs}


def dict_comp(xs):
    return {x: x * x for x in xs if x}


def nested_comp(n):
    return [[i * j for j in range(i)] for i in range(n)]


def flat_comp(rows):
    return [x for row in rows for x in row if x is not None]


def comp_closure(xs, k):
    offset = k * 2
    return [x + offset for x in xs], {x: offset for x in xs}


def comp_var_no_leak(xs):
    x = "outer"
    ys = [x for x in xs]
    return x, ys


def comp_raises(xs):
    return [10 // x for x in xs]


def comp_over_dict(d):
    return [(k, v) for k, v in d.items()], [k for k in d], {v: k for k, v in d.items()}


def comp_with_walrus(xs):
    total = 0
    out = [total := total + x for x in xs]
    return out, total


def comp_calls_outer_function(xs):
    def sq(v):
        return v * v
    return [sq(x) for x in xs]


def comp_nested_scopes(n):
    return [[(lambda: i + j)() for j in range(2)] for i in range(n)]


def comp_not_iterable():
    return [x for x in 5]


# --- lambdas, nested defs, closures -------------------------------------------------

def lambdas(xs):
    key = lambda v: (-v[1], v[0])  # noqa: E731
    add = lambda a, b=10, *r, k=1, **kw: (a + b, r, k, kw)  # noqa: E731
    return sorted(xs, key=key), add(1), add(1, 2, 3, k=4, z=5), (lambda: "no args")()


def nested_def(x):
    def inner(y):
        return x + y

    def inner2(y, z=x):
        return inner(y) * z

    return inner(1), inner2(2), inner2.__defaults__, inner.__name__, inner.__qualname__


def counter_closure(n):
    def make():
        count = 0

        def inc(step=1):
            nonlocal count
            count += step
            return count
        return inc
    c1 = make()
    c2 = make()
    out = [c1() for _ in range(n)]
    out.append(c2(10))
    out.append(c1())
    return out


def closure_late_binding():
    fs = [lambda: i for i in range(3)]
    gs = [lambda i=i: i for i in range(3)]
    hs = []
    for j in range(3):
        hs.append(lambda: j)
    return [f() for f in fs], [g() for g in gs], [h() for h in hs]


def closure_over_loop_var_rebound():
    out = []
    for i in range(3):
        def f():
            return i * 10
        out.append(f)
        i = 99  # rebinding the cell after the closure was made
    return [f() for f in out]


def cell_mutated_after_closure():
    x = 1

    def get():
        return x
    a = get()
    x = 2
    b = get()
    return a, b


def deep_closure(a):
    def l1(b):
        def l2(c):
            def l3(d):
                return (a, b, c, d)
            return l3
        return l2
    return l1(1)(2)(3)


def nonlocal_in_nested(n):
    total = 0

    def add(v):
        nonlocal total
        total += v

    def add_twice(v):
        add(v)
        add(v)

    for i in range(n):
        add_twice(i)
    return total


def closure_cell_is_argument(x):
    def get():
        return x
    x = x * 2
    return get()


def closure_inspect():
    y = 5

    def f():
        return y
    return f.__code__.co_freevars, f.__closure__[0].cell_contents, len(f.__closure__)


def recursion_via_closure(n):
    def fact(k):
        return 1 if k <= 1 else k * fact(k - 1)
    return fact(n)


def decorator_inside():
    def deco(fn):
        def wrapper(*a, **k):
            return ("wrapped", fn(*a, **k))
        return wrapper

    @deco
    def hello(name):
        return "hi " + name
    return hello("bob")


# --- del, unbound locals, assert ---------------------------------------------------

def del_then_read():
    x = 1
    del x
    return x


def read_before_assign(flag):
    if flag:
        y = 1
    return y


def del_twice():
    x = 1
    del x
    del x


def del_free_var():
    x = 1

    def get():
        return x
    del x
    return get()


def del_and_rebind():
    x = [1]
    y = x
    del x
    x = "again"
    return x, y


def del_many(d):
    a, b, c = 1, 2, 3
    del a, d["k"], b
    return c, d


def assert_ok(x):
    assert x
    assert x, "message not evaluated"
    return "passed"


def assert_no_msg(x):
    assert x > 0
    return x


def assert_with_msg(x):
    assert x > 0, f"x must be positive, got {x!r}"
    return x


def assert_msg_object(x):
    assert x, ["a", "list", x]


def assert_msg_side_effect(log, x):
    def msg():
        log.append("msg evaluated")
        return "m"
    try:
        assert x, msg()
    except AssertionError as e:
        return str(e), e.args, log
    return "ok", log


CASES = cases(
    (list_comp, ([1, 2, 3],)), (list_comp, ("ab",)), (list_comp, ([],)), (list_comp_if, (range(10),)),
    (set_comp, (range(10),)), (dict_comp, ([0, 1, 2],)), (nested_comp, (4,)), (flat_comp, ([[1, None], [], [2, 3]],)),
    (comp_closure, ([1, 2], 3)), (comp_var_no_leak, ([1, 2],)), (comp_raises, ([1, 2, 0],)),
    (comp_over_dict, ({"a": 1, "b": 2},)), (comp_with_walrus, ([1, 2, 3],)), (comp_calls_outer_function, ([2, 3],)),
    (comp_nested_scopes, (3,)), (comp_not_iterable, ()),
    (lambdas, ([(1, 2), (0, 2), (5, 9)],)), (nested_def, (3,)), (nested_def, ("s",)), (counter_closure, (4,)),
    (closure_late_binding, ()), (closure_over_loop_var_rebound, ()), (cell_mutated_after_closure, ()),
    (deep_closure, ("a",)), (nonlocal_in_nested, (5,)), (closure_cell_is_argument, (4,)), (closure_inspect, ()),
    (recursion_via_closure, (20,)), (decorator_inside, ()),
    (del_then_read, ()), (read_before_assign, (True,)), (read_before_assign, (False,)), (del_twice, ()),
    (del_free_var, ()), (del_and_rebind, ()), (del_many, ({"k": 1, "j": 2},)), (del_many, ({},)),
    (assert_ok, (1,)), (assert_ok, (0,)), (assert_no_msg, (1,)), (assert_no_msg, (-1,)), (assert_with_msg, (-1,)),
    (assert_with_msg, (2,)), (assert_msg_object, ("",)), (assert_msg_side_effect, ([], 0)),
    (assert_msg_side_effect, ([], 1)),
)


@pytest.mark.parametrize("f,args,kwargs", CASES)
def test_closures_comprehensions(f, args, kwargs):
    check(f, *args, **kwargs)


# --- generator expressions: the genexpr is a generator (it may run in CPython);
# --- the enclosing function must still run in tier 1 ------------------------------

def genexpr_sum(xs):
    return sum(x * x for x in xs)


def genexpr_any_all(xs):
    return any(x > 2 for x in xs), all(x > 0 for x in xs)


def genexpr_consumers(xs):
    return (list(x for x in xs), tuple(x + 1 for x in xs), "".join(str(x) for x in xs), dict((x, 1) for x in xs),
            max((x for x in xs), default=None), sorted((x for x in xs), reverse=True))


def genexpr_closure(xs, k):
    return list(x * k for x in xs if x != k)


def genexpr_lazy(xs):
    g = (10 // x for x in xs)
    first = next(g)
    try:
        rest = list(g)
    except ZeroDivisionError as e:
        rest = str(e)
    return first, rest


def genexpr_first_iter_eager():
    # the outermost iterable is evaluated when the genexpr is created
    try:
        (x for x in 5)
    except TypeError as e:
        return str(e)


def nested_generator_function(n):
    def gen(k):
        for i in range(k):
            yield i
            if i == 2:
                return
    return list(gen(n)), [x for x in gen(n)]


@pytest.mark.genexpr
@pytest.mark.parametrize("f,args,kwargs", cases(
    (genexpr_sum, ([1, 2, 3],)), (genexpr_sum, ([],)), (genexpr_any_all, ([1, 2, 3],)), (genexpr_consumers, ([3, 1, 2],)),
    (genexpr_closure, ([1, 2, 3], 2)), (genexpr_lazy, ([5, 2, 0, 1],)), (genexpr_first_iter_eager, ()),
    (nested_generator_function, (5,)), (nested_generator_function, (1,)),
))
def test_genexpr_in_tiered_function(f, args, kwargs):
    check(f, *args, **kwargs)


class Noisy:
    """Logs its release, to compare when a cell's old value is let go."""

    def __init__(self, log, k):
        self.log, self.k = log, k

    def __del__(self):
        self.log.append(("del", self.k))


def cell_loop(n):
    # Cells read and written in a loop (LoadDeref, StoreDeref): ints, floats, bools and
    # objects stored, each store releasing the old content (a __del__ that logs).
    log = []
    held = None
    count = 0
    ratio = 0.5
    flag = False

    def peek():
        return count, flag, held is None

    for i in range(n):
        count = count + i
        ratio = ratio * 1.5
        flag = i % 2 == 0
        held = Noisy(log, i)
        log.append(peek())
    held = None
    log.append("cleared")
    return count, ratio, log


def cell_emptied_in_loop(n):
    # A cell deleted mid-loop: the next read raises (the template's generic path).
    out = []
    v = 0

    def read():
        return v

    for i in range(n):
        try:
            out.append(v + read())
        except NameError as e:
            out.append(str(e))
            v = i
        if i == 2:
            del v
    return out


@pytest.mark.parametrize("f,args,kwargs", cases(
    (cell_loop, (6,)), (cell_emptied_in_loop, (6,)),
))
def test_cells_in_loops(f, args, kwargs):
    check(f, *args, **kwargs)


def test_cell_reads_and_writes_stay_native():
    # LoadDeref and StoreDeref have templates: a closure's variables are read and written
    # inline, not through the tier-1 helper.
    import os
    import types

    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import tiered

    fresh = types.FunctionType(cell_loop.__code__.replace(co_name="cell_loop_counted"), cell_loop.__globals__)
    w = tiered(fresh, strict=True)

    def warm_up():
        for _ in range(60):
            w(5)

    def measured():
        w(5)

    counts = counted_ops(warm_up, measured)
    for op in ("LoadDeref", "StoreDeref"):
        assert counts[op]["tier2"] > 10 and counts[op]["tier1"] == 0, (op, counts[op])


def test_case_asserts_are_not_rewritten_by_pytest():
    names = assert_with_msg.__code__.co_varnames + assert_with_msg.__code__.co_names
    assert not any(n.startswith("@py") for n in names), names


# --- functions made in a loop (MakeFunction, LoadClosure) ---------------------------------

def functions_made_in_a_loop(n, k):
    # Every kind of function MAKE_FUNCTION makes: plain, with defaults, keyword-only
    # defaults, annotations, a closure over a local and over one of this function's free
    # variables (LoadClosure), and a nested one whose closure passes a cell on again.
    out = []
    for i in range(n):
        plain = lambda x: x + 1
        with_defaults = lambda x, y=i, *, z=-i: (x, y, z)

        def annotated(a: int, b: "str" = "b") -> list:
            return [a, b]

        closes = lambda x: x * k + i
        def outer(j):
            def inner():
                return (i, j, k)
            return inner
        out.append((plain(i), with_defaults(i), with_defaults(i, 2, z=3), annotated(i),
                    annotated.__annotations__["a"].__name__, closes(2), outer(i)()))
    return out


def make_loops(k):
    return functions_made_in_a_loop(30, k)


def test_functions_made_in_a_loop():
    check(make_loops, 3)


def test_functions_made_in_a_loop_stay_native():
    # A loop making closures runs MakeFunction in native code, and a closure's start takes
    # its cells (LoadClosure) there too: no tier-1 runs of either.
    import types

    from harness import native_default_only
    from tiered import tiered

    native_default_only()

    def make(k):
        def maker(n):
            out = 0
            for i in range(n):
                f = lambda x, y=i: x * k + y  # k: a free variable of maker, passed on
                out += f(2)
            return out
        return maker

    m = make(3)
    w = tiered(types.FunctionType(m.__code__.replace(co_name="maker_counted"), m.__globals__,
                                  "maker", None, m.__closure__), strict=True)

    def warm_up():
        for _ in range(60):
            w(10)

    def measured():
        for _ in range(10):
            w(10)

    counts = counted_ops(warm_up, measured)
    assert counts["MakeFunction"] == {"tier1": 0, "tier2": 100, "deopts": 0}, counts["MakeFunction"]
    # One a call of `maker` (its own free variable's cell, taken at its start), and one a
    # call of each lambda, which reads `k`.
    assert counts["LoadClosure"] == {"tier1": 0, "tier2": 110, "deopts": 0}, counts["LoadClosure"]
