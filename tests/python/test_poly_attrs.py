"""Polymorphic attribute sites: a LoadAttr or StoreAttr site that sees instances of several
classes keeps one entry per class (AttrPoly: inline values, slots or an instance dict, each
with its own type and version guards), up to four, and goes back to the generic lookup
past that. Every way an entry can stop fitting must take the ordinary path: a class
mutated while cached (a property or slot added, the attribute deleted), `__class__`
reassigned, an instance whose `__dict__` is made, an attribute not set on one instance.
Also: a comprehension's function, made anew on every run of the code that makes it, is
called through its code, not guarded by the identity of the first one."""

import pytest

from harness import check, fresh, native_default_only
from tiered import dump, stats, tiered


class Base:
    def __init__(self, k):
        self.k = k
        self.tag = "base"


class A(Base):
    pass


class B(Base):
    def __init__(self, k):
        # Another order of attributes: `k` is at another index in B's shared keys.
        self.tag = "b"
        self.k = k


class C(Base):
    extra = 3


class D(Base):
    pass


class Slotted:
    __slots__ = ("k", "tag")

    def __init__(self, k):
        self.k = k
        self.tag = "slotted"


def dict_backed(cls, k):
    o = cls(k)
    vars(o)  # its `__dict__` made: the attributes are read from it
    return o


def read_and_write(objs, n):
    # One LoadAttr site and one StoreAttr site that see every receiver class.
    total = 0
    for i in range(n):
        for o in objs:
            total += o.k
            o.k = o.k + 1
            total += len(o.tag)
    return total, [o.k for o in objs]


RECEIVERS = {
    "1": lambda: [A(1)],
    "2": lambda: [A(1), B(2)],
    "4": lambda: [A(1), B(2), C(3), Slotted(4)],
    "4-dict-backed": lambda: [dict_backed(A, 1), B(2), dict_backed(C, 3), Slotted(4)],
    "6": lambda: [A(1), B(2), C(3), D(4), Base(5), Slotted(6)],
}


@pytest.mark.parametrize("kinds", sorted(RECEIVERS))
def test_polymorphic_attribute_sites(kinds):
    check(read_and_write, RECEIVERS[kinds](), 60)


def poly_changes(n):
    # A polymorphic site whose classes change under it. Each change is made mid-loop.
    class P:
        def __init__(self):
            self.v = 1

    class Q:
        def __init__(self):
            self.w = 0
            self.v = 2

    class R:
        __slots__ = ("v",)

        def __init__(self):
            self.v = 3

    class S:
        def __init__(self):
            self.v = 4

    objs = [P(), Q(), R(), S()]
    out = []
    for i in range(n):
        row = []
        for o in objs:
            try:
                row.append(o.v)
            except AttributeError as e:
                row.append(str(e))
            o.v = i
        out.append(row)
        if i == n // 8:
            P.v = property(lambda self: -1, lambda self, x: None)  # a data descriptor
        if i == 2 * n // 8:
            del objs[1].v  # not set on one instance (the next store sets it again)
        if i == 3 * n // 8:
            objs[3].__class__ = Q
        if i == 4 * n // 8:
            vars(objs[1])  # a `__dict__` made
        if i == 5 * n // 8:
            del P.v
        if i == 6 * n // 8:
            objs[0] = S()
        if i == 7 * n // 8:
            S.__getattr__ = lambda self, name: "missing"
            del objs[0].v
    return out


def test_polymorphic_attribute_sites_follow_class_changes():
    check(poly_changes, 160)


def raising_attrs(objs, n):
    # A polymorphic site where one class computes the attribute and raises.
    class Boom:
        @property
        def k(self):
            raise KeyError("boom")

    out = []
    for i in range(n):
        for o in objs + [Boom()] * (i % 7 == 3):
            try:
                out.append(o.k)
            except KeyError as e:
                out.append(repr(e))
    return out


def test_polymorphic_attribute_site_with_a_raising_property():
    check(raising_attrs, [A(1), B(2), Slotted(3)], 80)


def comprehensions(rows, n):
    # The comprehension's function is made anew each iteration, then called: a closure
    # (it reads `i`), or not (its code alone says it will be made again).
    total = 0
    for i in range(n):
        total += sum([x * i for x in rows if x % 3])
        total += len({x: x * 2 for x in rows})
        total += sum([x + 1 for x in rows])
    return total


def test_comprehension_functions():
    check(comprehensions, list(range(20)), 50)


def test_a_polymorphic_attribute_site_stays_native():
    # Warmed up with one class, then four: the sites widen (AttrPoly), the code is
    # recompiled with every class seen, and the calls after run natively without deopts.
    native_default_only()
    w = tiered(fresh(read_and_write, "read_and_write_fresh"), strict=True)
    for _ in range(40):
        w([A(1)], 20)
    for _ in range(40):
        four = RECEIVERS["4"]()
        assert w(four, 20) == read_and_write(RECEIVERS["4"](), 20)
    before = stats(w)
    for _ in range(20):
        w(RECEIVERS["4"](), 20)
    after = stats(w)
    text = dump(w)
    assert "LoadAttr[AttrPoly] 'k'" in text, text
    assert "StoreAttr[AttrPoly] 'k'" in text, text
    assert after["native_calls"] - before["native_calls"] == 20, (before, after)
    assert after["deopts"] == before["deopts"], (before, after)


def test_a_comprehension_call_does_not_deopt():
    # Each run makes a new function for the comprehension: the call site is guarded by
    # the function's code, so native code calls it directly every time.
    native_default_only()
    w = tiered(fresh(comprehensions, "comprehensions_fresh"), strict=True)
    for _ in range(60):
        w(list(range(20)), 5)
    before = stats(w)
    for _ in range(20):
        assert w(list(range(20)), 5) == comprehensions(list(range(20)), 5)
    after = stats(w)
    # Every call site quickened (none left generic after flipping between functions).
    quickened = dump(w).split("quickened IR")[1].split("== ")[0]
    assert quickened.count("Call[CallPyFunction]") == 3, quickened
    assert after["native_calls"] - before["native_calls"] == 20, (before, after)
    assert after["deopts"] == before["deopts"], (before, after)


def fresh_and_dict_made(n):
    # One class, two layouts at the same sites: a fresh instance keeps its attributes in
    # inline values, and one whose `__dict__` was made (`vars()`, as `copy` and pickle
    # do) has them in that dict. Reads, writes, first assignments, deletions, and a dict
    # grown past the class's shared keys.
    out = []
    for i in range(n):
        o = A(i)
        if i % 3 == 1:
            vars(o)
        if i % 5 == 2:
            vars(o)["extra_%d" % (i % 4)] = i
        if i % 7 == 3:
            del o.tag
        o.k = o.k * 2
        o.late = i
        try:
            out.append((o.k, o.tag, o.late))
        except AttributeError as e:
            out.append(str(e))
        out.append(sorted(vars(o).items()) if i % 4 == 0 else len(vars(o)))
    return out


def test_an_instance_site_serves_fresh_and_dict_made_instances():
    check(fresh_and_dict_made, 60)


def copy_and_read(n):
    out = 0
    for i in range(n):
        o = A(i)
        out += o.k
        if i % 2:
            vars(o)
        o.k = i + 1
        out += o.k + len(o.tag)
    return out


def test_fresh_and_dict_made_instances_do_not_deopt():
    # Instances whose `__dict__` is made at every other iteration: the inline-values
    # variants read and write either layout (the dict shares the class's keys), so the
    # sites keep their variant and the code stays native without deopts.
    native_default_only()
    w = tiered(fresh(copy_and_read, "copy_and_read_fresh"), strict=True)
    for _ in range(40):
        assert w(20) == copy_and_read(20)
    before = stats(w)
    for _ in range(20):
        w(20)
    after = stats(w)
    text = dump(w)
    assert "LoadAttr[AttrInstanceValue] 'k'" in text, text
    assert "StoreAttr[AttrInstanceValue] 'k'" in text, text
    assert after["native_calls"] - before["native_calls"] == 20, (before, after)
    assert after["deopts"] == before["deopts"], (before, after)
