"""Self-tests of the harness: a wrong "tiered" must make check() fail.

These replace harness.tiered/harness.stats with fakes (no real tiering is
involved), so they pin down that the comparisons are as strict as documented.
"""

import pytest

import harness
from harness import normalize

FAIL = (AssertionError, pytest.fail.Exception)


class Fake:
    """A wrapper that calls f and then lets `tamper` change what it did."""

    def __init__(self, f, tamper=None, st=None):
        self.f = f
        self.tamper = tamper
        self.st = {"calls": 0, "fallback_calls": 0, "interp_calls": 0, "native_calls": 0,
                   "deopts": 0, "unsupported": [], "resumes": 0, "native_resumes": 0,
                   "cpython_resumes": 0, **(st or {})}

    def __call__(self, *a, **k):
        self.st["calls"] += 1
        self.st["interp_calls"] += 1
        r = self.f(*a, **k)
        return self.tamper(r, a) if self.tamper else r


def use_fake(monkeypatch, tamper=None, st=None):
    monkeypatch.delenv("TIERED_EXPECT_NATIVE", raising=False)
    made = []

    def fake_tiered(f, strict=False):
        w = Fake(f, tamper, None if st is None else dict(st, unsupported=list(st.get("unsupported", []))))
        made.append(w)
        return w

    monkeypatch.setattr(harness, "tiered", fake_tiered)
    monkeypatch.setattr(harness, "stats", lambda w: w.st)
    return made


def ident(x):
    return x


def raises_with(msg):
    raise ValueError(msg)


def chained():
    try:
        raise KeyError("a")
    except KeyError:
        raise ValueError("b")


def appends(lst):
    lst.append(1)
    return None


def prints(x):
    print(x)


def test_faithful_fake_passes(monkeypatch):
    use_fake(monkeypatch)
    harness.check(ident, float("nan"))
    harness.check(ident, [1, -0.0, {"a": (True, 1.0)}])
    harness.check(raises_with, "m")
    harness.check(appends, [])
    harness.check(prints, "out")


@pytest.mark.parametrize("value,tampered", [
    (-0.0, 0.0), (1, 1.0), (True, 1), (1, True), ([1], (1,)), ({"a": 1}, {"a": 1.0}),
    ({1, 2}, {1, 3}), (2**70, 2**70 + 1), ("a", b"a"),
])
def test_value_differences_are_caught(monkeypatch, value, tampered):
    use_fake(monkeypatch, tamper=lambda r, a: tampered)
    with pytest.raises(FAIL):
        harness.check(ident, value)


def test_exception_message_difference_is_caught(monkeypatch):
    def other(*a):
        raise ValueError("other")

    monkeypatch.setattr(harness, "tiered", lambda f, strict=False: Fake(other))
    monkeypatch.setattr(harness, "stats", lambda w: w.st)
    with pytest.raises(FAIL):
        harness.check(raises_with, "m")


def test_context_difference_is_caught(monkeypatch):
    def plain():
        raise ValueError("b")

    monkeypatch.setattr(harness, "tiered", lambda f, strict=False: Fake(plain))
    monkeypatch.setattr(harness, "stats", lambda w: w.st)
    with pytest.raises(FAIL):
        harness.check(chained)


def test_mutation_difference_is_caught(monkeypatch):
    def tamper(r, a):
        a[0].append(2)
        return r

    use_fake(monkeypatch, tamper=tamper)
    with pytest.raises(FAIL):
        harness.check(appends, [])


def test_stdout_difference_is_caught(monkeypatch):
    def tamper(r, a):
        print("extra")
        return r

    use_fake(monkeypatch, tamper=tamper)
    with pytest.raises(FAIL):
        harness.check(prints, "x")


class Box:
    pass


@pytest.mark.parametrize("arg", [[1, 2], {"k": 1}, Box(), [Box()]])
def test_a_reference_kept_is_caught(monkeypatch, arg):
    # A reference never released changes no result: the harness counts the references
    # to the call's fresh arguments (and their items) afterwards.
    kept = []

    def tamper(r, a):
        kept.append(a[0][0] if type(a[0]) is list and type(a[0][0]) is Box else a[0])
        return r

    use_fake(monkeypatch, tamper=tamper)
    with pytest.raises(FAIL, match="references to the arguments"):
        harness.check(ident, arg)


@pytest.mark.parametrize("st", [
    {"calls": 0, "fallback_calls": 1, "interp_calls": 0, "native_calls": 0, "deopts": 0, "unsupported": []},
    {"calls": 0, "fallback_calls": 0, "interp_calls": 0, "native_calls": 0, "deopts": 0,
     "unsupported": [{"op": "X", "reason": "r"}]},
])
def test_fallback_is_not_a_tier_pass(monkeypatch, st):
    made = use_fake(monkeypatch, st=st)

    # make the fake count a fallback instead of an interpreter call
    def fb_call(self, *a, **k):
        self.st["calls"] += 1
        self.st["fallback_calls"] += 1
        return self.f(*a, **k)

    monkeypatch.setattr(Fake, "__call__", fb_call)
    with pytest.raises(FAIL):
        harness.check(ident, 1)
    assert made


def test_no_interp_call_is_caught(monkeypatch):
    use_fake(monkeypatch)
    monkeypatch.setattr(harness, "stats", lambda w: dict(w.st, interp_calls=0))
    with pytest.raises(FAIL):
        harness.check(ident, 1)


def test_normalize_distinguishes():
    assert normalize(float("nan")) == normalize(float("nan"))
    assert normalize(-0.0) != normalize(0.0)
    assert normalize(1) != normalize(1.0) != normalize(True)
    assert normalize([1, (2, {3: "x"})]) == normalize([1, (2, {3: "x"})])
    assert normalize({1: 2, 3: 4}) != normalize({3: 4, 1: 2})  # dict order is observable
    a = []
    a.append(a)
    assert normalize(a) == normalize(a)  # cycles terminate


def counted_generator(n):
    yield from range(n)


@pytest.mark.parametrize("st", [
    # the generator's body never ran in our tiers
    {"resumes": 0},
    # a resumption ran in CPython's loop
    {"resumes": 2, "cpython_resumes": 1},
])
def test_generator_resumed_elsewhere_is_not_a_tier_pass(monkeypatch, st):
    use_fake(monkeypatch, st=st)
    with pytest.raises(FAIL):
        harness.check(counted_generator, 3)
