"""Bad input never crashes the process.

Hand-made code objects (garbage bytecode, broken tables) run in a subprocess
each: CPython itself may crash on garbage bytecode, so we do not compare with
it; we only require that *calling the strict tiered wrapper* gives a Python
exception (UnsupportedError or another one) and that the process exits
normally (no signal).  Non-function inputs to tiered() and wrong call shapes
must give clear exceptions too.
"""

import dis
import random
import textwrap

import pytest

from harness import run_python

OP = dis.opmap
RESUME = bytes([OP["RESUME"], 0])
RET = bytes([OP["RETURN_VALUE"], 0])
CACHE = bytes([0, 0])


def ins(name, arg=0):
    return bytes([OP[name], arg])


_SCRIPT = textwrap.dedent("""
    import sys
    from tiered import tiered, UnsupportedError

    def f(a=1):
        x = a + 1
        return x

    def make():
        code = f.__code__
        return {make_expr}

    try:
        new_code = make()
        f.__code__ = new_code
    except Exception as e:
        print("REJECTED-BY-CPYTHON", type(e).__name__, e)
        sys.exit(0)
    w = tiered(f, strict=True)
    for attempt in range(2):
        try:
            r = w()
        except UnsupportedError as e:
            print("UNSUPPORTED", attempt, str(e)[:200].replace("\\n", " "))
        except Exception as e:
            print("EXCEPTION", attempt, type(e).__name__, str(e)[:200].replace("\\n", " "))
        else:
            print("RETURNED", attempt, repr(r)[:200])
        sys.stdout.flush()
    print("ALIVE")
""")

CO = "code.co_code"

# (id, expression building the replacement code object from `code`)
GARBAGE = [
    ("empty", "code.replace(co_code=b'')"),
    ("odd-length", f"code.replace(co_code={CO}[:-1])"),
    ("truncated-no-return", f"code.replace(co_code={CO}[:4])"),
    ("resume-only", f"code.replace(co_code={RESUME!r})"),
    ("invalid-opcode-255", f"code.replace(co_code={RESUME + bytes([255, 0]) + RET!r})"),
    ("undefined-opcode-4", f"code.replace(co_code={RESUME + bytes([4, 0]) + RET!r})"),
    ("specialized-opcode-3", f"code.replace(co_code={RESUME + ins('LOAD_FAST', 0) + ins('LOAD_FAST', 0) + bytes([3, 0]) + CACHE + RET!r})"),
    ("cache-as-instruction", f"code.replace(co_code={RESUME + CACHE + CACHE + RET!r})"),
    ("lone-pop-top-then-return", f"code.replace(co_code={RESUME + ins('POP_TOP') + RET!r})"),
    ("return-empty-stack", f"code.replace(co_code={RESUME + RET!r})"),
    ("binary-op-underflow", f"code.replace(co_code={RESUME + ins('LOAD_FAST', 0) + ins('BINARY_OP', 0) + CACHE + RET!r})"),
    ("binary-op-missing-cache", f"code.replace(co_code={RESUME + ins('LOAD_FAST', 0) + ins('LOAD_FAST', 0) + ins('BINARY_OP', 0) + RET!r})"),
    ("jump-forward-out-of-range", f"code.replace(co_code={RESUME + ins('JUMP_FORWARD', 200) + RET!r})"),
    ("jump-backward-before-start", f"code.replace(co_code={RESUME + ins('JUMP_BACKWARD', 50) + RET!r})"),
    ("cond-jump-out-of-range", f"code.replace(co_code={RESUME + ins('LOAD_FAST', 0) + ins('POP_JUMP_FORWARD_IF_TRUE', 100) + ins('LOAD_CONST', 0) + RET!r})"),
    ("huge-extended-arg-const", f"code.replace(co_code={RESUME + ins('EXTENDED_ARG', 255) * 3 + ins('LOAD_CONST', 255) + RET!r})"),
    ("huge-extended-arg-fast", f"code.replace(co_code={RESUME + ins('EXTENDED_ARG', 255) * 3 + ins('LOAD_FAST', 255) + RET!r})"),
    ("huge-extended-arg-jump", f"code.replace(co_code={RESUME + ins('EXTENDED_ARG', 255) * 3 + ins('JUMP_FORWARD', 255) + RET!r})"),
    ("dangling-extended-arg", f"code.replace(co_code={RESUME + ins('LOAD_CONST', 0) + RET + ins('EXTENDED_ARG', 1)!r})"),
    ("const-index-out-of-range", f"code.replace(co_code={RESUME + ins('LOAD_CONST', 50) + RET!r})"),
    ("fast-index-out-of-range", f"code.replace(co_code={RESUME + ins('LOAD_FAST', 99) + RET!r})"),
    ("store-fast-out-of-range", f"code.replace(co_code={RESUME + ins('LOAD_CONST', 0) + ins('STORE_FAST', 99) + ins('LOAD_CONST', 0) + RET!r})"),
    ("global-name-out-of-range", f"code.replace(co_code={RESUME + ins('LOAD_GLOBAL', 200) + CACHE * 5 + RET!r})"),
    ("stack-overflow-vs-stacksize", f"code.replace(co_stacksize=1, co_code={RESUME + ins('LOAD_CONST', 0) * 40 + RET!r})"),
    ("stacksize-zero", "code.replace(co_stacksize=0)"),
    ("consts-emptied", "code.replace(co_consts=())"),
    ("varnames-emptied", "code.replace(co_varnames=(), co_argcount=0)"),
    ("reraise-empty-stack", f"code.replace(co_code={RESUME + ins('RERAISE', 0) + RET!r})"),
    ("pop-except-without-exception", f"code.replace(co_code={RESUME + ins('POP_EXCEPT') + ins('LOAD_CONST', 0) + RET!r})"),
    ("yield-in-plain-function", f"code.replace(co_code={RESUME + ins('LOAD_CONST', 0) + ins('YIELD_VALUE') + RET!r})"),
    ("return-generator-in-plain-function", f"code.replace(co_code={bytes([OP['RETURN_GENERATOR'], 0, OP['POP_TOP'], 0]) + RESUME + ins('LOAD_CONST', 0) + RET!r})"),
    ("garbage-exception-table", "code.replace(co_exceptiontable=b'\\xff\\xff\\xff\\x7f\\x00')"),
    ("garbage-line-table", "code.replace(co_linetable=b'\\xff' * 12)"),
    ("empty-line-table-raising", f"code.replace(co_linetable=b'', co_code={RESUME + ins('LOAD_FAST', 0) + ins('LOAD_CONST', 0) + ins('BINARY_OP', 0) + CACHE + RET!r})"),
]

# cases whose instructions still mean something: the result they mean (repr)
MEANINGFUL = {
    "garbage-exception-table": "2",
    "garbage-line-table": "2",
    "dangling-extended-arg": "None",
    "stacksize-zero": "2",
    "stack-overflow-vs-stacksize": "None",
    # CPython maps specialized opcodes back to their base op when co_code is
    # read (opcode 3 reads back as BINARY_OP): a valid program
    "specialized-opcode-3": "2",
}

_rng = random.Random(1234)
for _i in range(8):
    _body = bytes(_rng.randrange(256) for _ in range(2 * _rng.randrange(2, 24)))
    GARBAGE.append((f"random-{_i}", f"code.replace(co_code={RESUME + _body!r})"))


def _run_garbage(expr):
    r = run_python(_SCRIPT.format(make_expr=expr), timeout=60)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    assert r.returncode == 0, f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    return r.stdout.splitlines()


@pytest.mark.real_tiering
@pytest.mark.parametrize("name,expr", [pytest.param(n, e, id=n) for n, e in GARBAGE if not n.startswith("random")])
def test_garbage_code_gives_python_exception(name, expr):
    lines = _run_garbage(expr)
    if lines and lines[0].startswith("REJECTED-BY-CPYTHON"):
        return  # CPython refused to build the code object: nothing reaches tiered
    assert lines[-1] == "ALIVE", lines
    outcomes = lines[:-1]
    assert len(outcomes) == 2, lines
    for attempt, line in enumerate(outcomes):
        if name in MEANINGFUL:
            # the bytecode itself is fine (only a table or a size is off, or
            # junk follows the return): its real result is acceptable too
            if line == f"RETURNED {attempt} {MEANINGFUL[name]}":
                continue
        assert line.startswith(("UNSUPPORTED", "EXCEPTION")), f"strict tiered call did not raise: {line}"


@pytest.mark.real_tiering
@pytest.mark.parametrize("name,expr", [pytest.param(n, e, id=n) for n, e in GARBAGE if n.startswith("random")])
def test_random_code_does_not_crash(name, expr):
    # random bytes may happen to be a valid program: only "no crash" is required
    lines = _run_garbage(expr)
    assert lines and (lines[0].startswith("REJECTED-BY-CPYTHON") or lines[-1] == "ALIVE"), lines


_NON_FUNCTIONS = textwrap.dedent("""
    import functools, sys
    from tiered import tiered, UnsupportedError

    class C:
        def m(self):
            return "m"
        def __call__(self):
            return "called"

    def plain(x=1):
        return x

    inputs = {
        "int": 42, "none": None, "builtin": len, "class": C, "bound-method": C().m,
        "partial": functools.partial(plain, 2), "callable-object": C(), "string": "f",
        "code-object": plain.__code__, "staticmethod": staticmethod(plain), "lambda-ok": (lambda: "ok"),
    }
    for name, obj in inputs.items():
        try:
            w = tiered(obj)
        except (TypeError, ValueError, UnsupportedError) as e:
            print(name, "wrap-error", type(e).__name__)
            continue
        try:
            expected = ("ret", repr(obj()))
        except Exception as e:
            expected = ("exc", type(e).__name__)
        try:
            got = ("ret", repr(w()))
        except Exception as e:
            got = ("exc", type(e).__name__)
        print(name, "same" if got == expected or got[0] == "exc" else f"DIFFERENT {expected} {got}")
    print("ALIVE")
""")


def test_non_function_inputs_to_tiered():
    r = run_python(_NON_FUNCTIONS)
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    lines = r.stdout.splitlines()
    assert lines[-1] == "ALIVE", lines
    for line in lines[:-1]:
        assert "DIFFERENT" not in line, line
    assert "lambda-ok same" in lines


_WRONG_SHAPES = textwrap.dedent("""
    from tiered import tiered

    def f(a, /, b, *, c):
        return a, b, c

    w = tiered(f, strict=True)
    calls = [
        ((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {"c": 1}), ((1,), {"a": 1, "b": 2, "c": 3}),
        ((1, 2), {"c": 3, "d": 4}), ((1, 2), {"b": 2, "c": 3}), ((), {"b": 1, "c": 2}),
        ((1, 2), {"c": 3}),
    ]
    for args, kwargs in calls:
        try:
            e1 = repr(f(*args, **kwargs))
        except TypeError as e:
            e1 = "TypeError: " + str(e)
        try:
            e2 = repr(w(*args, **kwargs))
        except TypeError as e:
            e2 = "TypeError: " + str(e)
        print("same" if e1 == e2 else f"DIFFERENT {e1!r} {e2!r}")
    # kwargs dict with non-string keys through the C calling convention
    for bad in ({1: 2}, {"c": 1, 2: 3}):
        try:
            f(1, 2, **bad)
        except TypeError as e:
            e1 = str(e)
        try:
            w(1, 2, **bad)
        except TypeError as e:
            e2 = str(e)
        print("same" if e1 == e2 else f"DIFFERENT {e1!r} {e2!r}")
    print("ALIVE")
""")


def test_wrong_call_shapes_no_crash():
    r = run_python(_WRONG_SHAPES)
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    lines = r.stdout.splitlines()
    assert lines[-1] == "ALIVE", lines
    assert all(line == "same" for line in lines[:-1]), lines
