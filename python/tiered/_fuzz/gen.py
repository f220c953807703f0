"""Random, well-formed Python programs for the differential fuzzer.

A program is a module: a few globals, classes (methods, properties, dunders, inheritance
and ``super()``, a ``__del__`` logging each release), a context-manager class, helper functions and an ``entry(a, b, c)``
function, every ``def`` decorated with ``@T`` (the fuzzer binds ``T`` to the identity for
CPython and to ``tiered(..., options)`` for each execution path). The generator tracks a
static kind for every variable so most operations are valid and programs run to the end;
a few are left to raise (and are caught, or end the call), and some values change kind
in the middle of a loop so quickened guards fail.

Every loop is bounded and calls only go to functions defined earlier (or to a bounded
recursive helper), so each program terminates. The same seed always gives the same
program.
"""

from __future__ import annotations

import random

from tiered._fuzz.exprs import (
    ANY,
    BOOL,
    ClassInfo,
    DICT,
    EXC_TYPES,
    FLOAT,
    FuncInfo,
    INT,
    LIST,
    NUM,
    OBJ,
    SET,
    STR,
    STR_LITERALS,
    Scope,
    TUPLE,
    Exprs,
)


class Gen(Exprs):
    """One program's generator (see the module doc)."""

    def __init__(self, seed: int, size: int = 3):
        self.r = random.Random(seed)
        self.size = size
        self.counter = 0
        self.classes: list[ClassInfo] = []
        self.funcs: list[FuncInfo] = []
        # Generator functions (name, parameter kinds, async): driven by `s_drive_gen`.
        self.gens: list[tuple[str, list[str], bool]] = []
        self.globals: dict[str, str] = {}
        self.depth = 0          # statement nesting
        self.loop_depth = 0
        self.in_func: FuncInfo | None = None
        self.cur_class: ClassInfo | None = None

    # --- statements --------------------------------------------------------------------

    def block(self, sc: Scope, n: int) -> list[str]:
        out: list[str] = []
        for _ in range(n):
            out += self.stmt(sc)
        return out or ["pass"]

    def indent(self, lines: list[str]) -> list[str]:
        return ["    " + ln for ln in lines]

    def stmt(self, sc: Scope) -> list[str]:
        self.depth += 1
        try:
            choices = [
                (self.s_assign, 6), (self.s_augassign, 4), (self.s_print, 2), (self.s_if, 3),
                (self.s_mutate, 3), (self.s_call, 2),
            ]
            if self.depth < 4:
                choices += [(self.s_for, 3), (self.s_while, 2), (self.s_try, 2), (self.s_with, 1),
                            (self.s_closure, 1), (self.s_unpack, 1)]
            if self.loop_depth:
                choices += [(self.s_break_continue, 1), (self.s_retype, 2), (self.s_global, 1)]
            if self.classes:
                choices += [(self.s_object, 5)]
            if self.depth < 4 and any(c.logs_del for c in self.classes):
                choices += [(self.s_churn, 2)]
            if self.gens:
                choices += [(self.s_drive_gen, 2)]
            choices += [(self.s_del, 1), (self.s_raise, 1)]
            total = sum(w for _, w in choices)
            x = self.r.uniform(0, total)
            for f, w in choices:
                x -= w
                if x <= 0:
                    return f(sc)
            return self.s_assign(sc)
        finally:
            self.depth -= 1

    def s_assign(self, sc):
        kind = self.pick([NUM, NUM, INT, FLOAT, STR, LIST, TUPLE, DICT, SET, BOOL])
        existing = sc.writable(kind)
        name = self.pick(existing) if existing and self.chance(0.4) else self.fresh()
        e = self.expr(kind, sc)
        sc.names[name] = kind
        return [f"{name} = {e}"]

    def s_augassign(self, sc):
        nums = sc.writable((NUM, INT, FLOAT))
        if nums and self.chance(0.7):
            n = self.pick(nums)
            op = self.pick(["+=", "-=", "*=", "+=", "-="])
            val = self.expr(INT if sc.names[n] == INT else NUM, sc)
            if sc.names[n] == INT and op == "*=":
                val = self.pick(["2", "3", "-1"])
            if sc.names[n] != INT:
                sc.names[n] = NUM
            return [f"{n} {op} {val}"]
        strs = sc.writable(STR)
        if strs and self.chance(0.5):
            return [f"{self.pick(strs)} += {self.expr(STR, sc)}"]
        lists = sc.writable(LIST)
        if lists:
            return [f"{self.pick(lists)} += {self.expr(LIST, sc)}"]
        return self.s_assign(sc)

    def s_print(self, sc):
        args = [self.expr(ANY, sc) for _ in range(self.r.randint(1, 3))]
        if self.chance(0.2):
            args.append(f"sep={self.pick(STR_LITERALS)}")
        return [f"print({', '.join(args)})"]

    def s_if(self, sc):
        cond = self.expr(BOOL, sc)
        a = sc.copy()
        body = self.block(a, self.r.randint(1, 3))
        lines = [f"if {cond}:"] + self.indent(body)
        if self.chance(0.3):
            b = sc.copy()
            lines += [f"elif {self.expr(BOOL, sc)}:"] + self.indent(self.block(b, self.r.randint(1, 2)))
            a.merge(b)
        c = sc.copy()
        if self.chance(0.5):
            lines += ["else:"] + self.indent(self.block(c, self.r.randint(1, 2)))
        a.merge(c)
        sc.names = a.names
        return lines

    def loop_body(self, sc, n):
        self.loop_depth += 1
        try:
            return self.block(sc, n)
        finally:
            self.loop_depth -= 1

    def s_for(self, sc):
        var = self.fresh("i")
        r = self.r.random()
        inner = sc.copy()
        if r < 0.4:
            it = f"range({self.pick(['', str(self.r.randint(-2, 3)) + ', '])}{self.r.randint(0, 12)})"
            inner.names[var] = INT
        elif r < 0.6:
            it = self.expr(LIST, sc)
            inner.names[var] = NUM
        elif r < 0.7:
            it = self.expr(STR, sc)
            inner.names[var] = STR
        elif r < 0.8:
            k = self.fresh("k")
            it = f"{self.expr(DICT, sc)}.items()"
            inner.names[k] = ANY
            inner.names[var] = ANY
            var = f"{k}, {var}"
        elif r < 0.9:
            j = self.fresh("j")
            it = f"enumerate({self.expr(LIST, sc)})"
            inner.names[j] = INT
            inner.names[var] = NUM
            var = f"{j}, {var}"
        else:
            a = self.fresh("z")
            it = f"zip({self.expr(LIST, sc)}, {self.expr(STR, sc)})"
            inner.names[a] = NUM
            inner.names[var] = STR
            var = f"{a}, {var}"
        # The iterated container is not changed by the body (it could grow forever).
        iterated = {n for n in sc.names if n in it.replace("(", " ").replace(")", " ").split()}
        inner.frozen = inner.frozen | iterated
        body = self.loop_body(inner, self.r.randint(1, 4))
        lines = [f"for {var} in {it}:"] + self.indent(body)
        if self.chance(0.15):
            lines += ["else:"] + self.indent(self.block(sc.copy(), 1))
        sc.merge(inner)
        return lines

    def s_while(self, sc):
        n = self.fresh("n")
        inner = Scope(sc.names, sc.frozen | {n})
        inner.names[n] = INT
        body = self.loop_body(inner, self.r.randint(1, 3))
        limit = self.r.randint(0, 15)
        lines = [f"{n} = 0", f"while {n} < {limit}:", f"    {n} += 1"] + self.indent(body)
        sc.merge(inner)
        sc.names[n] = INT
        return lines

    def s_break_continue(self, sc):
        cond = self.expr(BOOL, sc)
        return [f"if {cond}:", f"    {self.pick(['break', 'continue', 'break'])}"]

    def s_retype(self, sc):
        """A value changes kind in the middle of a loop (a quickened guard fails)."""
        nums = sc.writable((NUM, INT, FLOAT, BOOL))
        if not nums:
            return self.s_assign(sc)
        n = self.pick(nums)
        new = self.pick(["1.5", "True", "2**70", "-0.0", "3", "float('nan')", "7"])
        if sc.names[n] == INT and new not in ("True", "2**70", "3", "7"):
            new = "2**70"
        if sc.names[n] != INT:
            sc.names[n] = NUM
        return [f"if {self.expr(BOOL, sc)}:", f"    {n} = {new}"]

    def s_global(self, sc):
        """A global rebound (maybe mid-loop): other functions read it, guards on it fail."""
        if not self.globals:
            return self.s_assign(sc)
        g = self.pick(list(self.globals))
        kind = self.globals[g]
        if g.startswith("helper"):
            other = self.pick([f.name for f in self.funcs if f.params == [NUM]] or ["abs"])
            return [f"{g} = {other}"]
        return [f"{g} = {self.expr(kind, Scope())}"]

    def s_mutate(self, sc):
        lists, dicts, sets = sc.writable(LIST), sc.writable(DICT), sc.writable(SET)
        r = self.r.random()
        if lists and r < 0.5:
            lst = self.pick(lists)
            m = self.r.random()
            if m < 0.3:
                return [f"{lst}.append({self.expr(NUM, sc)})"]
            if m < 0.45:
                return [f"if {lst}:", f"    {lst}[{self.r.randint(-2, 2)} % len({lst})] = {self.expr(NUM, sc)}"]
            if m < 0.55:
                return [f"if {lst}:", f"    {lst}.pop()"]
            if m < 0.65:
                return [f"{lst}.insert({self.r.randint(-1, 3)}, {self.expr(NUM, sc)})"]
            if m < 0.75:
                return [f"{lst}.sort(key=lambda q: -q)" if self.chance(0.5) else f"{lst}.reverse()"]
            if m < 0.85:
                alias = self.fresh("alias")
                sc.names[alias] = LIST
                return [f"{alias} = {lst}", f"{alias}.append({self.expr(NUM, sc)})"]
            return [f"{lst}.extend({self.expr(LIST, sc)})"]
        if dicts and r < 0.8:
            dct = self.pick(dicts)
            m = self.r.random()
            if m < 0.4:
                return [f"{dct}[{self.expr(self.pick([STR, INT]), sc)}] = {self.expr(ANY, sc)}"]
            if m < 0.6:
                return [f"{dct}.setdefault({self.expr(STR, sc)}, {self.expr(NUM, sc)})"]
            if m < 0.8:
                return [f"{dct}.pop({self.expr(STR, sc)}, None)"]
            return [f"{dct}.update({self.expr(DICT, sc)})"]
        if sets:
            return [f"{self.pick(sets)}.{self.pick(['add', 'discard'])}({self.expr(NUM, sc)})"]
        return self.s_assign(sc)

    def s_drive_gen(self, sc):
        """Drives a generated generator: to the end, or step by step with send, throw and
        close (an async generator's awaitables, each run to its end by `_astep`), printing
        each step's value or exception."""
        name, params, is_async = self.pick(self.gens)
        g = self.fresh("g")
        args = ", ".join(self.expr(k, sc) for k in params)
        lines = [f"{g} = {name}({args})"]
        r = self.r.random()
        if is_async:
            if r < 0.4:
                lines += ["for _k in range(20):", f"    _r = _astep({g}.__anext__())",
                          "    print('agen item', _r)", "    if _r[0] != 'value':", "        break"]
            else:
                for _ in range(self.r.randint(1, 4)):
                    step = self.pick([f"{g}.__anext__()", f"{g}.asend({self.expr(NUM, sc)})",
                                      f"{g}.athrow(ValueError('thrown'))", f"{g}.aclose()"])
                    lines.append(f"print('agen step', _astep({step}))")
            lines.append(f"{g} = None")
        elif r < 0.4:
            lines += ["try:", f"    print('gen list', list({g}))",
                      "except Exception as bad:", "    print('gen raised', type(bad).__name__, bad)"]
        else:
            steps = []
            for _ in range(self.r.randint(1, 4)):
                steps.append(self.pick([f"next({g})", f"{g}.send({self.expr(NUM, sc)})",
                                        f"{g}.throw(ValueError('thrown'))", f"{g}.close()",
                                        f"{g}.gi_frame and {g}.gi_frame.f_lineno"]))
            for step in steps:
                lines += ["try:", f"    print('gen step', {step})",
                          "except StopIteration as stop:", "    print('gen stop', stop.value)",
                          "except Exception as bad:", "    print('gen raised', type(bad).__name__, bad)"]
            lines.append(f"{g} = None")
        sc.names[g] = ANY
        return lines

    def gen_generator(self, i: int, is_async: bool = False) -> list[str]:
        """A generator function: a function body with yields between its statements (and
        `x = yield`, `yield from`), returning a value at the end; or an async generator,
        with awaits of `_pause` (a tiered generator-based coroutine) instead of `yield
        from`, and no return value."""
        name = f"{'agen' if is_async else 'gen'}{i}"
        params = [self.pick([NUM, INT, STR, LIST]) for _ in range(self.r.randint(1, 2))]
        pnames = [f"{name}_p{k}" for k in range(len(params))]
        sc = Scope(dict(zip(pnames, params)))
        self.in_func = FuncInfo(name, params, ANY)
        self.obj_class = {}
        body: list[str] = []
        for _ in range(self.r.randint(2, 3 + self.size)):
            body += self.stmt(sc)
            r = self.r.random()
            if r < 0.35:
                body.append(f"yield {self.expr(ANY, sc)}")
            elif r < 0.5:
                v = self.fresh()
                body.append(f"{v} = yield {self.expr(NUM, sc)}")
                sc.names[v] = ANY
            elif r < 0.6 and is_async:
                v = self.fresh()
                body.append(f"{v} = await _pause({self.expr(NUM, sc)})")
                sc.names[v] = ANY
            elif r < 0.6:
                body.append(f"yield from range({self.r.randint(0, 3)})")
            elif r < 0.7:
                body += ["try:", f"    yield {self.expr(NUM, sc)}", "finally:", f"    print('gen finally', {name}_p0)"]
        if not is_async:
            body.append(f"return {self.expr(self.pick([NUM, STR, LIST]), sc)}")
        self.in_func = None
        decl = [f"global {', '.join(sorted(self.globals))}"] if self.globals else []
        self.gens.append((name, params, is_async))
        head = f"{'async ' if is_async else ''}def {name}({', '.join(pnames)}):"
        return ["@T", head] + self.indent(decl + body)

    def s_call(self, sc):
        f = self.call_expr(sc)
        if f is None:
            return self.s_print(sc)
        name = self.fresh()
        sc.names[name] = ANY
        return [f"{name} = {f}"]

    def call_expr(self, sc) -> str | None:
        cands = [f for f in self.funcs if self.in_func is None or f is not self.in_func]
        if not cands:
            return None
        f = self.pick(cands)
        names = [f"{f.name}_p{k}" for k in range(len(f.params))]
        args = [self.expr(k, sc) for k in f.params]
        n = len(args)
        first_default = n - f.defaults
        pos, kw = [], []
        for k, (nm, a) in enumerate(zip(names, args)):
            if f.kwonly and k == n - 1:
                if k < first_default or self.chance(0.7):
                    kw.append(f"{nm}={a}")
            elif k >= first_default and self.chance(0.3):
                continue  # left to its default (and so are the following positionals)
            elif k >= first_default and self.chance(0.3) or (kw and not f.kwonly):
                kw.append(f"{nm}={a}")
            else:
                if kw:
                    kw.append(f"{nm}={a}")
                else:
                    pos.append(a)
        if any(p.startswith("*") for p in pos):
            pos = [p for p in pos if not p.startswith("*")]
        if len(pos) == n - (1 if f.kwonly else 0) and f.star and self.chance(0.5):
            pos += [self.expr(NUM, sc) for _ in range(self.r.randint(1, 2))]
        if pos and not f.star and self.chance(0.15) and not kw:
            return f"{f.name}(*[{', '.join(pos)}])"
        if kw and self.chance(0.15):
            return f"{f.name}({', '.join(pos)}{', ' if pos else ''}**{{{', '.join(repr(k.split('=')[0]) + ': ' + k.split('=', 1)[1] for k in kw)}}})"
        return f"{f.name}({', '.join(pos + kw)})"

    def s_try(self, sc):
        body_sc = sc.copy()
        body = self.block(body_sc, self.r.randint(1, 3))
        if self.chance(0.4):
            body.append(self.risky(body_sc))
        exc = self.pick(EXC_TYPES)
        lines = ["try:"] + self.indent(body)
        h = sc.copy()
        e = self.fresh("e")
        handler = [f"print('caught', type({e}).__name__, {e})"] + self.block(h, self.r.randint(0, 1))
        lines += [f"except ({exc}, TypeError) as {e}:" if self.chance(0.3) else f"except {exc} as {e}:"] + self.indent(handler)
        if self.chance(0.3):
            lines += ["else:"] + self.indent(self.block(sc.copy(), 1))
        if self.chance(0.3):
            lines += ["finally:"] + self.indent([f"print('finally', {self.expr(ANY, sc)})"])
        body_sc.merge(h)
        sc.names = body_sc.names
        return lines

    def risky(self, sc) -> str:
        """A statement that may well raise."""
        return self.pick([
            f"print({self.expr(NUM, sc)} / {self.expr(NUM, sc)})",
            f"print({self.expr(LIST, sc)}[{self.r.randint(-5, 5)}])",
            f"print({self.expr(DICT, sc)}[{self.expr(STR, sc)}])",
            f"print(int({self.expr(STR, sc)}))",
            f"print({self.expr(NUM, sc)} + {self.expr(STR, sc)})",
            f"raise {self.pick(EXC_TYPES)}({self.expr(STR, sc)})",
            f"print({self.expr(LIST, sc)}.index({self.expr(NUM, sc)}))",
            f"print([1, 2][{self.expr(INT, sc)}])",
        ])

    def s_raise(self, sc):
        exc = self.pick(EXC_TYPES)
        cond = self.expr(BOOL, sc)
        if self.chance(0.3):
            inner = self.pick(EXC_TYPES)
            e = self.fresh("e")
            return [f"if {cond}:", "    try:", f"        raise {inner}({self.expr(STR, sc)})",
                    f"    except {inner} as {e}:", f"        raise {exc}('wrapped') from {e}"]
        return [f"if {cond}:", f"    raise {exc}({self.expr(STR, sc)})"]

    def s_with(self, sc):
        inner = sc.copy()
        v = self.fresh("cm")
        inner.names[v] = STR
        body = self.block(inner, self.r.randint(1, 2))
        if self.chance(0.3):
            body.append(self.risky(inner))
        sc.merge(inner)
        return [f"with Ctx({self.expr(STR, sc)}, {self.pick(['True', 'False'])}) as {v}:"] + self.indent(body)

    def s_closure(self, sc):
        name = self.fresh("inner")
        captured = sc.of((NUM, INT, FLOAT))
        counter = self.fresh("cnt")
        lines = [f"{counter} = 0"]
        sc.names[counter] = INT
        p = self.fresh("p")
        body_sc = Scope({p: NUM, **{c: sc.names[c] for c in captured}})
        if self.chance(0.4):
            lines += [f"def {name}({p}):", f"    nonlocal {counter}", f"    {counter} += 1",
                      f"    return {self.expr(NUM, body_sc)}"]
        else:
            lines += [f"def {name}({p}):", f"    return {self.expr(NUM, body_sc)}"]
        res = self.fresh()
        r = self.r.random()
        if r < 0.4:
            lines.append(f"{res} = {name}({self.expr(NUM, sc)}) + {name}({self.expr(NUM, sc)})")
        elif r < 0.7:
            # A generator expression (it runs in CPython today) calling the closure.
            lines.append(f"{res} = sum({name}(x) for x in range({self.r.randint(0, 5)}))")
        else:
            lines.append(f"{res} = sum(map({name}, {self.expr(LIST, sc)}))")
        sc.names[res] = NUM
        if self.chance(0.3):
            g = self.fresh("gen")
            lines += [f"def {g}(k):", "    for q in range(k):", f"        yield {name}(q)",
                      f"{res} = list({g}({self.r.randint(0, 4)}))"]
            sc.names[res] = LIST
        return lines

    def s_unpack(self, sc):
        a, b = self.fresh(), self.fresh()
        r = self.r.random()
        if r < 0.4:
            line = f"{a}, {b} = {self.expr(NUM, sc)}, {self.expr(STR, sc)}"
            sc.names.update({a: NUM, b: STR})
            return [line]
        if r < 0.7:
            c = self.fresh()
            items = ", ".join(self.expr(NUM, sc) for _ in range(3))
            sc.names.update({a: NUM, b: LIST, c: NUM})
            return [f"{a}, *{b}, {c} = [{items}]"]
        value = self.expr(self.pick([LIST, TUPLE, STR]), sc)
        sc.names.update({a: ANY, b: ANY})
        return ["try:", f"    {a}, {b} = {value}",
                "except ValueError as bad:", "    print('unpack', bad)", f"    {a} = {b} = None"]

    def s_del(self, sc):
        cands = [n for n in sc.names if n.startswith("v") and n not in sc.frozen]
        if not cands or self.loop_depth:
            return self.s_assign(sc)
        n = self.pick(cands)
        del sc.names[n]
        return [f"del {n}"]

    def s_object(self, sc):
        c = self.pick(self.classes)
        objs = sc.of(OBJ)
        r = self.r.random()
        if not objs or r < 0.25:
            name = self.fresh("o")
            line = f"{name} = {self.construct(c, sc, 1)}"
            sc.names[name] = OBJ
            self.obj_class[name] = c
            return [line]
        o = self.pick(objs)
        c = self.obj_class.get(o, c)
        attrs = list(c.attrs.items())
        if r < 0.4 and attrs:
            a, k = self.pick(attrs)
            return [f"{o}.{a} = {self.expr(k, sc)}"]
        if r < 0.55 and c.methods:
            m = self.pick(list(c.methods))
            nargs, res = c.methods[m]
            v = self.fresh()
            args = ", ".join(self.expr(NUM, sc) for _ in range(nargs))
            sc.names[v] = res
            return [f"{v} = {o}.{m}({args})"]
        if r < 0.62 and c.props:
            p = self.pick(list(c.props))
            v = self.fresh()
            sc.names[v] = c.props[p]
            return [f"{v} = {o}.{p}"]
        if r < 0.72 and c.dunders:
            du = self.pick(sorted(c.dunders))
            v = self.fresh()
            other = self.construct(c, sc, 2)
            expr = {"__eq__": f"{o} == {other}", "__lt__": f"{o} < {other}",
                    "__add__": f"({o} + {other}).{attrs[0][0]}" if attrs else f"{o} == {other}",
                    "__len__": f"len({o})", "__getitem__": f"{o}[{self.r.randint(0, 3)}]",
                    "__iter__": f"list({o})", "__repr__": f"repr({o})", "__hash__": f"hash({o}) == hash({other})",
                    "__bool__": f"bool({o})", "__contains__": f"{self.expr(NUM, sc)} in {o}"}[du]
            sc.names[v] = ANY
            return [f"{v} = {expr}"]
        if r < 0.87:
            return self.s_polymorphic(sc)
        return self.s_mutate_class(sc, o, c)

    def s_churn(self, sc):
        """A loop whose locals hold objects that log their release and are rebound on one
        side of a branch, by an attribute, a sum, a test or another object, then dropped:
        native code may give such values one register (`lower::coalesce`), and each
        rebinding must release what the register held, at the moment CPython does."""
        c = self.pick([k for k in self.classes if k.logs_del])
        attrs = list(c.attrs)
        x, v, src, i = self.fresh("x"), self.fresh("x"), self.fresh("x"), self.fresh("i")

        def make(tag: str, at: str = i) -> str:
            # The first attribute is what __del__ logs: a label saying which object it was.
            rest = ", ".join(self.expr(k, sc, 2) for k in list(c.attrs.values())[1:])
            return f"{c.name}(({tag!r}, {at}){', ' + rest if rest else ''})"

        def rebind(name: str) -> str:
            return self.pick([
                f"{name} = {name}.link if hasattr({name}, 'link') else {name}",
                f"{name} = {src}.link",
                f"{name} = {src}.{self.pick(attrs)}",
                f"{name} = {i} + {self.pick(['100', '2**70', '0.5'])}",
                f"{name} = {src} is None",
                f"{name} = {make('again')}",
                f"{name} = {src}",
            ])

        first = self.pick([f"{x} = {make('x')}", f"{x} = {src} is None", f"{x} = {i} * 3"])
        lines = [f"{src} = {make('src', '0')}", f"{src}.link = None",
                 f"for {i} in range({self.r.randint(1, 12)}):",
                 f"    {src}.link = {make('link')}" if self.chance(0.7) else "    pass",
                 f"    {first}"]
        if self.chance(0.5):
            lines.append(f"    {v} = {self.pick([make('v'), f'{src} is None', x])}")
        else:
            v = x
        k = self.r.randint(2, 4)
        lines += [f"    if {i} % {k} == 1:", f"        {rebind(x)}"]
        if self.chance(0.5):
            lines += [f"    elif {i} % {k} == 2:", f"        {rebind(v)}"]
        if self.chance(0.4):
            lines += ["    else:", f"        {rebind(x)}"]
        if self.chance(0.5):
            lines.append(f"    {src}.link = None")
        lines.append(f"    print({i}, type({x}).__name__, type({v}).__name__)")
        lines.append(f"    {self.pick([f'del {x}', f'{x} = None', 'pass'])}")
        lines.append(f"{src} = None")
        return lines

    def s_polymorphic(self, sc):
        """One call site, objects of several classes."""
        objs = ", ".join(self.construct(self.pick(self.classes), sc, 2) for _ in range(self.r.randint(2, 4)))
        o, v = self.fresh("o"), self.fresh()
        sc.names[v] = LIST
        return [f"{v} = []", f"for {o} in [{objs}] * {self.r.randint(1, 3)}:",
                f"    {v}.append(({o}.common({self.expr(NUM, sc)}), {o}.tag))"]

    def s_mutate_class(self, sc, o, c):
        """Classes and instances changed while their methods and attributes are cached."""
        r = self.r.random()
        first = next(iter(c.attrs))
        if r < 0.25:
            return [f"{c.name}.tag = {self.expr(STR, sc)}"]
        if r < 0.45:
            return [f"{c.name}.common = lambda self, x: ('replaced', x)"]
        if r < 0.6:
            return [f"{o}.common = lambda x: ('instance', x)"]
        if r < 0.75:
            return ["try:", f"    del {o}.{first}", f"    print({o}.{first})",
                    "except AttributeError as gone:", "    print('gone', gone)",
                    f"{o}.{first} = {self.expr(c.attrs[first], sc)}"]
        others = [k for k in self.classes if k is not c]  # plain classes: layouts agree
        if others:
            return [f"{o}.__class__ = {self.pick(others).name}"]
        v = self.fresh()
        sc.names[v] = BOOL
        return [f"{v} = isinstance({o}, {self.pick(self.classes).name})"]

    # --- definitions -------------------------------------------------------------------

    def gen_class(self, i: int) -> list[str]:
        base = self.pick(self.classes) if self.classes and self.chance(0.5) else None
        name = f"K{i}"
        own = {f"a{i}": self.pick([NUM, INT, STR]), f"b{i}": self.pick([NUM, LIST, STR])}
        attrs = dict(base.attrs) if base else {}
        attrs.update(own)
        c = ClassInfo(name, attrs, base=base)
        lines = [f"class {name}({base.name if base else ''}):"]
        lines.append(f"    tag = {self.pick(STR_LITERALS)}")
        params = list(attrs)
        init = [f"    @T", f"    def __init__(self, {', '.join(params)}):"]
        if base:
            base_params = ", ".join(base.attrs)
            if self.chance(0.5):
                init.append(f"        super().__init__({base_params})")
            else:
                init.append(f"        {base.name}.__init__(self, {base_params})")
            for a in own:
                init.append(f"        self.{a} = {a}")
        else:
            for a in attrs:
                init.append(f"        self.{a} = {a}")
        lines += init
        # Every class has `common` and a `tag`: loops over objects of several classes call
        # them at one site (polymorphic inline caches).
        sc0 = Scope({f"self.{a}": k for a, k in attrs.items() if k in (NUM, INT, STR)})
        lines += ["    @T", "    def common(self, x):",
                  f"        return ({self.expr(self.pick([NUM, STR]), sc0)}, x, type(self).__name__)"]
        self.cur_class = c
        # Methods: a getter, an updater returning a number, one overriding the base's.
        num_attrs = [a for a, k in attrs.items() if k in (NUM, INT)]
        for m in range(self.r.randint(1, 3)):
            mname = f"m{i}_{m}" if not (base and base.methods and self.chance(0.4)) else self.pick(list(base.methods))
            if mname in c.methods:
                continue
            nargs = base.methods[mname][0] if base and mname in base.methods else self.r.randint(0, 2)
            ps = [f"x{k}" for k in range(nargs)]
            sc = Scope({p: NUM for p in ps})
            body = []
            for a in num_attrs:
                sc.names[f"self.{a}"] = attrs[a] if attrs[a] != INT else INT
            if num_attrs and self.chance(0.6):
                a = self.pick(num_attrs)
                body.append(f"self.{a} = {self.expr(attrs[a], sc)}")
            if base and mname in base.methods and self.chance(0.6):
                call = f"super().{mname}({', '.join(ps)})" if self.chance(0.6) else f"{base.name}.{mname}(self{''.join(', ' + p for p in ps)})"
                body.append(f"r = {call}")
                sc.names["r"] = ANY
                body.append(f"return (r, {self.expr(NUM, sc)})")
                res = ANY
            else:
                body.append(f"return {self.expr(NUM, sc)}")
                res = NUM
            c.methods[mname] = (nargs, res)
            lines += ["    @T", f"    def {mname}(self{''.join(', ' + p for p in ps)}):"] + ["        " + b for b in body]
        if base:
            for m, v in base.methods.items():
                c.methods.setdefault(m, v)
            c.props.update(base.props)
            c.dunders |= base.dunders
        if num_attrs and self.chance(0.6):
            p = f"p{i}"
            sc = Scope({f"self.{a}": attrs[a] for a in num_attrs})
            lines += ["    @property", "    @T", f"    def {p}(self):", f"        return {self.expr(NUM, sc)}"]
            c.props[p] = NUM
        first = list(attrs)[0]
        for du in self.r.sample(["__eq__", "__lt__", "__add__", "__len__", "__getitem__", "__iter__",
                                 "__repr__", "__hash__", "__bool__", "__contains__"], self.r.randint(0, 4)):
            if du == "__eq__":
                body = [f"def __eq__(self, other):", f"    return isinstance(other, {name}) and self.{first} == other.{first}"]
                if "__hash__" not in c.dunders:
                    body += ["__hash__ = None"] if self.chance(0.5) else []
            elif du == "__lt__":
                body = ["def __lt__(self, other):", f"    return str(self.{first}) < str(other.{first})"]
            elif du == "__add__":
                args = ", ".join(f"self.{a}" for a in attrs)
                body = ["def __add__(self, other):", f"    return {name}({args})"]
            elif du == "__len__":
                body = ["def __len__(self):", f"    return len(str(self.{first}))"]
            elif du == "__getitem__":
                body = ["def __getitem__(self, k):", "    if k > 2:", "        raise IndexError(k)",
                        f"    return (k, self.{first})"]
            elif du == "__iter__":
                body = ["def __iter__(self):", f"    yield self.{first}", "    yield from range(2)"]
            elif du == "__repr__":
                body = ["def __repr__(self):", f"    return f'{name}({{self.{first}!r}})'"]
            elif du == "__hash__":
                body = ["def __hash__(self):", f"    return hash(str(self.{first}))"]
            elif du == "__bool__":
                body = ["def __bool__(self):", f"    return bool(self.{first})"]
            else:
                body = ["def __contains__(self, x):", f"    return str(x) in str(self.{first})"]
            lines += ["    @T"] + ["    " + b for b in body]
            c.dunders.add(du)
        if self.chance(0.5):
            # Releases are part of what a program does: each one is logged (GDEL is
            # compared at the end), so releasing at another point or in another order
            # than CPython shows.
            lines += ["    @T", "    def __del__(self):",
                      f"        GDEL.append(({name!r}, getattr(self, {first!r}, None)))"]
            c.logs_del = True
        self.cur_class = None
        self.classes.append(c)
        return lines

    def gen_func(self, i: int, name: str | None = None, params: list[str] | None = None) -> list[str]:
        name = name or f"f{i}"
        params = params if params is not None else [self.pick([NUM, NUM, INT, STR, LIST]) for _ in range(self.r.randint(0, 3))]
        pnames = [f"{name}_p{k}" for k in range(len(params))]
        info = FuncInfo(name, params, ANY)
        if name not in ("entry", "helper0") and params:
            info.defaults = self.r.randint(0, len(params)) if self.chance(0.4) else 0
            info.kwonly = self.chance(0.2)
            info.star = self.chance(0.2) and not info.kwonly
        sig = []
        for k, (pn, kind) in enumerate(zip(pnames, params)):
            if info.kwonly and k == len(params) - 1:
                sig.append("*")
            sig.append(pn + (f"={self.expr(kind, Scope(), 2)}" if k >= len(params) - info.defaults else ""))
        if info.star:
            sig.append("*rest")
        sc = Scope(dict(zip(pnames, params)))
        if info.star:
            sc.names["rest"] = TUPLE
        self.in_func = info
        self.obj_class = {}
        body = self.block(sc, self.r.randint(2, 3 + self.size))
        body.append(f"return {self.expr(self.pick([NUM, STR, LIST, TUPLE, ANY]), sc)}")
        self.in_func = None
        # Every global a statement may rebind, declared first (a `global` after a use of
        # the name would not compile).
        decl = [f"global {', '.join(sorted(self.globals))}"] if self.globals else []
        lines = ["@T", f"def {name}({', '.join(sig)}):"] + self.indent(decl + body)
        self.funcs.append(info)
        return lines

    def program(self) -> str:
        # Cycles are never collected (no collection at an allocation-dependent moment
        # runs a `__del__`), so every release comes from reference counts.
        out = ["# generated by tiered's fuzzer", "", "import gc", "gc.disable()", "GDEL = []", ""]
        for g in range(self.r.randint(1, 3)):
            kind = self.pick([NUM, INT, STR, LIST])
            out.append(f"G{g} = {self.expr(kind, Scope())}")
            self.globals[f"G{g}"] = kind
        out += [
            "",
            "class Ctx:",
            "    @T",
            "    def __init__(self, name, swallow):",
            "        self.name = name",
            "        self.swallow = swallow",
            "    @T",
            "    def __enter__(self):",
            "        print('enter', self.name)",
            "        return self.name",
            "    @T",
            "    def __exit__(self, t, v, tb):",
            "        print('exit', self.name, t.__name__ if t else None)",
            "        return self.swallow and (t is None or issubclass(t, Exception))",
            "",
            "import types",
            "@T",
            "@types.coroutine",
            "def _pause(v):",
            "    got = yield ('pause', v)",
            "    return got",
            "",
            "def _astep(aw):",
            "    # An async generator's awaitable run to its end: what it yielded, how it ended.",
            "    it, seen = aw.__await__(), []",
            "    try:",
            "        while len(seen) < 20:",
            "            seen.append(it.send(None))",
            "    except StopIteration as stop:",
            "        return ('value', stop.value, seen)",
            "    except Exception as bad:",
            "        return ('raised', type(bad).__name__, str(bad), seen)",
            "    return ('unfinished', seen)",
            "",
        ]
        self.obj_class = {}
        for i in range(self.r.randint(0, 3)):
            out += self.gen_class(i) + [""]
        # A bounded recursive helper and a rebindable helper (global function name).
        out += ["@T", "def rec(n, acc):", "    if n <= 0 or n > 40:", "        return acc",
                "    return rec(n - 1, acc + n)", ""]
        self.funcs.append(FuncInfo("rec", [INT, NUM], NUM))
        self.funcs[-1].params = [INT, NUM]
        out += self.gen_func(0, name="helper0", params=[NUM]) + [""]
        self.globals["helper0"] = "func"
        if self.chance(0.5):
            out += self.gen_generator(0) + [""]
        if self.chance(0.3):
            out += self.gen_generator(1, is_async=True) + [""]
        for i in range(1, self.r.randint(2, 2 + self.size)):
            out += self.gen_func(i) + [""]
        out += self.gen_func(99, name="entry", params=[NUM, STR, LIST]) + [""]
        return "\n".join(out) + "\n"


#: Argument tuples each program's ``entry(a, b, c)`` is called with, in order: the kinds
#: change between calls (int, float, bool, big int), so specializations and guards differ.
ARGUMENT_SETS = [
    "(3, 'ab', [1, 2, 3])",
    "(3, 'ab', [1, 2, 3])",
    "(2.5, '', [0.5, -1.0])",
    "(True, 'xyz', [])",
    "(2**65, 'q', [2**64, -3, 7])",
    "(-0.0, 'hello world', [float('nan'), 1])",
    "(0, 'a', [5, 4, 3, 2, 1, 0])",
]


def generate(seed: int, size: int = 3) -> str:
    """The program of `seed` (its `entry` takes (number, str, list))."""
    g = Gen(seed, size)
    return g.program()
