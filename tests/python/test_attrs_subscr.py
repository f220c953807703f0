"""Attribute get/set/del (instances, classes, modules, properties, slots,
__getattr__, descriptors) and subscripts/slices get/set/del."""

import collections
import math
import os
import types

import pytest

from harness import cases, check, counted_ops


class Obj:
    cls_attr = "on class"

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def method(self):
        return "method"

    def __repr__(self):
        return f"Obj({sorted(self.__dict__.items())!r})"


class Prop:
    def __init__(self, log):
        self.log = log
        self._v = 0

    @property
    def v(self):
        self.log.append("get")
        return self._v

    @v.setter
    def v(self, value):
        self.log.append(("set", value))
        if value < 0:
            raise ValueError("negative")
        self._v = value

    @v.deleter
    def v(self):
        self.log.append("del")
        self._v = None

    @property
    def ro(self):
        return "read only"

    @property
    def broken(self):
        raise AttributeError("inner attribute missing")

    def __repr__(self):
        return f"Prop(_v={self._v!r})"


class Slots:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1

    def __repr__(self):
        return f"Slots(a={getattr(self, 'a', '<unset>')!r}, b={getattr(self, 'b', '<unset>')!r})"


class Dyn:
    def __init__(self):
        self.real = "real"

    def __getattr__(self, name):
        if name.startswith("x"):
            return ("dynamic", name)
        raise AttributeError(f"Dyn has no {name!r}")

    def __repr__(self):
        return "Dyn()"


class Guarded:
    def __init__(self, log):
        object.__setattr__(self, "log", log)

    def __getattribute__(self, name):
        if name == "secret":
            return "intercepted"
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        self.log.append(("setattr", name, value))
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self.log.append(("delattr", name))
        object.__delattr__(self, name)

    def __repr__(self):
        return "Guarded()"


class Desc:
    def __get__(self, obj, objtype=None):
        return ("desc get", obj is None, objtype.__name__)

    def __set__(self, obj, value):
        obj.__dict__["_desc"] = ("desc set", value)


class HasDesc:
    d = Desc()

    def __repr__(self):
        return f"HasDesc({self.__dict__!r})"


class Base:
    who = "base"

    def hello(self):
        return "base hello " + self.who


class Child(Base):
    who = "child"


def get_instance_attr(o):
    return (o.a, o.cls_attr, o.method(), o.method.__name__)


def set_del_instance(o):
    o.a = 1
    o.a += 1
    o.b = [o.a]
    del o.a
    return (hasattr(o, "a"), o.b, getattr(o, "a", "gone"))


def missing_attr(o):
    return o.missing


def del_missing(o):
    del o.missing


def none_attr():
    x = None
    return x.foo


def int_attr_set():
    x = 5
    x.real = 3


# Case functions never contain a class statement (a class body may fall back);
# classes that a case mutates are made fresh with type().

def class_attr_rebind(log):
    K = type("K", (), {"v": 1})
    k = K()
    log.append(k.v)
    K.v = 2
    log.append(k.v)
    k.v = 3
    log.append((k.v, K.v))
    del k.v
    log.append(k.v)
    del K.v
    try:
        k.v
    except AttributeError as e:
        log.append(str(e))
    return log


def method_rebound_in_loop():
    K = type("K", (), {"m": lambda self: 1})
    k = K()
    out = []
    for i in range(6):
        out.append(k.m())
        if i == 2:
            K.m = lambda self: 2
        if i == 4:
            k.m = lambda: 3  # instance attribute shadows the method
    return out


def inheritance_lookup():
    c = Child()
    b = Base()
    before = (c.hello(), b.hello())
    Base.who = "patched"
    after = (c.hello(), b.hello())
    Base.who = "base"
    return before, after, Child.__mro__[1].__name__


def module_attrs():
    m = types.ModuleType("scratch")
    m.x = 1
    m.x += 1
    r = (math.pi, math.floor(2.5), m.x, collections.OrderedDict.__name__)
    del m.x
    return r, hasattr(m, "x")


def module_missing():
    return math.nope


def property_ops(p):
    a = p.v
    p.v = 5
    p.v += 1
    del p.v
    return a, p._v, p.ro


def property_errors(p, which):
    if which == 0:
        p.v = -1
    elif which == 1:
        p.ro = 1
    elif which == 2:
        del p.ro
    elif which == 3:
        return p.broken
    return "no error"


def slots_ops(s, which):
    s.b = 2
    if which == 0:
        s.c = 3
    elif which == 1:
        del s.b
        return s.b
    elif which == 2:
        return s.__dict__
    return s.a + s.b


def dyn_ops(d):
    return (d.real, d.xyz, getattr(d, "xa"), hasattr(d, "nope"), getattr(d, "nope", "dflt"))


def dyn_missing(d):
    return d.nope


def guarded_ops(g):
    g.x = 1
    del g.x
    return g.secret, g.log


def descriptor_ops(h):
    a = h.d
    h.d = 5
    return a, HasDesc.d, h.__dict__


def attr_on_builtins():
    return ((1).real, (1.5).imag, "abc".upper.__name__, [].append.__self__, (2**70).bit_length(),
            True.real, (3 + 4j).imag, int.__name__, type(None).__name__)


def attr_name_edges(o):
    setattr(o, "with space", 1)
    setattr(o, "class", 2)
    return getattr(o, "with space"), getattr(o, "class"), vars(o) is o.__dict__


ATTRS = cases(
    (get_instance_attr, (Obj(a=1),)), (get_instance_attr, (Obj(),)), (set_del_instance, (Obj(),)),
    (missing_attr, (Obj(),)), (missing_attr, (5,)), (missing_attr, (Obj,)), (del_missing, (Obj(),)),
    (del_missing, ("x",)), (none_attr, ()), (int_attr_set, ()), (class_attr_rebind, ([],)),
    (method_rebound_in_loop, ()), (inheritance_lookup, ()), (module_attrs, ()), (module_missing, ()),
    (property_ops, (Prop([]),)), (property_errors, (Prop([]), 0)), (property_errors, (Prop([]), 1)),
    (property_errors, (Prop([]), 2)), (property_errors, (Prop([]), 3)), (property_errors, (Prop([]), 4)),
    (slots_ops, (Slots(), 0)), (slots_ops, (Slots(), 1)), (slots_ops, (Slots(), 2)), (slots_ops, (Slots(), 3)),
    (dyn_ops, (Dyn(),)), (dyn_missing, (Dyn(),)), (guarded_ops, (Guarded([]),)), (descriptor_ops, (HasDesc(),)),
    (attr_on_builtins, ()), (attr_name_edges, (Obj(),)),
)


@pytest.mark.parametrize("f,args,kwargs", ATTRS)
def test_attributes(f, args, kwargs):
    check(f, *args, **kwargs)


# --- subscripts ----------------------------------------------------------------

def getitem(c, i):
    return c[i]


def setitem(c, i, v):
    c[i] = v
    return c


def delitem(c, i):
    del c[i]
    return c


def getslice(c, a, b):
    return c[a:b]


def getslice3(c, a, b, s):
    return c[a:b:s]


def setslice(c, a, b, v):
    c[a:b] = v
    return c


def setslice3(c, a, b, s, v):
    c[a:b:s] = v
    return c


def delslice(c, a, b, s):
    del c[a:b:s]
    return c


def aug_subscr(log):
    d = {"k": 1}
    lst = [1, 2]

    def idx(x):
        log.append(("index", x))
        return x

    d[idx("k")] += 10
    lst[idx(-1)] *= 3
    lst[idx(0)] -= 1
    return d, lst, log


def aug_subscr_missing():
    d = {}
    d["nope"] += 1


class Idx:
    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v

    def __repr__(self):
        return f"Idx({self.v})"


class Custom:
    def __init__(self, log):
        self.log = log

    def __getitem__(self, k):
        self.log.append(("get", k))
        if k == "missing":
            raise KeyError(k)
        return ("item", k)

    def __setitem__(self, k, v):
        self.log.append(("set", k, v))

    def __delitem__(self, k):
        self.log.append(("del", k))

    def __repr__(self):
        return "Custom()"


class Missing(dict):
    def __missing__(self, key):
        return ("missing", key)


def custom_ops(c):
    a = c[1]
    b = c[1:2]
    e = c[1, 2]
    g = c[::2]
    c["k"] = 5
    c[1:3] = "xy"
    del c["k"]
    del c[:]
    return a, b, e, g


def defaultdict_ops():
    d = collections.defaultdict(list)
    d["a"].append(1)
    d["b"]
    return dict(d)


SEQ = [10, 20, 30, 40, 50]
SUBSCR = cases(
    # get
    *[(getitem, (c, i)) for c in (SEQ, tuple(SEQ), "abcde", b"abcde", range(10, 60, 10), bytearray(b"abcde"))
      for i in (0, 4, -1, -5, 5, -6, True, 2**70, -(2**70), 1.0, "x", None, Idx(2), slice(1, 3))],
    (getitem, ({"a": 1, 1: "one"}, "a")), (getitem, ({"a": 1, 1: "one"}, 1.0)),
    (getitem, ({"a": 1, 1: "one"}, True)), (getitem, ({"a": 1}, "b")), (getitem, ({"a": 1}, [])),
    (getitem, ({(1, 2): 3}, (1, 2))), (getitem, ({}, ("t",))), (getitem, (Missing(a=1), "a")),
    (getitem, (Missing(), "zz")), (getitem, (5, 0)), (getitem, (None, 0)), (getitem, (set([1]), 0)),
    (getitem, (Custom([]), "missing")), (getitem, (int, 0)), (getitem, (list, int)),
    # set
    (setitem, ([1, 2, 3], 0, "x")), (setitem, ([1, 2, 3], -1, "x")), (setitem, ([1, 2, 3], 3, "x")),
    (setitem, ([1, 2, 3], -4, "x")), (setitem, ([1], "a", 0)), (setitem, ((1, 2), 0, 0)),
    (setitem, ("ab", 0, "x")), (setitem, ({}, "k", 1)), (setitem, ({}, [], 1)), (setitem, ({1: 1}, 1.0, 2)),
    (setitem, (bytearray(b"ab"), 0, 65)), (setitem, (bytearray(b"ab"), 0, 256)), (setitem, ([0], Idx(0), 1)),
    # del
    (delitem, ([1, 2, 3], 0)), (delitem, ([1, 2, 3], -1)), (delitem, ([1, 2, 3], 3)), (delitem, ({1: 2}, 1)),
    (delitem, ({1: 2}, 2)), (delitem, ((1,), 0)), (delitem, ("a", 0)),
    # slices
    *[(getslice, (c, a, b)) for c in (SEQ, "abcde", (1, 2, 3)) for (a, b) in
      ((1, 3), (None, 2), (-2, None), (3, 1), (-100, 100), (2**70, None), (None, None))],
    *[(getslice3, (SEQ, a, b, s)) for (a, b, s) in
      ((None, None, -1), (None, None, 2), (4, 0, -2), (0, 5, 0), (1, None, 3), (None, None, -2**70))],
    (getslice3, ("abcdef", None, None, -1)), (getslice, (SEQ, "a", None)), (getslice, (SEQ, 1.5, 2)),
    (getslice, (5, 1, 2)),
    (setslice, ([1, 2, 3, 4], 1, 3, ["a"])), (setslice, ([1, 2, 3], 0, 0, "xy")), (setslice, ([1, 2], 0, 2, [])),
    (setslice, ([1, 2], 0, 1, 5)), (setslice, ((1, 2), 0, 1, [0])),
    (setslice3, ([1, 2, 3, 4], None, None, 2, "ab")), (setslice3, ([1, 2, 3, 4], None, None, 2, "abc")),
    (setslice3, ([1, 2, 3, 4], None, None, -1, [4, 3, 2, 1])),
    (delslice, ([1, 2, 3, 4, 5], None, None, 2)), (delslice, ([1, 2, 3], 0, 2, None)),
    (delslice, ([1, 2, 3], None, None, -1)),
    # misc
    (aug_subscr, ([],)), (aug_subscr_missing, ()), (custom_ops, (Custom([]),)), (defaultdict_ops, ()),
)


@pytest.mark.parametrize("f,args,kwargs", SUBSCR)
def test_subscripts(f, args, kwargs):
    check(f, *args, **kwargs)


def index_loop(xs):
    # a quickened list-index op meets a negative index, then an out-of-range one
    total = 0
    for i in range(-len(xs), len(xs) + 1):
        try:
            total += xs[i]
        except IndexError as e:
            total += len(str(e))
    return total


def dict_loop(d, keys):
    out = []
    for k in keys:
        try:
            out.append(d[k])
        except KeyError as e:
            out.append(("KeyError", e.args))
    return out


def store_loop(n):
    lst = [0] * n
    d = {}
    for i in range(n):
        lst[i] = i * i
        lst[-1 - i] += 1
        d[i % 3] = d.get(i % 3, 0) + i
    return lst, d


@pytest.mark.parametrize("f,args,kwargs", cases(
    (index_loop, ([1, 2, 3],)), (index_loop, ((1.5, 2.5),)), (dict_loop, ({1: "a", 2.0: "b"}, [1, 2, 3, 1.0, True])),
    (store_loop, (10,)),
))
def test_subscript_loops(f, args, kwargs):
    check(f, *args, **kwargs)


class Squares:
    """A user type's `__getitem__`/`__setitem__` (raising for negative keys)."""

    def __init__(self):
        self.stored = {}

    def __getitem__(self, k):
        if k < 0:
            raise KeyError(k)
        return k * k

    def __setitem__(self, k, v):
        if k < 0:
            raise IndexError(k)
        self.stored[k] = v


def generic_subscripts(xs, s, n):
    # Sites no variant fits (slices, a str, a user type), in a loop, raising now and then
    # inside `try`: BuildSlice and the generic Subscr/StoreSubscr templates.
    out = []
    sq = Squares()
    for i in range(n):
        out.append(xs[i:i + 2])
        out.append(xs[-i - 1::-1])
        out.append(s[i % len(s)])
        try:
            out.append(xs[::i - 2])
        except ValueError as e:
            out.append(str(e))
        try:
            out.append(sq[i - 2])
        except KeyError as e:
            out.append(("KeyError", e.args))
        ys = list(xs)
        ys[i:i + 1] = "ab"
        ys[1:3] = []
        out.append(ys)
        try:
            sq[2 - i] = i
        except IndexError as e:
            out.append(("IndexError", e.args))
        try:
            ys["k"] = 1
        except TypeError as e:
            out.append(str(e))
    out.append(sq.stored)
    return out


def test_generic_subscripts_in_a_loop():
    check(generic_subscripts, [1, 2, 3, 4, 5], "hello", 6)
    check(generic_subscripts, (1.5, "x", None), "ab", 4)


def test_settled_generic_subscripts_stay_native():
    # A site that observed its operands and found no variant calls the generic operation
    # from native code directly (SubscrGeneric, StoreSubscrGeneric); BuildSlice likewise.
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import tiered

    def slices(xs, s):
        ys = list(xs)
        ys[1:3] = s[1:]
        return xs[1:-1], s[0], ys

    fresh = types.FunctionType(slices.__code__.replace(co_name="slices_counted"), slices.__globals__)
    w = tiered(fresh, strict=True)

    def warm_up():
        for _ in range(60):
            assert w([1, 2, 3], "abc") == ([2], "a", [1, "b", "c"])

    def measured():
        for _ in range(10):
            w([1, 2, 3], "abc")

    counts = counted_ops(warm_up, measured)
    assert counts["Subscr"] == {"tier1": 0, "tier2": 30, "deopts": 0}, counts["Subscr"]
    assert counts["StoreSubscr"] == {"tier1": 0, "tier2": 10, "deopts": 0}, counts["StoreSubscr"]
    assert counts["BuildSlice"]["tier1"] == 0 and counts["BuildSlice"]["tier2"] == 30, counts["BuildSlice"]


class Guarded:
    """A property with a setter, both raising now and then, and `__getattr__` for names
    the instance lacks: attribute sites no variant fits."""

    def __init__(self):
        self._v = 0

    @property
    def v(self):
        if self._v == 3:
            raise ValueError("three")
        return self._v * 10

    @v.setter
    def v(self, x):
        if x < 0:
            raise AttributeError("negative")
        self._v = x

    def __getattr__(self, name):
        if name.startswith("dyn"):
            return name.upper()
        raise AttributeError(name)


def generic_attributes(lst, n):
    # LoadAttr/StoreAttr sites that settle generic, in a loop, raising now and then inside
    # `try`: a builtin type's method read as an attribute (a new object each read), a
    # property and its setter, `__getattr__` found and missing, a function's attribute.
    out = []
    g = Guarded()
    for i in range(n):
        app = lst.append
        app(i)
        try:
            g.v = i - 2
            out.append(g.v)
        except (AttributeError, ValueError) as e:
            out.append((type(e).__name__, e.args))
        out.append(g.dyn_x)
        try:
            out.append(g.missing)
        except AttributeError as e:
            out.append(("AttributeError", e.args))
        out.append(generic_attributes.__name__)
        generic_attributes.calls = i
    out.append(lst)
    return out


def test_generic_attributes_in_a_loop():
    check(generic_attributes, [], 8)


def test_settled_generic_attributes_stay_native():
    # A LoadAttr or StoreAttr site that observed its operands and found no variant calls
    # PyObject_GetAttr/PyObject_SetAttr from native code directly (AttrGeneric,
    # StoreAttrGeneric).
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import tiered

    def reads(lst, g):
        app = lst.append
        app(g.v)
        g.v = 2
        return g.dyn_y

    fresh = types.FunctionType(reads.__code__.replace(co_name="reads_counted"), reads.__globals__)
    w = tiered(fresh, strict=True)

    def warm_up():
        for _ in range(60):
            assert w([], Guarded()) == "DYN_Y"

    def measured():
        for _ in range(10):
            w([], Guarded())

    counts = counted_ops(warm_up, measured)
    assert counts["LoadAttr"] == {"tier1": 0, "tier2": 30, "deopts": 0}, counts["LoadAttr"]
    assert counts["StoreAttr"] == {"tier1": 0, "tier2": 10, "deopts": 0}, counts["StoreAttr"]


class Flags:
    """Attribute stores of every kind of value a register holds: bools (a compare's or a
    constant's), unboxed ints and floats (boxed in place first), objects."""

    def __init__(self):
        self.done = True
        self.count = 0
        self.ratio = 0.5
        self.name = "x"

    def update(self, n, x):
        self.done = n < 3
        self.count = n + 1
        self.ratio = x * 2.0
        self.name = "y" if n else None
        self.done = False
        return self


def store_kinds(n):
    f = Flags()
    seen = []
    for i in range(n):
        f.update(i, i / 4)
        seen.append((f.done, f.count, f.ratio, f.name))
    return seen


def test_attribute_stores_of_each_kind_of_value():
    check(store_kinds, 30)


def test_bool_and_number_stores_stay_native():
    # A bool or an unboxed number stored into an instance attribute is made an object by
    # the template (a number boxed out of line), not handed to the generic op.
    if os.environ.get("TIERED_JIT") == "0" or not os.environ.get("TIERED_PYTEST_DEFAULT"):
        pytest.skip("measures the default thresholds' native code")
    from tiered import tiered

    # A code object of its own, quickened by nothing else.
    fresh = types.FunctionType(Flags.update.__code__.replace(co_name="update_fresh"), Flags.update.__globals__)
    w = tiered(fresh, strict=True)
    f = Flags()
    # Counting on before the code is compiled: native code counts only if built to.

    def warm_up():
        for i in range(60):
            w(f, i, 0.25)

    def measured():
        for i in range(50):
            w(f, i, 0.25)

    counts = counted_ops(warm_up, measured)["StoreAttr"]
    assert counts["tier2"] == 250 and counts["tier1"] == 0, counts
