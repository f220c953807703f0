"""Comparisons (rich, chained, identity, membership) and truthiness."""

import enum
import os
import types

import pytest

from harness import cases, check, counted_ops

INF = float("inf")
NAN = float("nan")


def cmp_lt(a, b):
    return a < b


def cmp_le(a, b):
    return a <= b


def cmp_eq(a, b):
    return a == b


def cmp_ne(a, b):
    return a != b


def cmp_gt(a, b):
    return a > b


def cmp_ge(a, b):
    return a >= b


def cmp_all_branches(a, b):
    # the comparison feeding a branch (COMPARE_OP + POP_JUMP_IF_*), not a value
    out = []
    if a < b:
        out.append("lt")
    if a <= b:
        out.append("le")
    if a == b:
        out.append("eq")
    if a != b:
        out.append("ne")
    if a > b:
        out.append("gt")
    if a >= b:
        out.append("ge")
    return out


class Cmp:
    """Rich comparisons that return non-bools and log reflected use."""

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return ("lt", self.v, getattr(other, "v", other))

    def __eq__(self, other):
        return "yes" if getattr(other, "v", other) == self.v else ""

    def __gt__(self, other):
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"Cmp({self.v!r})"


class NoCmp:
    def __repr__(self):
        return "NoCmp()"


class RaisingEq:
    def __eq__(self, other):
        raise ValueError("eq exploded")

    __hash__ = object.__hash__

    def __repr__(self):
        return "RaisingEq()"


PAIRS = [
    (1, 2), (2, 1), (1, 1), (1, 1.0), (1, True), (0, False), (NAN, NAN), (NAN, 1.0), (1, NAN),
    (2**63, 2.0**63), (2**53 + 1, float(2**53)), (float(2**53), 2**53 + 1), (-0.0, 0.0),
    (2**63 - 1, -2**63), (2**100, 2**100 + 1), (-2**100, 2**63), (INF, 2**2000), (2**2000, -INF),
    (1.5, 1), ("a", "b"), ("b", "a"), ("ab", "a"), ("", ""), ("a", 1), (None, None), (None, 0),
    ([1, 2], [1, 3]), ([1, 2], [1, 2]), ((1, 2), (1,)), ((1, NAN), (1, NAN)), ([], ()), ({1}, {1, 2}),
    ({1, 2}, {1}), ({1: 2}, {1: 2}), ({1: 2}, {1: 3}), (1j, 1j), (1j, 2j), (b"a", "a"), (b"a", b"b"),
    (Cmp(1), Cmp(2)), (Cmp(1), 1), (1, Cmp(1)), (NoCmp(), NoCmp()), (RaisingEq(), 1), ([RaisingEq()], [1]),
    (frozenset({1}), {1}), (range(3), range(0, 3)), (True, 1.0), (-1, ~0),
]

RICH = [cmp_lt, cmp_le, cmp_eq, cmp_ne, cmp_gt, cmp_ge]


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, p) for op in RICH for p in PAIRS]))
def test_rich_compare(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(*[(cmp_all_branches, p) for p in PAIRS]))
def test_compare_in_branch(f, args, kwargs):
    check(f, *args, **kwargs)


def cmp_computed_int_with_float(ns):
    # x is computed (an unboxed int in native code), and past 2**53 converting it to a
    # float rounds (2**53 + 1 to 2**53): the comparisons must stay exact, as CPython's,
    # after small values quickened them.
    out = []
    for n in ns:
        f = float(n * n * 2)
        x = n * n * 2 + 1
        out.append((x == f, x < f, x > f, x <= f, -x == -f, -x >= -f))
    return out


@pytest.mark.parametrize("f,args,kwargs", cases(
    *[(cmp_computed_int_with_float, (list(range(1, 40)) + p,)) for p in [
        [2**26], [2**26, 3], [2**26 + 1], [2**28], [2**29, 2**30 - 1],
    ]]))
def test_computed_ints_against_floats(f, args, kwargs):
    check(f, *args, **kwargs)


# --- chained comparisons: each operand evaluated once, short circuit ---------

def chain3(a, b, c):
    return a < b < c


def chain_mixed(a, b, c, d):
    return a <= b > c != d


def chain_eq(a, b, c):
    return a == b == c


def chain_log(log, a, b, c):
    def v(x):
        log.append(x)
        return x
    return v(a) < v(b) < v(c)


def chain_in_if(a, b, c):
    if a < b < c:
        return "inside"
    elif a > b > c:
        return "descending"
    return "neither"


def chain_is_in(a, b, c):
    return a is not b in c


CHAINS = cases(
    (chain3, (1, 2, 3)), (chain3, (1, 3, 2)), (chain3, (3, 2, 1)), (chain3, (1, 2.5, 3)),
    (chain3, (NAN, 1, 2)), (chain3, (1, "a", 2)), (chain3, ("a", "b", "c")), (chain3, (3, 2, "x")),
    (chain_mixed, (1, 2, 0, 5)), (chain_mixed, (1, 2, 0, 0)), (chain_mixed, (3, 2, 0, 5)),
    (chain_eq, (1, 1.0, True)), (chain_eq, (1, 1, 2)), (chain_eq, (NAN, NAN, NAN)),
    (chain_log, ([], 1, 2, 3)), (chain_log, ([], 2, 1, 3)), (chain_log, ([], 1, 2, 0)),
    (chain_log, ([], 1, "x", 3)),
    (chain_in_if, (1, 2, 3)), (chain_in_if, (3, 2, 1)), (chain_in_if, (1, 1, 1)),
    (chain_is_in, (1, 2, [2])), (chain_is_in, (1, 1, [1])), (chain_is_in, (None, 2, [3])),
)


@pytest.mark.parametrize("f,args,kwargs", CHAINS)
def test_chained(f, args, kwargs):
    check(f, *args, **kwargs)


# --- identity ----------------------------------------------------------------

def is_(a, b):
    return a is b


def is_not(a, b):
    return a is not b


def is_self(a):
    return (a is a, a is not a, [a] is [a], (a,) is None)


def is_none_branch(a):
    if a is None:
        return "none"
    if a is not None and a is True:
        return "true"
    return "other"


def is_small_computed(a):
    # -5..256 are cached by CPython: computed results are the same object
    b = a + 0
    c = a * 1
    return (b is a, c is a, (a - 1 + 1) is a)


def is_after_copy(lst):
    # an int loaded from a container is that very object (even if it fits in
    # a machine word)
    x = lst[0]
    y = x
    return (x is lst[0], lst[:] is lst, lst[:][0] is lst[0], y is x, [x][0] is lst[0])


def is_computed_big(a):
    # CPython: two separately computed non-cached ints are distinct objects
    b = a + 1
    c = a + 1
    d = b
    return (b is c, b is d, b == c, (a * 1) is a)


IDENT = cases(
    (is_, (None, None)), (is_, (1, 1)), (is_, (None, 0)), (is_, (True, 1)), (is_, ("a", "a")),
    (is_, ([], [])), (is_, (NAN, NAN)), (is_not, (None, None)), (is_not, (1, 2)), (is_not, ([], [])),
    (is_self, (2**100,)), (is_self, (NAN,)), (is_self, ([1],)), (is_self, (None,)),
    (is_none_branch, (None,)), (is_none_branch, (True,)), (is_none_branch, (1,)), (is_none_branch, (0,)),
    (is_small_computed, (7,)), (is_small_computed, (-5,)), (is_small_computed, (256,)),
    (is_after_copy, ([2**80, 2],)), (is_after_copy, ([10**10, 2],)), (is_after_copy, ([1.5],)),
    (is_computed_big, (10**10,)), (is_computed_big, (2**80,)), (is_computed_big, (1000,)),
)


@pytest.mark.parametrize("f,args,kwargs", IDENT)
def test_identity(f, args, kwargs):
    check(f, *args, **kwargs)


# --- membership --------------------------------------------------------------

def in_(a, b):
    return a in b


def not_in(a, b):
    return a not in b


def in_branch(a, b):
    if a in b:
        return "yes"
    if a not in b:
        return "no"
    return "unreachable"


def nan_self_in(lst):
    # identity short-cuts equality in list containment
    return (lst[0] in lst, float("nan") in lst, lst[0] == lst[0])


class Contains:
    def __init__(self, answer):
        self.answer = answer

    def __contains__(self, item):
        return self.answer

    def __repr__(self):
        return f"Contains({self.answer!r})"


class IterOnly:
    def __iter__(self):
        return iter([1, 2, 3])

    def __repr__(self):
        return "IterOnly()"


class GetItemOnly:
    def __getitem__(self, i):
        if i >= 4:
            raise IndexError(i)
        return i * 10

    def __repr__(self):
        return "GetItemOnly()"


class RaisingContains:
    def __contains__(self, item):
        raise KeyError("contains exploded")

    def __repr__(self):
        return "RaisingContains()"


MEMBERS = [
    (1, [1, 2]), (3, [1, 2]), (1.0, [1, 2]), (True, [1]), ("a", "abc"), ("", "abc"), ("bc", "abc"),
    ("x", "abc"), (1, "abc"), (1, {1: 2}), (2, {1: 2}), ([], {1}), ([], {1: 2}), (1, 5), (1, None),
    (NAN, [NAN]), (1, (1, 2)), (1, range(0, 10, 2)), (4, range(0, 10, 2)), (2**70, range(2**71)),
    (b"a", b"abc"), (97, b"abc"), ("a", b"abc"), (1, frozenset({1})), (1, Contains(1)),
    (1, Contains(0)), (1, Contains("")), (2, IterOnly()), (5, IterOnly()), (20, GetItemOnly()),
    (25, GetItemOnly()), (1, RaisingContains()), (RaisingEq(), [1, 2]), ([1], [[1], [2]]),
]


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, p) for op in (in_, not_in, in_branch) for p in MEMBERS],
                                                (nan_self_in, ([NAN, 1],))))
def test_membership(f, args, kwargs):
    check(f, *args, **kwargs)


# --- truthiness ----------------------------------------------------------------

def truth(x):
    return (bool(x), not x, 1 if x else 0, x and "and", x or "or")


def truth_while(x):
    n = 0
    while x:
        n += 1
        if n > 3:
            break
    return n


def truth_short_circuit(log, a, b):
    def v(x):
        log.append(x)
        return x
    r1 = v(a) and v(b)
    r2 = v(a) or v(b)
    r3 = not (v(a) and not v(b))
    return (r1, r2, r3)


class B:
    def __init__(self, v):
        self.v = v

    def __bool__(self):
        return self.v

    def __repr__(self):
        return f"B({self.v!r})"


class L:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"L({self.n!r})"


class BoolAndLen:
    def __bool__(self):
        return True

    def __len__(self):
        return 0

    def __repr__(self):
        return "BoolAndLen()"


class RaisingBool:
    def __bool__(self):
        raise ValueError("no truth here")

    def __repr__(self):
        return "RaisingBool()"


class Plain:
    pass


TRUTH_VALUES = [
    0, 1, -1, 2**64, -2**64, 0.0, -0.0, NAN, 0.5, "", "a", " ", [], [0], (), (0,), {}, {0: 0},
    set(), {0}, frozenset(), None, b"", b"\0", bytearray(), range(0), range(1), 0j, 1j, True, False,
    B(True), B(False), B(1), B(None), RaisingBool(), L(0), L(3), L(-1), L(2**64), L(1.5), L(True),
    BoolAndLen(), Plain(), Plain, ..., (lambda: 0), NotImplemented,
]


@pytest.mark.parametrize("f,args,kwargs", cases(*[(op, (v,)) for op in (truth, truth_while) for v in TRUTH_VALUES]))
def test_truthiness(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.parametrize("f,args,kwargs", cases(
    (truth_short_circuit, ([], 0, 1)), (truth_short_circuit, ([], 1, 0)), (truth_short_circuit, ([], 2, 3)),
    (truth_short_circuit, ([], "", [])), (truth_short_circuit, ([], B(True), RaisingBool())),
    (truth_short_circuit, ([], RaisingBool(), 1)),
))
def test_short_circuit(f, args, kwargs):
    check(f, *args, **kwargs)


# --- objects compared and tested in loops (CompareIdentity, Truth of any object) --------

class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Eq:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, Eq) and self.v == other.v

    def __hash__(self):
        return hash(self.v)


class PlainSubEq(Plain):
    # A subclass with its own `__eq__`: tried first (reflected) against a Plain.
    def __eq__(self, other):
        return "sub-eq"


P1, P2 = Plain(), Plain()
IDENTITY_PAIRS = [
    (Color.RED, Color.RED), (Color.RED, Color.GREEN), (P1, P1), (P1, P2), (None, None),
    (None, P1), (P1, None), (Color.GREEN, P1), (1, P1), (P1, "x"), (Eq(1), Eq(1)),
    (Eq(1), P1), (P1, PlainSubEq()), (PlainSubEq(), P1), (Plain, Plain), (Plain, Eq),
]


def eq_loop(pairs, n):
    out = []
    for i in range(n):
        for a, b in pairs:
            out.append((a == b, a != b))
    return out


def test_identity_comparisons_in_a_loop():
    check(eq_loop, IDENTITY_PAIRS, 40)


def eq_changes(n):
    # A class gets rich comparisons mid-loop: its instances no longer compare by identity.
    class K:
        pass

    a, b = K(), K()
    out = []
    for i in range(n):
        out.append((a == b, a != b, a == a, a != a))
        if i == n // 4:
            K.__eq__ = lambda self, other: True
        if i == 2 * n // 4:
            del K.__eq__
            K.__ne__ = lambda self, other: "ne"
        if i == 3 * n // 4:
            del K.__ne__
            b.__class__ = Eq
            b.v = 0
    return out


def test_identity_comparisons_follow_class_changes():
    check(eq_changes, 120)


def truth_loop_catching(objs, n):
    # Truth of objects of every kind in a loop, raising ones caught inside it.
    out = []
    for i in range(n):
        for o in objs:
            try:
                out.append(1 if o else 0)
                out.append(not o)
            except (ValueError, TypeError, OverflowError) as e:
                out.append(type(e).__name__)
    return out


TRUTH_OBJECTS = [
    Plain(), B(True), B(False), L(0), L(2), RaisingBool(), B(None), L(-1), L(2**64), None, 3,
    "x", [], Color.RED, BoolAndLen(), Plain,
]


def test_truth_of_objects_in_a_loop():
    check(truth_loop_catching, TRUTH_OBJECTS, 30)


def truth_after_bools(objs, n):
    # A Truth site that meets only bools for half the loop (OSR compiles it for those),
    # then every kind: each new one is a failed guard until the code is recompiled.
    out = []
    for i in range(n):
        o = i % 2 == 0 if i < n // 2 else objs[i % len(objs)]
        try:
            out.append(1 if o else 0)
        except (ValueError, TypeError, OverflowError) as e:
            out.append(type(e).__name__)
    return out


def test_truth_of_new_kinds_after_bools():
    check(truth_after_bools, TRUTH_VALUES, 1500)


def test_truth_compiles_for_the_kinds_it_met():
    # A Truth site's native template tests only the kinds of operand tier 1 saw there:
    # met with bools alone, then with None, its code fails that guard (a deopt, the op
    # run in tier 1) until it is recompiled for both; from then on no more deopts.
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import stats, tiered

    def flags(xs):
        n = 0
        for x in xs:
            if x:
                n += 1
        return n

    fresh = types.FunctionType(flags.__code__.replace(co_name="flags_counted"), flags.__globals__)
    w = tiered(fresh, strict=True)
    bools = [True, False, True]
    mixed = [True, None, False, None]

    def warm_up():
        for _ in range(60):
            assert w(bools) == 2

    def measured():
        for _ in range(300):
            assert w(mixed) == 1

    compiles = None

    def counted_warm_up():
        nonlocal compiles
        warm_up()
        compiles = stats(w)["native_compiles"]

    counts = counted_ops(counted_warm_up, measured)
    assert counts["Truth"]["deopts"] > 0, counts["Truth"]
    assert stats(w)["native_compiles"] == compiles + 1, (compiles, stats(w))
    counts = counted_ops(lambda: None, measured)
    assert counts["Truth"]["tier1"] == 0 and counts["Truth"]["deopts"] == 0, counts["Truth"]


def test_object_comparisons_and_truth_stay_native():
    # Enum members and plain instances compared with `==` (CompareIdentity), and `if o:`
    # of instances with and without `__bool__`: native code, no tier-1 runs, no deopts.
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import dump, tiered

    def kinds(objs, k):
        n = 0
        for o in objs:
            if o == k:
                n += 1
            if o:
                n += 2
        return n

    fresh = types.FunctionType(kinds.__code__.replace(co_name="kinds_counted"), kinds.__globals__)
    w = tiered(fresh, strict=True)
    objs = [Color.RED, Color.GREEN, Plain(), B(False), L(3)]

    def warm_up():
        for _ in range(60):
            assert w(objs, Color.RED) == kinds(objs, Color.RED)

    def measured():
        for _ in range(10):
            w(objs, Color.RED)

    counts = counted_ops(warm_up, measured)
    assert "Compare[CompareIdentity] ==" in dump(w), dump(w)
    assert counts["Compare"] == {"tier1": 0, "tier2": 50, "deopts": 0}, counts["Compare"]
    assert counts["Truth"]["tier1"] == 0 and counts["Truth"]["deopts"] == 0, counts["Truth"]


# --- comparisons no variant fits, in a loop (CompareGeneric) ------------------------------

class Ord:
    # `<` answers with an object that is not a bool, raises for 13, and gives up
    # (NotImplemented) against anything else, so the reflected `>` decides.
    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        if not isinstance(other, Ord):
            return NotImplemented
        if self.v == 13:
            raise ValueError("thirteen")
        return B(self.v < other.v)

    def __gt__(self, other):
        return "gt"

    def __repr__(self):
        return f"Ord({self.v!r})"


def generic_compare_loop(n):
    out = []
    full = frozenset(range(10))
    for i in range(n):
        s = frozenset(range(i % 11))
        out.append((s <= full, s < full, s >= {1}, (i, "a") < (i, "b"), [i] == [i], [i] != [i + 1]))
        if s <= full and not s > full:
            out.append(i)
        try:
            r = Ord(i % 15) < Ord(7)
            out.append((r.v, 1 if r else 0))
        except ValueError as e:
            out.append(str(e))
        out.append(Ord(i) < i)
        try:
            out.append(s < i)
        except TypeError as e:
            out.append(str(e))
    return out


def test_generic_comparisons_in_a_loop():
    check(generic_compare_loop, 40)


def test_settled_generic_comparisons_stay_native():
    # A Compare site that observed its operands and found no variant (sets, tuples)
    # calls PyObject_RichCompare from native code: no tier-1 runs.
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import dump, tiered

    def subsets(sets, full):
        n = 0
        for s in sets:
            if s <= full:
                n += 1
            if (n, s) < (n, full):
                n += 2
        return n

    fresh = types.FunctionType(subsets.__code__.replace(co_name="subsets_counted"), subsets.__globals__)
    w = tiered(fresh, strict=True)
    sets = [frozenset(range(i)) for i in range(5)] + [frozenset({9})]
    full = frozenset(range(4))

    def warm_up():
        for _ in range(60):
            assert w(sets, full) == subsets(sets, full)

    def measured():
        for _ in range(10):
            w(sets, full)

    counts = counted_ops(warm_up, measured)
    assert "Compare[CompareGeneric]" not in dump(w)  # (a template, not a variant)
    assert counts["Compare"] == {"tier1": 0, "tier2": 120, "deopts": 0}, counts["Compare"]
