"""Building containers and strings (literals, unpacking displays, f-strings,
concatenation) and unpacking assignments."""

import datetime
import decimal

import pytest

from harness import cases, check, counted_ops


def literals(a, b):
    return ([a, b], (a, b), {a: b}, {a, b}, [], (), {}, [[a], (b,)], (a,), {a: [b], b: {a}})


def dict_literal_dupes(a):
    return ({1: "a", 1: "b"}, {1: "a", True: "b", 1.0: "c"}, {a: 1, a: 2}, {"x": 1, **{"x": 2}})  # noqa: F601


def set_literal_dupes():
    x = 1
    return ({x, True, 1.0}, {0, False, 0.0, -0.0}, {"a", "a"})


def unhashable_in_set(a):
    return {1, a}


def unhashable_in_dict(a):
    return {a: 1}


def list_unpack(a, b):
    return [*a, *b]


def tuple_unpack(a, b):
    return (*a, 0, *b)


def set_unpack(a, b):
    return {*a, *b}


def dict_unpack(d, e):
    return ({**d, "k": 1}, {"k": 1, **d}, {**d, **e}, {**e, **d})


def unpack_order(log):
    def v(x):
        log.append(x)
        return [x]
    return [*v(1), v(2), *v(3)], log


def call_unpack_generic(a):
    return [*a]


def dict_unpack_bad(a):
    return {**a}


class Mapping:
    def keys(self):
        return ["a", "b"]

    def __getitem__(self, k):
        return k.upper()

    def __repr__(self):
        return "Mapping()"


BUILD = cases(
    (literals, (1, 2)), (literals, ("x", 2.5)), (literals, (None, None)), (dict_literal_dupes, ("k",)),
    (set_literal_dupes, ()), (unhashable_in_set, ([],)), (unhashable_in_set, ({},)), (unhashable_in_dict, ([],)),
    (list_unpack, ([1], (2, 3))), (list_unpack, ("ab", range(2))), (list_unpack, ({"k": 1}, {5})),
    (list_unpack, ([], [])), (list_unpack, (1, [2])), (list_unpack, ([1], None)), (tuple_unpack, ([1], "z")),
    (tuple_unpack, (5, ())), (set_unpack, ([1, 1], (1, 2))), (set_unpack, ([[]], ())),
    (dict_unpack, ({"a": 1}, {"b": 2, "a": 3})), (dict_unpack, ({}, {})), (dict_unpack, ({"k": 0}, {"k": 2})),
    (dict_unpack, (Mapping(), {"b": 0})), (unpack_order, ([],)), (call_unpack_generic, (range(3),)),
    (dict_unpack_bad, (1,)), (dict_unpack_bad, ([1],)), (dict_unpack_bad, ([("a", 1)],)),
    (dict_unpack_bad, (Mapping(),)),
)


@pytest.mark.parametrize("f,args,kwargs", BUILD)
def test_build(f, args, kwargs):
    check(f, *args, **kwargs)


# --- strings --------------------------------------------------------------------

class Fmt:
    def __format__(self, spec):
        return f"<Fmt spec={spec!r}>"

    def __repr__(self):
        return "Fmt-repr"

    def __str__(self):
        return "Fmt-str"


class BadStr:
    def __str__(self):
        return 42

    def __repr__(self):
        return "BadStr()"


def fstring_conversions(x):
    return (f"{x}", f"{x!r}", f"{x!s}", f"{x!a}", f"[{x}]", f"{x}{x}", f"{x=}", f"{x = !r}")


def fstring_specs(x, w, p):
    return (f"{x:>10}", f"{x:<{w}}", f"{x:^{w}.{p}}", f"{x!r:>{w}}", f"{{literal}} {x}")


def fstring_numbers(v, w, p):
    return (f"{v:{w}.{p}f}", f"{v:+,}", f"{v:e}", f"{v:08.3f}", f"{v:%}", f"{v:_}", f"{v!r:>20}")


def fstring_ints(n):
    return (f"{n:x}", f"{n:#o}", f"{n:b}", f"{n:,}", f"{n:_d}", f"{n:c}" if 0 <= n < 0x110000 else "", f"{n:=+10}")


def fstring_bad_spec(x, spec):
    return f"{x:{spec}}"


def fstring_date():
    d = datetime.date(2024, 2, 29)
    return f"{d:%Y/%m/%d} {d!r} {d}"


def fstring_decimal():
    d = decimal.Decimal("1.005")
    return f"{d:.2f} {d!s} {d:>10}"


def fstring_nested_quotes(d):
    return f"{d['k']!r:>5}|{'-'.join(str(i) for i in [1, 2])}|{len(d)}"


def str_concat(a, b):
    s = a + b
    s += "!"
    s = s * 2
    return s, a + " " + b, "".join([a, b]), "%s/%r" % (a, b), "{}{}".format(a, b), a * 0


def str_build_loop(n):
    s = ""
    for i in range(n):
        s += str(i)
        if len(s) > 20:
            s = s[5:]
    return s


def str_methods_mix(s):
    return (s.upper(), s.lower(), s.strip(), s.replace("a", "b"), s.split(), s[::-1], s.encode("utf-8"),
            s.center(11, "*"), s.startswith(("a", "x")), s.find("z"), s.title(), s.zfill(8), len(s))


def bad_str_conversion(x):
    return f"{x}"


STRINGS = cases(
    (fstring_conversions, ("héllo",)), (fstring_conversions, (1.5,)), (fstring_conversions, ([1, "a"],)),
    (fstring_conversions, (Fmt(),)), (fstring_conversions, (None,)), (fstring_conversions, ("\n\x00'\"",)),
    (fstring_specs, ("ab", 6, 1)), (fstring_specs, (Fmt(), 3, 2)), (fstring_specs, ("abc", 0, 0)),
    (fstring_numbers, (3.14159, 10, 2)), (fstring_numbers, (-0.0, 1, 0)), (fstring_numbers, (float("nan"), 5, 1)),
    (fstring_numbers, (1e300, 3, 3)), (fstring_numbers, (12345678, 12, 1)), (fstring_numbers, (True, 1, 1)),
    (fstring_ints, (255,)), (fstring_ints, (-255,)), (fstring_ints, (2**70,)), (fstring_ints, (65,)),
    (fstring_bad_spec, (1, "q")), (fstring_bad_spec, ("s", "d")), (fstring_bad_spec, (1.5, ",x")),
    (fstring_bad_spec, (object(), "x")), (fstring_bad_spec, (None, "")), (fstring_date, ()), (fstring_decimal, ()),
    (fstring_nested_quotes, ({"k": "v"},)), (str_concat, ("ab", "cd")), (str_concat, ("", "")),
    (str_concat, ("a", 1)), (str_build_loop, (30,)), (str_methods_mix, (" a Banana ",)), (str_methods_mix, ("ß",)),
    (bad_str_conversion, (BadStr(),)),
)


@pytest.mark.parametrize("f,args,kwargs", [p for p in STRINGS if "nested_quotes" not in p.id])
def test_strings(f, args, kwargs):
    check(f, *args, **kwargs)


@pytest.mark.genexpr
@pytest.mark.parametrize("f,args,kwargs", [p for p in STRINGS if "nested_quotes" in p.id])
def test_strings_with_genexpr(f, args, kwargs):
    check(f, *args, **kwargs)


# --- unpacking assignment ---------------------------------------------------------

def swap(a, b):
    a, b = b, a
    return a, b


def rotate3(a, b, c):
    a, b, c = b, c, a
    return a, b, c


def unpack2(x):
    a, b = x
    return a, b


def unpack3(x):
    a, b, c = x
    return a, b, c


def unpack_star_mid(x):
    a, *b, c = x
    return a, b, c


def unpack_star_first(x):
    *a, b = x
    return a, b


def unpack_star_only(x):
    *a, = x
    return a


def unpack_nested(x):
    (a, (b, c)), d = x
    return a, b, c, d


def unpack_for(pairs):
    out = []
    for i, (a, *rest) in enumerate(pairs):
        out.append((i, a, rest))
    return out


def unpack_targets(log):
    o = type("O", (), {})()
    lst = [0, 0]
    d = {}
    o.a, lst[1], d["k"] = 1, 2, 3
    (log.append, lst[0])[0]("evaluated")
    return vars(o), lst, d, log


class LoggingIter:
    def __init__(self, log):
        self.i = 0
        self.log = log

    def __iter__(self):
        return self

    def __next__(self):
        self.i += 1
        self.log.append(self.i)
        if self.i > 3:
            raise StopIteration
        return self.i


def unpack_iter_once(log):
    a, b, c = LoggingIter(log)
    return a, b, c, log


def unpack_chain_assign(x):
    a = b = c = x
    a += [1] if isinstance(a, list) else 1
    return a, b, c


UNPACK = cases(
    (swap, (1, 2)), (rotate3, (1, "b", None)), (unpack2, ((1, 2),)), (unpack2, ([1, 2],)), (unpack2, ("xy",)),
    (unpack2, ({"a": 1, "b": 2},)), (unpack2, (range(2),)), (unpack2, ((1, 2, 3),)), (unpack2, ((1,),)),
    (unpack2, ((),)), (unpack2, (5,)), (unpack2, (None,)), (unpack2, ("xyz",)), (unpack2, (iter([1, 2, 3]),)),
    (unpack3, ([1, 2],)), (unpack3, ({1, 2, 3},)),
    (unpack_star_mid, ([1, 2, 3, 4],)), (unpack_star_mid, ([1, 2],)), (unpack_star_mid, ([1],)),
    (unpack_star_mid, ("abc",)), (unpack_star_mid, (5,)), (unpack_star_first, (range(4),)),
    (unpack_star_first, ([],)), (unpack_star_only, ((1, 2),)), (unpack_star_only, ("",)),
    (unpack_nested, (((1, (2, 3)), 4),)), (unpack_nested, (((1, (2,)), 4),)), (unpack_nested, (((1, 2), 4),)),
    (unpack_for, ([(1, 2, 3), [4], "xy"],)), (unpack_for, ([(1,), ()],)), (unpack_targets, ([],)),
    (unpack_iter_once, ([],)), (unpack_chain_assign, ([0],)), (unpack_chain_assign, (0,)),
)


@pytest.mark.parametrize("f,args,kwargs", UNPACK)
def test_unpack(f, args, kwargs):
    check(f, *args, **kwargs)


# --- dict displays and cells in a loop (BuildMap, MakeCell) -------------------------------

class LoggedKey:
    # Its hash and equality are observable: each must run exactly as often as CPython
    # runs them (a rerun of the op would show).
    def __init__(self, log, k):
        self.log, self.k = log, k

    def __hash__(self):
        self.log.append(("hash", self.k))
        if self.k == "boom":
            raise RuntimeError("unhashable today")
        return hash(self.k % 3 if isinstance(self.k, int) else self.k)

    def __eq__(self, other):
        self.log.append(("eq", self.k))
        return isinstance(other, LoggedKey) and self.k % 3 == other.k % 3


def dict_displays_loop(n):
    log = []
    out = []
    for i in range(n):
        a, b = "k%d" % (i % 3), i * 2
        d = {a: i, b: a, "k0": -1, i % 2: None}
        out.append(sorted(d.items(), key=repr))
        out.append({LoggedKey(log, i): 1, LoggedKey(log, i + 3): 2})
        try:
            out.append({LoggedKey(log, "ok"): 1, LoggedKey(log, "boom" if i % 4 == 1 else i): 2})
        except RuntimeError as e:
            out.append(str(e))
        try:
            out.append({[i]: 1})
        except TypeError as e:
            out.append(str(e))
    return [repr(x) if not isinstance(x, dict) else len(x) for x in out], log


def test_dict_displays_in_a_loop():
    check(dict_displays_loop, 30)


def cells_loop(n, k):
    # A cell made at each call (for `acc`, assigned later) and for an argument (`k`).
    def inner(j):
        acc = j

        def get():
            return acc + k

        acc += 1
        return get()

    return [inner(j) for j in range(n)]


def test_cells_made_in_a_loop():
    check(cells_loop, 40, 5)


def test_dict_displays_and_cells_stay_native():
    import types

    from harness import native_default_only
    from tiered import tiered

    native_default_only()

    def work(n, k):
        out = 0
        for i in range(n):
            d = {i: k, k: i}
            out += len(d)
        return out

    w = tiered(types.FunctionType(work.__code__.replace(co_name="work_counted"), work.__globals__),
               strict=True)
    inner = tiered(types.FunctionType(cells_loop.__code__.replace(co_name="cells_counted"),
                                      cells_loop.__globals__), strict=True)

    def warm_up():
        for _ in range(60):
            w(10, "k")
            inner(3, 1)

    def measured():
        for _ in range(10):
            w(10, "k")
            inner(3, 1)

    counts = counted_ops(warm_up, measured)
    assert counts["BuildMap"] == {"tier1": 0, "tier2": 100, "deopts": 0}, counts["BuildMap"]
    assert counts["MakeCell"]["tier1"] == 0 and counts["MakeCell"]["tier2"] > 0, counts["MakeCell"]


class ListSub(list):
    def __iter__(self):
        return iter(["sub", "iter"])


def list_unpacking_loop(n):
    # Exact lists and tuples unpacked in a loop (UnpackSequence's template), lists whose
    # length changes between iterations (too many, too few: ValueError), a list subclass
    # with its own __iter__ (the generic path iterates it), and a list emptied meanwhile.
    out = []
    lst = [1, 2]
    for i in range(n):
        try:
            a, b = lst
            out.append((a, b))
        except ValueError as e:
            out.append(str(e))
        if i % 5 == 2:
            lst.append(i)
        elif i % 5 == 4:
            del lst[2:]
        if i % 7 == 3:
            lst = ListSub([i, i])
        elif i % 7 == 5:
            lst = [i, -i]
        c, d = (i, "t") if i % 2 else [i, "l"]
        out.append((c, d))
    return out


def test_list_unpacking_in_a_loop():
    check(list_unpacking_loop, 40)
