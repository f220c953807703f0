"""Dump CPython's own view of some bytecode as JSON, for frontend/tests/decode_vs_dis.rs.

Prints one JSON object:
  python_version: "X.Y.Z"
  codes: list of code objects, each
    where:           a readable path, for failure messages
    code:            hex of co_code
    exceptiontable:  hex of co_exceptiontable
    instrs:          dis.get_instructions(code) rows
    exceptions:      dis._parse_exception_table(code) rows [start, end, target, depth, lasti]
                     (byte offsets, as dis gives them)
    adaptive:        (only for code that CPython quickened) hex of _co_code_adaptive
    adaptive_instrs: (likewise) rows from dis.get_instructions(code, adaptive=True)
  probes: [{expect, base, raw}]: `raw` is the byte CPython itself wrote into
    _co_code_adaptive where dis saw opcode `base`, after a warm-up that is known to
    specialize it to `expect`; this checks the generated numbering against the C tables.

An instruction row is [offset_units, raw_opcode, opname, base_opname, arg, jump_target_units]
with null for a missing arg (opcodes below HAVE_ARGUMENT) or for non-jumps.

Code comes from compiling the source of a few stdlib modules (every nested code object,
shadowed pure-Python functions included), from the live modules after a workload, and from
a synthetic module written to hit EXTENDED_ARG on jumps and constants, SEND, and the
JUMP_IF_*_OR_POP family.
"""

import collections
import contextlib
import difflib
import dis
import heapq
import importlib.util
import json
import json.decoder
import json.encoder
import opcode
import sys
import textwrap
import types

STATIC_MODULES = [
    "heapq",
    "bisect",
    "json.decoder",
    "json.encoder",
    "collections",
    "textwrap",
    "difflib",
    "contextlib",
]
LIVE_MODULES = [heapq, json.decoder, json.encoder, collections, textwrap, difflib, contextlib]

# Jumps longer than 255 code units need EXTENDED_ARG, in both directions; more than 256
# constants need it for LOAD_CONST.
_BIG_BODY = "\n".join(f"            t = t + {i}" for i in range(300))
_MANY_CONSTS = "\n".join(f"    t = t + {i}.5" for i in range(300))
SYNTHETIC = f'''
def long_jumps(n, flag):
    t = 0
    while n > 0:
        n = n - 1
        if flag:
{_BIG_BODY}
    return t

def many_consts():
    t = 0.0
{_MANY_CONSTS}
    return t

def short_circuit(a, b, c):
    x = a and b
    y = a or c
    return x, y, (a and b and c), (a or b or c)

def none_checks(a):
    if a is None:
        return 1
    if a is not None:
        return 2
    while a is not None:
        a = None
    return 3

def delegating(it):
    r = yield from it
    return r

async def awaiting(aw):
    async with aw as x:
        return await x

def handlers(f):
    try:
        return f()
    except ValueError as e:
        return e
    finally:
        f = None

def matching(v):
    match v:
        case [a, b, *rest]:
            return a, b, rest
        case {{"k": k}}:
            return k
        case int() | float():
            return "num"
        case _:
            return None

def comprehensions(xs):
    return [x for x in xs if x], {{x: 1 for x in xs}}, sum(x for x in xs)

# Probes: warm-ups whose specializations are predictable.
def p_add(a, b):
    return a + b

def p_loop(n):
    t = 0
    for i in range(n):
        t = t + i
    return t

def p_len(x):
    return len(x)

def p_cmp(a, b):
    if a < b:
        return 1
    return 0
'''

PROBES = [
    # (function name, base opname to look for, expected specialized opname)
    ("p_add", "BINARY_OP", "BINARY_OP_ADD_INT"),
    ("p_add", "RESUME", "RESUME_QUICK"),
    ("p_add", "LOAD_FAST", "LOAD_FAST__LOAD_FAST"),
    ("p_loop", "JUMP_BACKWARD", "JUMP_BACKWARD_QUICK"),
    ("p_len", "LOAD_GLOBAL", "LOAD_GLOBAL_BUILTIN"),
    ("p_len", "PRECALL", "PRECALL_NO_KW_LEN"),
    ("p_cmp", "COMPARE_OP", "COMPARE_OP_INT_JUMP"),
    ("many_consts", "EXTENDED_ARG", "EXTENDED_ARG_QUICK"),
]

WARMUP = 1000


def instr_rows(code, adaptive):
    rows = []
    for ins in dis.get_instructions(code, adaptive=adaptive):
        base = dis._all_opname[dis._deoptop(ins.opcode)]
        target = None
        if dis._deoptop(ins.opcode) in opcode.hasjrel:
            assert ins.argval % 2 == 0
            target = ins.argval // 2
        assert ins.offset % 2 == 0
        rows.append([ins.offset // 2, ins.opcode, ins.opname, base, ins.arg, target])
    return rows


def exception_rows(code):
    return [[e.start, e.end, e.target, e.depth, e.lasti] for e in dis._parse_exception_table(code)]


def walk(code, where):
    """Yield (where, code) for a code object and every code object nested in it."""
    yield where, code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from walk(const, f"{where}.{const.co_qualname}")


def static_entry(where, code):
    return {
        "where": where,
        "code": code.co_code.hex(),
        "exceptiontable": code.co_exceptiontable.hex(),
        "instrs": instr_rows(code, adaptive=False),
        "exceptions": exception_rows(code),
    }


def live_codes(namespace, module_name, seen):
    """Code objects of the functions and classes a live module defines."""

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            visit(obj.__func__)
        elif isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    visit(f)
        elif isinstance(obj, types.FunctionType):
            yield_list.append(obj.__code__)
        elif isinstance(obj, type) and obj.__module__ == module_name:
            for value in vars(obj).values():
                visit(value)

    yield_list = []
    for value in list(namespace.values()):
        visit(value)
    return yield_list


def workload(synthetic):
    data = [(i * 7919) % 1013 for i in range(200)]
    text = "The quick brown fox jumps over the lazy dog. " * 8
    for _ in range(WARMUP // 10):
        list(heapq.merge(sorted(data[:50]), sorted(data[50:100])))
        heapq.nlargest(5, data, key=lambda x: -x)
        json.decoder.py_scanstring('"ab\\nc\\u00e9" tail', 1)
        json.dumps({"a": [1, 2.5, None, "x"], "b": {"c": True}}, indent=2, sort_keys=True)
        c = collections.Counter(text)
        c.most_common(3)
        c.update("abc")
        Point = collections.namedtuple("Point", "x y")
        Point(1, 2)._replace(x=3)
        collections.ChainMap({"a": 1}, {"b": 2})["b"]
        textwrap.fill(text, width=30)
        textwrap.dedent("    a\n    b\n")
        textwrap.shorten(text, width=40)
        sm = difflib.SequenceMatcher(None, text[:60], text[5:70])
        sm.ratio()
        sm.get_opcodes()
        list(difflib.unified_diff(["a\n", "b\n", "c\n"], ["a\n", "c\n", "d\n"]))
        with contextlib.suppress(KeyError):
            {}["missing"]
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: None)
    s = synthetic
    for i in range(WARMUP):
        s["p_add"](i, 1)
        s["p_loop"](20)
        s["p_len"]([i])
        s["p_cmp"](i, 500)
        s["many_consts"]()
        s["long_jumps"](2, i % 2)
        s["short_circuit"](i % 2, i % 3, i % 5)
        s["none_checks"](None if i % 2 else i)
        s["handlers"](int)
        s["matching"]([1, 2, 3] if i % 2 else {"k": i})
        s["comprehensions"](range(5))


def probe_rows(synthetic):
    rows = []
    for func_name, base, expect in PROBES:
        code = synthetic[func_name].__code__
        offsets = [ins.offset for ins in dis.get_instructions(code) if ins.opname == base]
        assert offsets, (func_name, base)
        raw = code._co_code_adaptive[offsets[0]]
        rows.append({"where": func_name, "base": base, "expect": expect, "raw": raw})
    return rows


def main():
    codes = []
    seen_content = set()

    def add(entry_where, code):
        key = (code.co_code, code.co_exceptiontable)
        if key not in seen_content:
            seen_content.add(key)
            codes.append(static_entry(entry_where, code))

    for name in STATIC_MODULES:
        origin = importlib.util.find_spec(name).origin
        with open(origin, encoding="utf-8") as f:
            module_code = compile(f.read(), origin, "exec")
        for where, code in walk(module_code, name):
            add(where, code)

    synthetic_code = compile(SYNTHETIC, "<synthetic>", "exec")
    for where, code in walk(synthetic_code, "synthetic"):
        add(where, code)
    synthetic = {}
    exec(synthetic_code, synthetic)

    workload(synthetic)

    seen_objects = set()
    live = []
    for module in LIVE_MODULES:
        live += [(module.__name__, c) for c in live_codes(vars(module), module.__name__, seen_objects)]
    live += [("synthetic", c) for c in live_codes(synthetic, synthetic.get("__name__"), seen_objects)]
    for module_name, top in live:
        for where, code in walk(top, f"live:{module_name}.{top.co_qualname}"):
            if code._co_code_adaptive == code.co_code:
                continue
            entry = static_entry(where, code)
            entry["adaptive"] = code._co_code_adaptive.hex()
            entry["adaptive_instrs"] = instr_rows(code, adaptive=True)
            codes.append(entry)

    version = "{}.{}.{}".format(*sys.version_info[:3])
    json.dump(
        {"python_version": version, "codes": codes, "probes": probe_rows(synthetic)},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
