"""Expressions of the differential fuzzer's programs (see `gen`): the kinds of values
the generator tracks, what it knows of generated classes, functions and scopes, and an
expression of any kind from them."""

from __future__ import annotations

from dataclasses import dataclass, field

# Kinds of values the generator tracks. NUM may be an int, a float or a bool (and change
# between them: arithmetic stays valid); INT is an int (indexes, ranges, shifts).
NUM, INT, FLOAT, BOOL, STR, LIST, TUPLE, DICT, SET, NONE, OBJ, ANY = (
    "num", "int", "float", "bool", "str", "list", "tuple", "dict", "set", "none", "obj", "any",
)
NUMERIC = (NUM, INT, FLOAT, BOOL)

INT_LITERALS = ["0", "1", "2", "3", "7", "-1", "-5", "10", "255", "256", "-129", "1000",
                "2**31", "2**62", "2**63", "-2**63", "2**64 + 3", "10**20", "-(10**19)",
                "4611686018427387903", "9223372036854775807"]
FLOAT_LITERALS = ["0.0", "-0.0", "1.5", "-2.25", "0.1", "3.0", "1e300", "-1e-300",
                  "float('nan')", "float('inf')", "-float('inf')", "2.5e-3"]
STR_LITERALS = ["''", "'a'", "'ab'", "'hello'", "'x y z'", "'é'", "'日本'", "'\\n'", "'0'",
                "'abcabc'", "'A-B'"]
EXC_TYPES = ["ValueError", "KeyError", "IndexError", "ZeroDivisionError", "TypeError",
             "ArithmeticError", "LookupError", "RuntimeError", "Exception"]


@dataclass
class ClassInfo:
    """What the generator knows of a generated class."""

    name: str
    attrs: dict[str, str]           # instance attribute -> kind
    methods: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (nargs, result kind)
    base: "ClassInfo | None" = None
    props: dict[str, str] = field(default_factory=dict)  # property -> kind
    dunders: set[str] = field(default_factory=set)
    logs_del: bool = False          # its __del__ logs each release to GDEL


@dataclass
class FuncInfo:
    """A generated module-level function: its name, parameter kinds and result kind; how
    many trailing parameters have defaults, whether the last is keyword-only, and whether
    it takes ``*rest``."""

    name: str
    params: list[str]
    result: str
    defaults: int = 0
    kwonly: bool = False
    star: bool = False


class Scope:
    """Local variables and their kinds (a copy is taken for each branch)."""

    def __init__(self, names: dict[str, str] | None = None, frozen: frozenset = frozenset()):
        self.names: dict[str, str] = dict(names or {})
        # Names statements must not rebind (while-loop counters: the loop must end).
        self.frozen = frozen

    def copy(self) -> "Scope":
        return Scope(self.names, self.frozen)

    def writable(self, kinds: tuple[str, ...] | str) -> list[str]:
        return [n for n in self.of(kinds) if n not in self.frozen]

    def of(self, kinds: tuple[str, ...] | str) -> list[str]:
        if isinstance(kinds, str):
            kinds = (kinds,)
        return [n for n, k in self.names.items() if k in kinds]

    def merge(self, other: "Scope") -> None:
        """After a branch: a name bound on one side only, or to different kinds, is ANY
        (possibly unbound: never read again unless rebound)."""
        merged = {}
        for n in set(self.names) | set(other.names):
            a, b = self.names.get(n), other.names.get(n)
            if a is None or b is None:
                continue  # maybe unbound afterwards: forget it
            if a == b:
                merged[n] = a
            elif a in NUMERIC and b in NUMERIC:
                merged[n] = NUM
            else:
                merged[n] = ANY
        self.names = merged


class Exprs:
    """The expression half of `gen.Gen` (which holds the state these read: its random
    source, classes, functions, scopes)."""

    # --- names and helpers -------------------------------------------------------------

    def fresh(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)


    # --- expressions -------------------------------------------------------------------

    def expr(self, kind: str, sc: Scope, d: int = 0) -> str:
        """An expression of `kind` (ANY: of any kind)."""
        if kind == ANY:
            kind = self.pick([NUM, INT, STR, LIST, TUPLE, DICT, BOOL, NONE, FLOAT])
        deep = d >= 3
        # Variables of the kind (most of the time when there are some).
        names = sc.of((NUM, INT, FLOAT, BOOL) if kind == NUM else kind)
        gnames = [g for g, k in self.globals.items() if k == kind or (kind == NUM and k in NUMERIC)]
        if names and self.chance(0.5 if not deep else 0.8):
            return self.pick(names)
        if gnames and self.chance(0.1):
            return self.pick(gnames)
        fn = getattr(self, f"expr_{kind}")
        return fn(sc, d + 1, deep)

    def expr_num(self, sc, d, deep):
        if deep or self.chance(0.25):
            return self.pick([self.pick(INT_LITERALS), self.pick(FLOAT_LITERALS), "True", "False"])
        a, b = self.expr(NUM, sc, d), self.expr(NUM, sc, d)
        op = self.pick(["+", "-", "*", "+", "-", "*", "/", "//", "%", "**"])
        if op in ("/", "//", "%"):
            # Mostly a non-zero divisor; sometimes whatever it is (ZeroDivisionError).
            if self.chance(0.85):
                b = f"({b} or 1)"
        if op == "**":
            b = self.pick(["2", "3", "0", "-1", "0.5"])
            a = f"abs({a})" if self.chance(0.5) else a
            if b in ("-1",):
                a = f"({a} or 1)"
        e = f"({a} {op} {b})"
        r = self.r.random()
        if r < 0.1:
            return f"-{e}"
        if r < 0.15:
            return f"abs({e})"
        if r < 0.2:
            return f"max({a}, {b})"
        if r < 0.25:
            return f"min({a}, {b}, {self.expr(NUM, sc, d)})"
        if r < 0.28:
            return f"round({e}, 2)" if self.chance(0.5) else f"float({a})"
        return e

    def expr_int(self, sc, d, deep):
        if deep or self.chance(0.25):
            return self.pick(INT_LITERALS)
        r = self.r.random()
        if r < 0.35:
            a, b = self.expr(INT, sc, d), self.expr(INT, sc, d)
            op = self.pick(["+", "-", "*", "&", "|", "^", "//", "%"])
            if op in ("//", "%"):
                b = f"({b} or 3)"
            return f"({a} {op} {b})"
        if r < 0.45:
            return f"(({self.expr(INT, sc, d)} & 0xffff) {self.pick(['<<', '>>'])} {self.r.randint(0, 70)})"
        if r < 0.6:
            return f"len({self.expr(self.pick([STR, LIST, TUPLE, DICT, SET]), sc, d)})"
        if r < 0.68:
            return f"int({self.expr(BOOL, sc, d)})"
        if r < 0.76:
            return f"ord(({self.expr(STR, sc, d)})[:1] or 'z')"
        if r < 0.84:
            return f"{self.expr(STR, sc, d)}.count({self.pick(STR_LITERALS)})"
        if r < 0.9:
            return f"hash({self.expr(INT, sc, d)}) % 97"
        return f"(-{self.expr(INT, sc, d)})"

    def expr_float(self, sc, d, deep):
        if deep or self.chance(0.3):
            return self.pick(FLOAT_LITERALS)
        a, b = self.expr(FLOAT, sc, d), self.expr(NUM, sc, d)
        op = self.pick(["+", "-", "*", "/"])
        if op == "/" and self.chance(0.9):
            b = f"({b} or 1.0)"
        return f"({a} {op} {b})" if self.chance(0.8) else f"float({self.expr(INT, sc, d)})"

    def expr_bool(self, sc, d, deep):
        if deep or self.chance(0.15):
            return self.pick(["True", "False"])
        r = self.r.random()
        if r < 0.35:
            k = self.pick([NUM, INT, STR, FLOAT])
            if k == STR:
                op = self.pick(["==", "!=", "<", "<=", ">", ">="])
            elif k in (NUM, INT, FLOAT):
                op = self.pick(["==", "!=", "<", "<=", ">", ">="])
            return f"({self.expr(k, sc, d)} {op} {self.expr(k, sc, d)})"
        if r < 0.5:
            c = self.pick([LIST, TUPLE, SET, DICT, STR])
            item = self.expr(STR if c == STR else NUM, sc, d)
            return f"({item} {self.pick(['in', 'not in'])} {self.expr(c, sc, d)})"
        if r < 0.6:
            return f"(not {self.expr(BOOL, sc, d)})"
        if r < 0.7:
            return f"({self.expr(BOOL, sc, d)} {self.pick(['and', 'or'])} {self.expr(BOOL, sc, d)})"
        if r < 0.8:
            x = self.expr(ANY, sc, d)
            return f"isinstance({x}, {self.pick(['int', 'float', 'str', 'list', '(int, float)', 'bool', 'tuple'])})"
        if r < 0.88:
            return f"({self.expr(ANY, sc, d)} is None)"
        if r < 0.94:
            return f"bool({self.expr(self.pick([NUM, STR, LIST]), sc, d)})"
        return f"({self.expr(NUM, sc, d)} < {self.expr(NUM, sc, d)} <= {self.expr(NUM, sc, d)})"

    def expr_str(self, sc, d, deep):
        if deep or self.chance(0.25):
            return self.pick(STR_LITERALS)
        r = self.r.random()
        if r < 0.2:
            return f"({self.expr(STR, sc, d)} + {self.expr(STR, sc, d)})"
        if r < 0.3:
            return f"({self.pick(STR_LITERALS)} * {self.r.randint(0, 3)})"
        if r < 0.4:
            return f"str({self.expr(self.pick([NUM, INT, FLOAT, BOOL, LIST, TUPLE, NONE]), sc, d)})"
        if r < 0.5:
            # f-strings over names only (3.11 allows no backslash or same quote inside).
            xs, ys = sc.of((NUM, INT, FLOAT, BOOL)), sc.of(STR)
            if xs and ys:
                spec = self.pick(["", "!r", ":>6", "!s", ":^5"])
                return f'f"<{{{self.pick(xs)}{spec}}}|{{{self.pick(ys)}}}>"'
            return f"'<{{}}|{{!r}}>'.format({self.expr(NUM, sc, d)}, {self.expr(STR, sc, d)})"
        if r < 0.58:
            s = self.expr(STR, sc, d)
            return f"{s}[{self.r.randint(-3, 3)}:{self.pick(['', str(self.r.randint(-2, 5))])}]"
        if r < 0.66:
            return f"{self.expr(STR, sc, d)}.{self.pick(['upper', 'lower', 'strip', 'title', 'swapcase'])}()"
        if r < 0.74:
            return f"{self.pick(STR_LITERALS)}.join([str(x) for x in {self.expr(LIST, sc, d)}])"
        if r < 0.8:
            return f"{self.expr(STR, sc, d)}.replace({self.pick(STR_LITERALS)}, {self.pick(STR_LITERALS)})"
        if r < 0.86:
            return f"repr({self.expr(ANY, sc, d)})"
        if r < 0.92:
            return f"'%s-%d' % ({self.expr(STR, sc, d)}, {self.expr(INT, sc, d)})"
        return f"({self.expr(STR, sc, d)} if {self.expr(BOOL, sc, d)} else {self.expr(STR, sc, d)})"

    def expr_list(self, sc, d, deep):
        if deep or self.chance(0.2):
            return self.pick(["[]", "[1, 2, 3]", "[0.5, -1, True]", "[3, 1, 2]", "list(range(5))"])
        r = self.r.random()
        if r < 0.25:
            return "[" + ", ".join(self.expr(NUM, sc, d) for _ in range(self.r.randint(0, 4))) + "]"
        if r < 0.45:
            x = self.fresh("c")
            inner = Scope(sc.names)
            inner.names[x] = NUM
            cond = f" if {self.expr(BOOL, inner, d + 1)}" if self.chance(0.4) else ""
            return f"[{self.expr(NUM, inner, d + 1)} for {x} in {self.expr(LIST, sc, d)}{cond}]"
        if r < 0.55:
            return f"({self.expr(LIST, sc, d)} + {self.expr(LIST, sc, d)})"
        if r < 0.62:
            return f"sorted({self.expr(LIST, sc, d)}{', reverse=True' if self.chance(0.3) else ''})"
        if r < 0.7:
            return f"list(range({self.r.randint(-2, 8)}))"
        if r < 0.78:
            return f"{self.expr(LIST, sc, d)}[{self.r.randint(-3, 2)}:{self.r.randint(-1, 6)}]"
        if r < 0.84:
            return f"list({self.expr(TUPLE, sc, d)})"
        if r < 0.9:
            return f"[x * 2 for x in range({self.r.randint(0, 6)})]"
        return f"([{self.expr(NUM, sc, d)}] * {self.r.randint(0, 3)})"

    def expr_tuple(self, sc, d, deep):
        if deep or self.chance(0.2):
            return self.pick(["()", "(1,)", "(1, 'a', 2.5)", "(3, 4)"])
        r = self.r.random()
        if r < 0.5:
            n = self.r.randint(0, 3)
            items = [self.expr(self.pick([NUM, STR]), sc, d) for _ in range(n)]
            return "(" + ", ".join(items) + ("," if n == 1 else "") + ")"
        if r < 0.7:
            return f"tuple({self.expr(LIST, sc, d)})"
        if r < 0.85:
            return f"({self.expr(TUPLE, sc, d)} + {self.expr(TUPLE, sc, d)})"
        return f"divmod({self.expr(INT, sc, d)}, {self.r.randint(1, 7)})"

    def expr_dict(self, sc, d, deep):
        if deep or self.chance(0.25):
            return self.pick(["{}", "{'a': 1}", "{1: 'x', 2: 'y'}", "{'k': [1], 'j': 2.5}"])
        r = self.r.random()
        if r < 0.4:
            n = self.r.randint(0, 3)
            return "{" + ", ".join(f"{self.expr(self.pick([STR, INT]), sc, d)}: {self.expr(ANY, sc, d)}" for _ in range(n)) + "}"
        if r < 0.7:
            x = self.fresh("c")
            inner = Scope(sc.names)
            inner.names[x] = NUM
            return f"{{{x}: {self.expr(NUM, inner, d + 1)} for {x} in {self.expr(LIST, sc, d)}}}"
        if r < 0.85:
            return f"dict(zip({self.expr(STR, sc, d)}, {self.expr(LIST, sc, d)}))"
        return f"{{**{self.expr(DICT, sc, d)}, **{self.expr(DICT, sc, d)}}}"

    def expr_set(self, sc, d, deep):
        if deep or self.chance(0.25):
            return self.pick(["set()", "{1, 2}", "{'a', 'b'}", "{0.5, 1}"])
        r = self.r.random()
        if r < 0.4:
            return f"set({self.expr(self.pick([LIST, STR, TUPLE]), sc, d)})"
        if r < 0.7:
            x = self.fresh("c")
            inner = Scope(sc.names)
            inner.names[x] = NUM
            return f"{{{self.expr(NUM, inner, d + 1)} for {x} in {self.expr(LIST, sc, d)}}}"
        return f"({self.expr(SET, sc, d)} {self.pick(['|', '&', '-', '^'])} {self.expr(SET, sc, d)})"

    def expr_none(self, sc, d, deep):
        return "None"

    def expr_obj(self, sc, d, deep):
        if not self.classes:
            return "None"
        c = self.pick(self.classes)
        return self.construct(c, sc, d)

    def construct(self, c: ClassInfo, sc: Scope, d: int) -> str:
        args = ", ".join(self.expr(k, sc, d) for k in c.attrs.values())
        return f"{c.name}({args})"
