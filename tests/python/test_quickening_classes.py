"""Class calls quickened (CallClass): `__init__`s plain and `@tiered`, with defaults and
keyword-only parameters, raising, returning non-None; `__new__`, metaclasses and slots;
`__init__` and its code swapped mid-loop. Every case agrees with CPython (each check runs
the same wrapper twice: generic, then quickened)."""

import pytest

from harness import cases, check
from tiered import stats, tiered


class Pair:
    def __init__(self, a, b=10, *, flag=False):
        if flag:
            self.b = b
            self.a = a
        else:
            self.a = a
            self.b = b


class PairChild(Pair):
    pass


class BadInit:
    def __init__(self, x):
        self.x = x
        if x == 3:
            return 5  # noqa: PLE0101
        if x == 4:
            raise ValueError("four")


class WithNew:
    def __new__(cls, x):
        o = object.__new__(cls)
        o.made_by_new = x
        return o

    def __init__(self, x):
        self.x = x


class Meta(type):
    def __call__(cls, *args):
        return ("meta", args)


class ByMeta(metaclass=Meta):
    def __init__(self, x):
        self.x = x


class Slotted2:
    __slots__ = ("u", "v")

    def __init__(self, u, v):
        self.u = u
        self.v = v


def instantiate_classes(n):
    # Calls of Python classes (object.__new__, then __init__ entered in our tiers):
    # defaults and keywords, attribute order in __dict__, subclasses, __init__ that
    # returns a value or raises, wrong argument counts, a class with __new__, a
    # metaclass with __call__, __slots__, and __init__ replaced mid-loop.
    out = []
    orig = Pair.__init__
    orig_code = orig.__code__
    try:
        _instantiate_loop(n, out)
    finally:
        Pair.__init__ = orig  # each run starts with the class as defined
        orig.__code__ = orig_code
    return out[-12:]


class TieredPair:
    """Every method decorated, as a user tiers a whole module: instantiating it from
    tiered code enters the wrapper of its __init__ directly."""

    @tiered
    def __init__(self, a, b=10, *, flag=False):
        self.a = a
        self.b = b if not flag else -b
        if a == 4:
            raise ValueError("four")
        if a == 5:
            return a  # noqa: PLE0101


class TieredPairChild(TieredPair):
    pass


@tiered
def _tiered_other_init(self, a, b=10, *, flag=False):
    self.w = (a, b, flag)


def instantiate_tiered_inits(n):
    out = []
    orig = TieredPair.__init__
    try:
        for i in range(n):
            try:
                p = TieredPair(i % 7, flag=i % 3 == 0)
                out.append((p.a, p.b, type(TieredPairChild(i, b=i)).__name__))
            except (TypeError, ValueError) as e:
                out.append((type(e).__name__, str(e)))
            if i == n // 2:
                TieredPair.__init__ = _tiered_other_init
                out.append(sorted(vars(TieredPair(7))))
    finally:
        TieredPair.__init__ = orig
    return out


def make_pairs(n):
    out = []
    for i in range(n):
        out.append(TieredPair(i + 10).a)
    return out


def test_a_class_with_a_tiered_init_is_called_as_call_class():
    # The call site quickens to CallClass (not CPython's type call, which would reach
    # the wrapper through slot_tp_init), and each call counts in the wrapper's stats.
    import os
    import types

    from tiered import dump

    if os.environ.get("TIERED_QUICKEN") == "0":
        pytest.skip("quickening is off")
    w = tiered(types.FunctionType(make_pairs.__code__.replace(co_name="make_fresh"), make_pairs.__globals__))
    before = stats(TieredPair.__init__)["calls"]
    for _ in range(5):
        assert w(20) == make_pairs(20)
    assert stats(TieredPair.__init__)["calls"] - before == 200
    assert "Call[CallClass]" in dump(w), dump(w)


def _other_init(self, a, b=10, *, flag=False):
    self.w = (a, b, flag)


def _instantiate_loop(n, out):
    for i in range(n):
        p = Pair(i, flag=i % 3 == 0)
        q = PairChild(i * 0.5)
        out.append((p.a, p.b, list(p.__dict__), list(vars(q)), type(q).__name__))
        try:
            out.append(BadInit(i % 6).x)
        except (TypeError, ValueError) as e:
            out.append((type(e).__name__, str(e)))
        try:
            Pair()
        except TypeError as e:
            out.append(str(e))
        w = WithNew(i)
        out.append((w.x, w.made_by_new, ByMeta(i), Slotted2(i, -i).v))
        if i == n // 3:
            # The function's code swapped: the class's version tag does not change.
            Pair.__init__.__code__ = _other_init.__code__
            out.append(sorted(vars(Pair(7))))
        if i == n // 2:
            Pair.__init__ = lambda self, a, b=1, flag=False: setattr(self, "z", a)
            out.append(sorted(vars(Pair(7))))


CASES = cases(
    (instantiate_classes, (30,)),
    (instantiate_tiered_inits, (30,)),
)


@pytest.mark.parametrize("f,args,kwargs", CASES)
def test_class_calls_agree(f, args, kwargs):
    check(f, *args, **kwargs)
