"""Locals, constants, globals and builtins (including rebinding while a call is
running, shadowing builtins, custom __builtins__), `global`, and imports
inside functions."""

import builtins
import types

import pytest

from harness import cases, check

G = 1
COUNTER = 0
CONST_TUPLE = (1, 2)


# The module namespace, captured once: the helpers below must not use
# globals() (frame introspection) since they are called from tiered code.
_MODULE_GLOBALS = globals()


def _set_global(name, value):
    _MODULE_GLOBALS[name] = value


def _del_global(name):
    del _MODULE_GLOBALS[name]


def locals_and_constants(a):
    b = a
    c = 2**70
    d = "const"
    e = (1, ("nested", 2.5), None, ..., b"x", -0.0, frozenset({1}))
    f = None
    return a, b, c, d, e, f, True, 1j


def read_globals():
    return G, CONST_TUPLE, len(CONST_TUPLE), _set_global.__name__


def global_rebound_during_call():
    _set_global("G", 1)
    a = G
    _set_global("G", "rebound")
    b = G
    _set_global("G", 1)
    return a, b, G


def global_rebound_in_loop(n):
    _set_global("G", 0)
    seen = []
    for i in range(n):
        seen.append(G)
        _set_global("G", G + 1 if i % 2 else float(i))
    _set_global("G", 1)
    return seen


def global_deleted_during_call():
    _set_global("TEMP_GLOBAL", "here")
    a = TEMP_GLOBAL  # noqa: F821
    _del_global("TEMP_GLOBAL")
    try:
        return a, TEMP_GLOBAL  # noqa: F821
    except NameError as e:
        return a, str(e)


def shadow_builtin_then_delete():
    a = len([1, 2, 3])
    _set_global("len", lambda x: ("shadowed", x))
    try:
        b = len([1, 2, 3])
    finally:
        _del_global("len")
    c = len([1, 2, 3])
    return a, b, c


def shadow_builtin_in_loop(n):
    out = []
    try:
        for i in range(n):
            out.append(abs(-i))
            if i == 1:
                _set_global("abs", lambda v: "fake abs")
            if i == 3:
                _del_global("abs")
    finally:
        _MODULE_GLOBALS.pop("abs", None)
    return out


def builtins_module_modified():
    out = []
    try:
        out.append(my_new_builtin_xyz)  # noqa: F821
    except NameError as e:
        out.append(str(e))
    builtins.my_new_builtin_xyz = "now a builtin"
    try:
        out.append(my_new_builtin_xyz)  # noqa: F821
    finally:
        del builtins.my_new_builtin_xyz
    try:
        out.append(my_new_builtin_xyz)  # noqa: F821
    except NameError as e:
        out.append(str(e))
    return out


def builtin_replaced_on_builtins_module():
    original = builtins.max
    try:
        builtins.max = lambda *a, **k: "patched max"
        a = max(1, 2)
    finally:
        builtins.max = original
    return a, max(1, 2)


def undefined_name():
    return undefined_name_xyz  # noqa: F821


def global_statement():
    global COUNTER
    COUNTER = 0
    for _ in range(5):
        COUNTER += 1
    r = COUNTER
    COUNTER = 0
    return r


def global_declared_undefined():
    global NEVER_DEFINED_XYZ
    return NEVER_DEFINED_XYZ  # noqa: F821


def global_create_and_delete():
    global CREATED_XYZ
    CREATED_XYZ = [1]
    a = CREATED_XYZ
    del CREATED_XYZ
    try:
        return a, CREATED_XYZ
    except NameError as e:
        return a, str(e)


def global_del_missing():
    global NOT_THERE_XYZ
    del NOT_THERE_XYZ


def custom_globals_function(src_name):
    # a function whose globals are a plain dict with its own __builtins__
    code = _template.__code__
    env = {"__builtins__": {"len": lambda x: ("custom len", x)}, "K": src_name}
    fn = types.FunctionType(code, env)
    return fn()


def _template():
    return len(K), K  # noqa: F821


def custom_globals_missing_builtin():
    fn = types.FunctionType(_uses_abs.__code__, {"__builtins__": {}})
    return fn()


def _uses_abs():
    return abs(-1)


GLOBALS = cases(
    (locals_and_constants, (5,)), (read_globals, ()), (global_rebound_during_call, ()), (global_rebound_in_loop, (6,)),
    (global_deleted_during_call, ()), (shadow_builtin_then_delete, ()), (shadow_builtin_in_loop, (5,)),
    (builtins_module_modified, ()), (builtin_replaced_on_builtins_module, ()), (undefined_name, ()),
    (global_statement, ()), (global_declared_undefined, ()), (global_create_and_delete, ()), (global_del_missing, ()),
    (custom_globals_function, ("abc",)), (custom_globals_missing_builtin, ()),
)


@pytest.mark.parametrize("f,args,kwargs", GLOBALS)
def test_globals(f, args, kwargs):
    check(f, *args, **kwargs)


def test_custom_globals_function_itself_tiered():
    fn = types.FunctionType(_template.__code__, {"__builtins__": {"len": lambda x: -1}, "K": "k"})
    check(fn)
    fn2 = types.FunctionType(_template.__code__, {"__builtins__": builtins, "K": "kk"})
    check(fn2)


# --- imports inside functions ------------------------------------------------------

def import_module():
    import math
    import os.path
    import os.path as osp
    import collections.abc as cabc
    return math.sqrt(16), os.path.join("a", "b"), osp is os.path, cabc.Mapping.__name__


def from_import():
    from os import path, sep
    from collections import OrderedDict as OD, defaultdict
    from math import (floor,
                      ceil)
    return path.basename("/x/y"), sep, OD([(1, 2)]), defaultdict.__name__, floor(1.5), ceil(1.5)


def from_import_missing_name():
    from os import no_such_name_xyz  # noqa: F401


def import_missing_module():
    import no_such_module_xyz  # noqa: F401


def from_missing_module():
    from no_such_pkg_xyz.sub import thing  # noqa: F401


def relative_import_no_parent():
    from . import sibling  # noqa: F401


def import_binds_global():
    global json
    import json
    r = json.dumps([1])
    del json
    return r, "json" in _MODULE_GLOBALS


def import_in_loop(n):
    out = []
    for _ in range(n):
        import string
        out.append(string.digits[:3])
    return out


def import_dunder():
    m = __import__("math")
    sub = __import__("os.path", fromlist=["join"])
    return m.pi > 3, sub.join("p", "q")


def import_submodule_attr():
    import xml.dom
    return xml.dom.__name__


IMPORTS = cases(
    (import_module, ()), (from_import, ()), (from_import_missing_name, ()), (import_missing_module, ()),
    (from_missing_module, ()), (relative_import_no_parent, ()), (import_binds_global, ()), (import_in_loop, (3,)),
    (import_dunder, ()), (import_submodule_attr, ()),
)


@pytest.mark.parametrize("f,args,kwargs", IMPORTS)
def test_imports(f, args, kwargs):
    check(f, *args, **kwargs)
