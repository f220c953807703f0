"""Prints, as JSON, what frontend::CodeInfo needs of each snapshot case's code object
(the same fields tiers/src/code.rs reads from a live code object)."""

import json
import sys
import types

sys.path.insert(0, __import__("os").path.dirname(__file__))
import snapshot_cases  # noqa: E402


def const(c):
    if c is None or c is True or c is False or c is Ellipsis:
        return {"t": "singleton", "v": repr(c)}
    if type(c) is int:
        return {"t": "int", "v": c} if -(2**63) <= c < 2**63 else {"t": "bigint", "v": repr(c)}
    if type(c) is float:
        return {"t": "float", "v": c}
    if type(c) is str:
        return {"t": "str", "v": c}
    if isinstance(c, types.CodeType):
        return {"t": "other", "v": "code " + c.co_qualname}
    r = repr(c)
    return {"t": "other", "v": r if len(r) <= 60 else type(c).__name__}


def lines(code):
    out = [-1] * (len(code.co_code) // 2)
    for start, end, line in code.co_lines():
        if line is not None:
            for i in range(start // 2, min(end // 2, len(out))):
                out[i] = line - code.co_firstlineno
    return out


def info(code):
    return {
        "qualname": code.co_qualname,
        "code": code.co_code.hex(),
        "exception_table": code.co_exceptiontable.hex(),
        "consts": [const(c) for c in code.co_consts],
        "names": list(code.co_names),
        "varnames": list(code.co_varnames),
        "cellvars": list(code.co_cellvars),
        "freevars": list(code.co_freevars),
        "argcount": code.co_argcount,
        "posonlyargcount": code.co_posonlyargcount,
        "kwonlyargcount": code.co_kwonlyargcount,
        "flags": code.co_flags,
        # Lines relative to the def, so editing the cases file above a function does not
        # churn every snapshot.
        "lines": lines(code),
    }


cases = [{"name": f.__name__, "ops": ops, "code": info(f.__code__)} for f, ops in snapshot_cases.CASES]
for f, inner, ops in snapshot_cases.NESTED:
    code = next(c for c in f.__code__.co_consts if isinstance(c, types.CodeType) and c.co_name == inner)
    cases.append({"name": f.__name__ + "." + inner.strip("<>"), "ops": ops, "code": info(code)})
json.dump(cases, sys.stdout)
