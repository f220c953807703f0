"""Adversarial differential tests of class instantiation (CallClass) with instance-dict
insertion order, quickened subscript stores, dict lookups (tricky int and str keys) and
str(); split from test_adversarial.py, written by a review that tried to break these
native paths. Each case must agree with CPython on every tier."""
import copy
import dataclasses
import pickle
import traceback

import pytest

from harness import cases, check, check_agrees


N = 3000

# ---------------------------------------------------------------- 4. CallClass

class P:
    def __init__(self, x, y=0):
        if x % 2:
            self.b = y
        self.a = x
        if x % 3 == 0:
            self.c = x * 1.5


def cls_dict_order(n):
    out = []
    for i in range(n):
        p = P(i, i + 1)
        out.append(tuple(vars(p)))
        out.append(list(p.__dict__.items()))
    return out[-12:], len(set(map(tuple, out[::2])))


class P2:
    def __init__(self, x):
        self.x = x


def p2_other_init(self, x):
    self.y = -x
    self.x = 0


def p2_code_init(self, x):
    self.z = x * 7


P2_INIT = P2.__init__
P2_CODE = P2.__init__.__code__


def cls_init_code_replaced(n):
    P2.__init__.__code__ = P2_CODE
    out = []
    try:
        for i in range(n):
            p = P2(i)
            out.append(sorted(vars(p).items()))
            if i == n // 2:
                P2.__init__.__code__ = p2_code_init.__code__
    finally:
        P2.__init__.__code__ = P2_CODE
    return out[n // 2 - 2: n // 2 + 3], out[-1]


class P3:
    def __init__(self, x, y=10):
        self.v = x + y


def cls_init_defaults_changed(n):
    P3.__init__.__defaults__ = (10,)
    t = 0
    try:
        for i in range(n):
            t += P3(i).v
            if i == n // 2:
                P3.__init__.__defaults__ = (1000,)
    finally:
        P3.__init__.__defaults__ = (10,)
    return t


def cls_init_reassigned(n):
    P2.__init__ = P2_INIT
    out = []
    try:
        for i in range(n):
            out.append(sorted(vars(P2(i)).items()))
            if i == n // 2:
                P2.__init__ = p2_other_init
    finally:
        P2.__init__ = P2_INIT
    return out[n // 2 - 1: n // 2 + 3]


class Base4:
    def __init__(self, x):
        self.x = x


class Sub4(Base4):
    pass


def cls_base_init_reassigned(n):
    Base4.__init__ = P2_INIT
    out = []
    try:
        for i in range(n):
            out.append(sorted(vars(Sub4(i)).items()))
            if i == n // 2:
                Base4.__init__ = p2_other_init
    finally:
        Base4.__init__ = P2_INIT
    return out[n // 2 - 1: n // 2 + 3]


def cls_new_added(n):
    class C:
        def __init__(self, x):
            self.x = x
    out = []
    for i in range(n):
        out.append(repr(C(i).__dict__))
        if i == n // 2:
            C.__new__ = lambda cls, x: "not an instance"
    return out[n // 2 - 1: n // 2 + 3]


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a):
        self.a = a
        if a % 2:
            self.b = -a


def cls_slots(n):
    out = []
    for i in range(n):
        s = Slotted(i)
        out.append((s.a, getattr(s, "b", None)))
    return out[-5:]


class InitSub:
    seen = []

    def __init_subclass__(cls, **kw):
        InitSub.seen.append(cls.__name__)


class ISChild(InitSub):
    def __init__(self, v):
        self.v = v


def cls_init_subclass(n):
    return sum(ISChild(i).v for i in range(n))


class Cattr:
    k = 1

    def __init__(self, x):
        self.x = x * Cattr.k


def cls_attr_changed(n):
    Cattr.k = 1
    t = 0
    for i in range(n):
        t += Cattr(i).x
        if i == n // 2:
            Cattr.k = 3
    Cattr.k = 1
    return t


class Other:
    def __init__(self, x):
        self.x = x

    def tag(self):
        return "other"


class Mine:
    def __init__(self, x):
        self.x = x
        if x % 10 == 0:
            self.__class__ = Other

    def tag(self):
        return "mine"


def cls_class_reassigned(n):
    out = []
    for i in range(n):
        o = Mine(i)
        out.append(o.tag())
    return out.count("other"), out[-11:]


class Pk:
    def __init__(self, a, b):
        self.b = b
        self.a = a


def cls_pickle_copy(n):
    out = []
    for i in range(n):
        p = Pk(i, str(i))
        if i % 500 == 0:
            q = pickle.loads(pickle.dumps(p))
            r = copy.copy(p)
            out.append((vars(q), vars(r), list(copy.deepcopy(p).__dict__)))
    return out


@dataclasses.dataclass
class DC:
    a: int
    b: float = 0.5


def cls_dataclass(n):
    t = 0
    out = None
    for i in range(n):
        d = DC(i)
        t += d.a + d.b
        out = d
    return t, repr(out), dataclasses.asdict(out)


class Raiser:
    def __init__(self, x):
        self.x = x
        if x % 100 == 7:
            raise ValueError(x)


def cls_init_raises(n):
    c = 0
    for i in range(n):
        try:
            Raiser(i)
        except ValueError as e:
            c += e.args[0]
    return c


def cls_init_raises_tb(n):
    for i in range(n):
        try:
            Raiser(i)
        except ValueError as e:
            return [fr.name for fr in traceback.extract_tb(e.__traceback__)], i


DELLOG = []


class WithDel:
    def __init__(self, x):
        self.x = x

    def __del__(self):
        DELLOG.append(self.x)


def cls_del(n):
    DELLOG.clear()
    for i in range(n):
        w = WithDel(i)
        if i % 2:
            w = None
    del w
    r = (len(DELLOG), DELLOG[:5], DELLOG[-3:])
    DELLOG.clear()
    return r


class SuperExplicit(Base4):
    def __init__(self, x):
        Base4.__init__(self, x)
        self.y = x + 1


class SuperTwoArg(Base4):
    def __init__(self, x):
        super(SuperTwoArg, self).__init__(x)
        self.y = x + 1


def cls_inherit(n):
    t = []
    for i in range(n):
        a = SuperExplicit(i)
        b = SuperTwoArg(i)
        t.append((list(vars(a)), list(vars(b))))
    return t[-1], len(t)


class KwInit:
    def __init__(self, a, *args, k=3, **kw):
        self.a = a
        self.args = args
        self.k = k
        self.kw = kw


def cls_kw(n):
    out = []
    for i in range(n):
        out.append(vars(KwInit(i, 1, 2, k=i, z=1)))
        out.append(vars(KwInit(i)))
    return out[-4:]


class BadInit:
    def __init__(self, x):
        self.x = x
        return x if x % 50 == 49 else None


def cls_bad_return(n):
    c = 0
    for i in range(n):
        try:
            BadInit(i)
        except TypeError as e:
            c += 1
            msg = str(e)
    return c, msg


class Attr1:
    def __init__(self, x):
        self.a = x


def cls_extra_attrs_after(n):
    out = []
    for i in range(n):
        o = Attr1(i)
        if i % 3 == 0:
            o.z = 1
        o.b = 2
        del o.a
        o.a = 3
        out.append(list(vars(o)))
    return out[-3:]


def cls_weakref_gc(n):
    import weakref
    refs = []
    for i in range(n):
        o = Attr1(i)
        refs.append(weakref.ref(o))
    return sum(r() is None for r in refs)


@pytest.mark.parametrize("f,args,kwargs", cases(
    (cls_dict_order, (N,)),
    (cls_init_code_replaced, (N,)),
    (cls_init_defaults_changed, (N,)),
    (cls_init_reassigned, (N,)),
    (cls_base_init_reassigned, (N,)),
    (cls_slots, (N,)),
    (cls_init_subclass, (N,)),
    (cls_attr_changed, (N,)),
    (cls_class_reassigned, (N,)),
    (cls_pickle_copy, (N,)),
    (cls_dataclass, (N,)),
    (cls_init_raises, (N,)),
    (cls_init_raises_tb, (N,)),
    (cls_inherit, (N,)),
    (cls_kw, (N,)),
    (cls_bad_return, (N,)),
    (cls_extra_attrs_after, (N,)),
    (cls_weakref_gc, (N,)),
))
def test_call_class(f, args, kwargs):
    check(f, *args, **kwargs)


def test_del_releases_at_once():
    check(cls_del, N)


@pytest.mark.parametrize("f,args,kwargs", cases((cls_new_added, (N,)),))
def test_call_class_agrees(f, args, kwargs):
    check_agrees(f, *args, **kwargs)


# ---------------------------------------------------------------- 5. StoreSubscr / dict lookups / str()

class LSub(list):
    def __setitem__(self, i, v):
        super(LSub, self).__setitem__(i, v * 2 if isinstance(v, int) else v)

    def __getitem__(self, i):
        return ("got", list.__getitem__(self, i))


class DSub(dict):
    def __missing__(self, k):
        return "missing:%r" % (k,)

    def __setitem__(self, k, v):
        dict.__setitem__(self, k, (v, "sub"))


class Idx:
    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


def sub_store_mix(n, containers):
    out = []
    for i in range(n):
        c = containers[i % len(containers)]
        k = i % 4
        try:
            c[k] = i
        except Exception as e:  # noqa: BLE001
            out.append(type(e).__name__)
    for c in containers:
        try:
            out.append(repr(c))
        except Exception:  # noqa: BLE001
            out.append("?")
    return out[-20:]


def sub_store_indices(n):
    xs = [0] * 5
    out = []
    idxs = [0, -1, -5, 4, True, False, Idx(2), Idx(-2), 5, -6, 2 ** 70, -(2 ** 70), 1.0, "a", Idx(10)]
    for i in range(n):
        k = idxs[i % len(idxs)]
        try:
            xs[k] = i
        except (IndexError, TypeError) as e:
            out.append(str(e))
    return xs, out[-15:]


class H:
    calls = [0, 0]

    def __init__(self, v):
        self.v = v

    def __hash__(self):
        H.calls[0] += 1
        return hash(self.v)

    def __eq__(self, o):
        H.calls[1] += 1
        return isinstance(o, H) and o.v == self.v


def sub_dict_custom_keys(n):
    H.calls[:] = [0, 0]
    d = {}
    keys = [H(i % 10) for i in range(20)]
    for i in range(n):
        k = keys[i % 20]
        d[k] = d.get(k, 0) + 1
        d[k] = d[k] + 1
    r = sorted((k.v, v) for k, v in d.items()), list(H.calls)
    return r


def sub_dict_mixed_keys(n):
    d = {1: "int", 1.0: "float?", "1": "str", (1,): "tuple", True: "bool", None: "none"}
    keys = [1, 1.0, "1", (1,), True, None, 2, "2", 10 ** 20, 2.5, frozenset(), -1]
    out = []
    for i in range(n):
        k = keys[i % len(keys)]
        try:
            out.append(d[k])
        except KeyError as e:
            out.append("KE" + repr(e.args))
        if i % 7 == 0:
            d["x" + str(i % 3)] = i
    return out[-24:], d


def sub_dict_unhashable(n):
    d = {}
    c = 0
    for i in range(n):
        k = [i] if i % 50 == 0 else i
        try:
            d[k] = i
            c += d[k]
        except TypeError as e:
            c -= 1
            msg = str(e)
    return c, msg, len(d)


class StrKey(str):
    def __hash__(self):
        return 42

    def __eq__(self, o):
        return True


def sub_dict_strsub_keys(n):
    d = {"a": 1, "b": 2}
    out = []
    for i in range(n):
        k = "a" if i % 3 else StrKey("zz")
        try:
            out.append(d[k])
        except KeyError:
            out.append(None)
    return out[-6:]


def sub_dict_mutated_in_eq(n):
    class Evil:
        def __hash__(self):
            return 1

        def __eq__(self, o):
            d.clear()
            return False
    d = {}
    out = []
    for i in range(n):
        d[i % 5] = i
        d[1] = i
        if i % 100 == 0:
            try:
                out.append(d[Evil()])
            except KeyError:
                out.append(len(d))
    return out[-5:]


def sub_list_del_during(n):
    log = []

    class Dd:
        def __init__(self, v):
            self.v = v

        def __del__(self):
            log.append(len(xs))
    xs = [Dd(i) for i in range(4)]
    for i in range(n):
        xs[i % 4] = Dd(i)
        if i % 300 == 0:
            xs.append(0)
            xs.pop()
    return len(log), log[-3:]


class WeirdStr:
    def __init__(self, i):
        self.i = i

    def __str__(self):
        if self.i % 4 == 0:
            return "s%d" % self.i
        if self.i % 4 == 1:
            return MyStr("m%d" % self.i)
        if self.i % 4 == 2:
            raise RuntimeError("no str")
        return 5


class MyStr(str):
    pass


def str_weird(n):
    out = []
    for i in range(n):
        try:
            s = str(WeirdStr(i))
            out.append((type(s).__name__, s))
        except Exception as e:  # noqa: BLE001
            out.append((type(e).__name__, str(e)))
    return out[-8:]


def str_various(n):
    vals = [1, 2.5, 10 ** 30, None, True, b"x", (1,), [2], {3: 4}, "s", MyStr("q"), 1j, ..., str, Ellipsis]
    out = []
    for i in range(n):
        out.append(str(vals[i % len(vals)]))
    return out[-15:]


def str_kw_and_multi(n):
    out = []
    for i in range(n):
        out.append(str(b"ab%d" % (i % 10), "ascii"))
        out.append(str(object=i))
        out.append(str())
        if i % 10 == 0:
            try:
                out.append(str(b"\xff", "utf-8"))
            except UnicodeDecodeError as e:
                out.append(e.reason)
    return out[-8:]


def str_shadowed_local(n):
    out = []
    str_ = str
    for i in range(n):
        f = str_ if i % 2 else repr
        out.append(f("a" if i % 3 else i))
    return out[-6:]


def str_rebuilt_builtin(n):
    import builtins
    orig = builtins.str
    out = []
    try:
        for i in range(n):
            out.append(str(i))
            if i == n // 2:
                builtins.str = lambda x: "X"
    finally:
        builtins.str = orig
    return out[n // 2 - 1: n // 2 + 3]


def str_global_shadow(n):
    global str
    out = []
    try:
        for i in range(n):
            out.append(str(i))
            if i == n // 2:
                str = lambda x: "G"  # noqa: E731
    finally:
        del str
    return out[n // 2 - 1: n // 2 + 3]


def builtin_classes_in_loop(n):
    out = []
    for i in range(n):
        out.append(int(str(i)) + len(tuple(range(i % 3))) + float(i) + bool(i % 2))
        out.append(type(i).__name__)
        out.append(len(list(filter(None, [i, 0, 1]))))
        try:
            int("x%d" % i)
        except ValueError:
            out.append(-1)
    return out[-8:], sum(x for x in out if isinstance(x, (int, float)))


def builtin_class_user_code(n):
    class It:
        def __init__(self, k):
            self.k = k

        def __iter__(self):
            return iter(range(self.k))
    t = 0
    for i in range(n):
        t += sum(list(It(i % 5)))
        t += len(dict(zip("abc", It(3))))
    return t


def builtin_class_exception_types(n):
    out = []
    for i in range(n):
        e = ValueError(i)
        k = KeyError("k")
        out.append((str(e), repr(k), str(k)))
    return out[-2:]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (sub_store_mix, (N, [[0] * 4, {}, LSub([0] * 4), DSub(), (0,) * 4, bytearray(4), [0]])),
    (sub_store_indices, (N,)),
    (sub_dict_custom_keys, (N,)),
    (sub_dict_mixed_keys, (N,)),
    (sub_dict_unhashable, (N,)),
    (sub_dict_strsub_keys, (N,)),
    (sub_dict_mutated_in_eq, (N,)),
    (sub_list_del_during, (N,)),
    (str_weird, (N,)),
    (str_various, (N,)),
    (str_kw_and_multi, (N,)),
    (str_shadowed_local, (N,)),
    (str_rebuilt_builtin, (N,)),
    (str_global_shadow, (N,)),
    (builtin_classes_in_loop, (N,)),
    (builtin_class_user_code, (N,)),
    (builtin_class_exception_types, (N,)),
))
def test_subscr_str(f, args, kwargs):
    check(f, *args, **kwargs)


# ---------------------------------------------------------------- more CallClass / insertion order

class Ord:
    def __init__(self, x, flag):
        if flag == 0:
            self.a = x
            self.b = x
            self.c = x
        elif flag == 1:
            self.c = x
            self.a = x
            self.b = x
        elif flag == 2:
            self.b = x
            d = self.__dict__
            self.c = len(d)
            self.a = x
        else:
            self.__dict__.update(z=1)
            self.b = x
            self.a = x


def ord_mixed(n):
    out = []
    for i in range(n):
        o = Ord(i, i % 4)
        o.c = 0
        out.append(list(vars(o)))
    pre = Ord(1, 1)
    out.append(list(vars(pre)))
    return out[-5:]


def ord_args_types(n):
    vals = [1, 1.5, "s", None, 10 ** 30, [1], True]
    out = []
    for i in range(n):
        o = Ord(vals[i % len(vals)], i % 3)
        out.append(repr(sorted(vars(o).items())))
    return out[-7:]


class Many:
    def __init__(self, k):
        for j in range(k):
            setattr(self, "a%d" % j, j)
        self.last = k


def ord_many_attrs(n):
    out = []
    for i in range(n // 10):
        o = Many(i % 40)
        o.extra = 1
        out.append(list(vars(o))[-3:])
    return out[-3:]


def ord_dict_replaced(n):
    out = []
    for i in range(n):
        o = Attr1(i)
        if i % 2:
            o.__dict__ = {"q": 1}
        o.b = 2
        out.append(list(vars(o)))
    return out[-2:]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (ord_mixed, (N,)),
    (ord_args_types, (N,)),
    (ord_many_attrs, (N,)),
    (ord_dict_replaced, (N,)),
))
def test_order(f, args, kwargs):
    check(f, *args, **kwargs)


# ---------------------------------------------------------------- dict lookups with tricky int/str keys

def dict_int_hash_edges(n):
    M = 2 ** 61 - 1
    ks = [-1, -2, 0, M, M + 1, -M, -M - 1, 2 ** 62 - 1, -(2 ** 62), 2 ** 63 - 1, -(2 ** 63), 1, 2.0]
    d = {k: i for i, k in enumerate(ks)}
    d[True] = "T"
    out = []
    for i in range(n):
        j = i % len(ks)
        k = ks[j] + 0 if isinstance(ks[j], int) else ks[j]
        k2 = (k - 1) + 1 if isinstance(k, int) else k
        try:
            out.append(d[k2])
        except KeyError as e:
            out.append(("KE", e.args))
        try:
            out.append(d[i - i - 1])
            out.append(d[i - i + M])
            out.append(d[i - i + 1])
        except KeyError as e:
            out.append(("KE2", e.args))
    return out[-30:]


def dict_fresh_str_keys(n):
    d = {"a0": 0, "a1": 1, "a2": 2}
    t = 0
    for i in range(n):
        k = "a" + str(i % 4)
        try:
            t += d[k]
        except KeyError:
            t -= 1
        d["b" + str(i % 5)] = i
    return t, sorted(d.items())


def store_index_side_effect(n):
    class Shrink:
        def __index__(self):
            xs.clear()
            return 0
    out = []
    for i in range(n):
        xs = [1, 2, 3]
        try:
            xs[Shrink() if i % 10 == 0 else i % 3] = i
        except IndexError as e:
            out.append(str(e))
        out.append(len(xs))
    return out[-12:]


@pytest.mark.parametrize("f,args,kwargs", cases(
    (dict_int_hash_edges, (N,)),
    (dict_fresh_str_keys, (N,)),
    (store_index_side_effect, (N,)),
))
def test_dict_edges(f, args, kwargs):
    check(f, *args, **kwargs)
