//! Calls of builtins (CallBuiltin, CallBoundBuiltin): C functions, method descriptors of
//! builtin types and builtin classes, run as CPython 3.11's specialized CALL runs them.

use crate::lower::LKind;
use crate::native::emit::{mem, Emit};
use crate::runtime::GilCell;
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;
use tiered_ir::Op;

/// How a builtin call site recognizes its callable.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Guard {
    /// By identity (CallBuiltin): a function, method descriptor or class, which stays the
    /// same object.
    Is(*mut ffi::PyObject),
    /// By method definition (CallBoundBuiltin): any `builtin_function_or_method` made from
    /// this definition, whatever object it is bound to (see `bound_def`).
    Def(*mut ffi::PyMethodDef),
}

/// The method definition of `f` if it is a builtin method bound to an object (`append =
/// lst.append`, `get = d.get`), and the type whose own methods it is among. Reading the
/// attribute makes a new method object each time, so a site that called one once meets
/// another next time: the site guards the definition, as 3.11's PRECALL_NO_KW_BUILTIN_O
/// and friends guard only the callable's type and flags. The definition must be one of
/// the methods of `self`'s type or a base (static arrays that live as long as that type,
/// which the guarding code keeps alive): a definition allocated at run time (pybind11's)
/// could be freed and its address reused for another function.
///
/// # Safety
/// GIL held; `f` live.
pub(crate) unsafe fn bound_def(
    f: *mut ffi::PyObject,
) -> Option<(*mut ffi::PyMethodDef, *mut ffi::PyTypeObject)> {
    if ffi::Py_TYPE(f) != std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
        return None; // (PyCMethod's METH_METHOD functions are left to the generic call)
    }
    let fo = f as *mut ffi::PyCFunctionObject;
    let (ml, me) = ((*fo).m_ml, (*fo).m_self);
    if ml.is_null() || me.is_null() || ffi::PyModule_Check(me) != 0 {
        return None; // a module's function is one object: CallBuiltin guards its identity
    }
    let mro = (*ffi::Py_TYPE(me)).tp_mro;
    if mro.is_null() || ffi::PyTuple_Check(mro) == 0 {
        return None;
    }
    for i in 0..ffi::PyTuple_GET_SIZE(mro) {
        let tp = ffi::PyTuple_GET_ITEM(mro, i) as *mut ffi::PyTypeObject;
        let mut m = (*tp).tp_methods;
        while !m.is_null() && !(*m).ml_name.is_null() {
            if m == ml {
                return Some((ml, tp));
            }
            m = m.add(1);
        }
    }
    None
}

/// The method definition of a `builtin_function_or_method` (NULL for anything else).
///
/// # Safety
/// GIL held; `f` live.
unsafe fn def_of(f: *mut ffi::PyObject) -> *mut ffi::PyMethodDef {
    if ffi::Py_TYPE(f) == std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
        (*(f as *mut ffi::PyCFunctionObject)).m_ml
    } else {
        std::ptr::null_mut()
    }
}

/// A quickened builtin call (tier 1): `None` when `callable` fails the site's guard.
/// `list.append(x)` appends (`call_list_append`), METH_FASTCALL functions are called
/// directly (`FastC`), `str(x)` is `PyObject_Str`, the rest goes through vectorcall.
///
/// # Safety
/// GIL held; `args` holds the call's arguments (writable one slot before), `kwnames` NULL
/// or their names.
pub(crate) unsafe fn call_quick(
    guard: Guard,
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> Option<*mut ffi::PyObject> {
    let fits = match guard {
        Guard::Is(c) => callable == c,
        Guard::Def(ml) => def_of(callable) == ml,
    };
    if !fits {
        return None;
    }
    let nargs = ffi::PyVectorcall_NARGS(nargsf) as usize;
    if kwnames.is_null() {
        if let Some(r) = call_list_append(callable, args, nargs) {
            return Some(r);
        }
    }
    let direct = match fast_c(callable) {
        Some(fc) if fc.kw || kwnames.is_null() => call_fast_c(fc, args, nargs, kwnames),
        _ => None,
    };
    Some(match direct {
        Some(r) => r,
        None if kwnames.is_null() && is_str_of_one(callable, nargs) => ffi::PyObject_Str(*args),
        None => ffi::PyObject_Vectorcall(callable, args, nargsf, kwnames),
    })
}

/// Whether `f` is a builtin function or a method descriptor of a builtin type (both
/// vectorcall-capable C callables).
pub(crate) unsafe fn is_builtin(f: *mut ffi::PyObject) -> bool {
    let tp = ffi::Py_TYPE(f);
    tp == std::ptr::addr_of_mut!(ffi::PyCFunction_Type)
        || tp == std::ptr::addr_of_mut!(ffi::PyMethodDescr_Type)
        // Builtin classes (`str`, `int`, `tuple`...): static types, whose calls run no
        // Python code of their own (CPython's PRECALL_BUILTIN_CLASS and friends).
        || (ffi::PyType_Check(f) != 0
            && (*(f as *mut ffi::PyTypeObject)).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0)
}

/// A builtin whose C function CPython 3.11's specialized CALL runs directly, without the
/// vectorcall wrapper (PRECALL_NO_KW_BUILTIN_FAST, PRECALL_BUILTIN_FAST_WITH_KEYWORDS,
/// PRECALL_NO_KW_METHOD_DESCRIPTOR_FAST): METH_FASTCALL functions, with or without
/// METH_KEYWORDS. Besides the wrapper's cost this skips its recursion-depth count, which
/// CPython charges only to the other conventions (METH_O, METH_NOARGS...), so recursion
/// through such builtins reaches RecursionError at CPython's depth.
#[derive(Clone, Copy)]
pub(crate) struct FastC {
    /// The C function: `(self, args, nargs)`, plus `kwnames` (NULL here) with `kw`.
    f: usize,
    kw: bool,
    recv: Receiver,
}

/// Where a `FastC` call's `self` comes from.
#[derive(Clone, Copy)]
enum Receiver {
    /// The builtin function's bound `self` (the callable is this one object).
    Bound(*mut ffi::PyObject),
    /// The callable's bound `self`, read when called (any method of one definition).
    OfCallable,
    /// A method descriptor's: the first argument, which must be exactly this type.
    FirstArg(*mut ffi::PyTypeObject),
}

/// The vectorcall function of a builtin (`is_builtin`) guarded by identity, which can never change:
/// a static type's `tp_vectorcall` (`set`, `tuple`, `reversed`...), a builtin function's
/// or method descriptor's (set when it was made). Native code calls it directly, as
/// 3.11's specialized calls of builtins call their C functions, skipping
/// `PyObject_Vectorcall`'s lookup and `_Py_CheckFunctionResult`, which only turns a C
/// function that breaks the call protocol into SystemError (nqueens makes 2.3M such calls
/// a run: called directly, it runs 0.7% fewer instructions).
///
/// # Safety
/// GIL held; the callable alive.
unsafe fn fixed_vectorcall(guard: Guard) -> Option<ffi::vectorcallfunc> {
    let Guard::Is(c) = guard else {
        return None;
    };
    if !is_builtin(c) {
        return None;
    }
    ffi::PyVectorcall_Function(c)
}

/// `callable`'s direct C entry, if CPython would call it directly (see `FastC`).
///
/// # Safety
/// GIL held; `callable` live.
unsafe fn fast_c(callable: *mut ffi::PyObject) -> Option<FastC> {
    let tp = ffi::Py_TYPE(callable);
    if tp == std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
        let f = callable as *mut ffi::PyCFunctionObject;
        fast_c_of((*f).m_ml, Receiver::Bound((*f).m_self))
    } else if tp == std::ptr::addr_of_mut!(ffi::PyMethodDescr_Type) {
        let d = callable as *mut ffi::PyMethodDescrObject;
        fast_c_of((*d).d_method, Receiver::FirstArg((*d).d_common.d_type))
    } else {
        None
    }
}

/// The direct C entry of method definition `ml` (NULL: none) called with `recv`, if
/// CPython would call it directly (see `FastC`).
///
/// # Safety
/// GIL held; `ml` NULL or a live definition.
unsafe fn fast_c_of(ml: *mut ffi::PyMethodDef, recv: Receiver) -> Option<FastC> {
    if ml.is_null() {
        return None;
    }
    let kw = match (*ml).ml_flags {
        ffi::METH_FASTCALL => false,
        x if x == ffi::METH_FASTCALL | ffi::METH_KEYWORDS => true,
        _ => return None,
    };
    let f = (*ml).ml_meth.PyCFunction as usize;
    (f != 0).then_some(FastC { f, kw, recv })
}

/// Calls `fc` with `nargs` positional arguments at `args` and, for a METH_KEYWORDS one,
/// the keyword arguments after them named by `kwnames` (NULL: none), as CPython's
/// specialized CALL does; `None` when a method descriptor's `self` is missing or not
/// exactly its type (vectorcall then raises CPython's own TypeError).
///
/// # Safety
/// GIL held; `args` holds `nargs` live objects, then one per name in `kwnames`; `kwnames`
/// is NULL unless `fc.kw`.
unsafe fn call_fast_c(
    fc: FastC,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> Option<*mut ffi::PyObject> {
    let (me, args, nargs) = match fc.recv {
        Receiver::Bound(me) => (me, args, nargs),
        Receiver::OfCallable => return None, // (native code's only)
        Receiver::FirstArg(tp) => {
            if nargs == 0 || ffi::Py_TYPE(*args) != tp {
                return None;
            }
            (*args, args.add(1), nargs - 1)
        }
    };
    let n = nargs as ffi::Py_ssize_t;
    Some(if fc.kw {
        // SAFETY: METH_FASTCALL | METH_KEYWORDS functions have this signature.
        let f = std::mem::transmute::<usize, ffi::PyCFunctionFastWithKeywords>(fc.f);
        f(me, args, n, kwnames)
    } else {
        // SAFETY: METH_FASTCALL functions have this signature.
        let f = std::mem::transmute::<usize, ffi::PyCFunctionFast>(fc.f);
        f(me, args as *mut *mut ffi::PyObject, n)
    })
}

/// `str(x)` with one positional argument is `PyObject_Str(x)`, as CPython's
/// PRECALL_NO_KW_STR_1 runs it: no argument tuple, no `str.__new__` parsing.
fn is_str_of_one(callable: *mut ffi::PyObject, nargs: usize) -> bool {
    // Taking the address of the static str type reads nothing.
    nargs == 1 && callable == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as *mut ffi::PyObject
}

/// The `list.append` method descriptor, looked up once (static: it lives as long as the
/// list type, whose attributes cannot be set).
static LIST_APPEND: GilCell<usize> = GilCell::new(0);

/// The `list.append` method descriptor (NULL if the lookup failed).
///
/// # Safety
/// GIL held.
unsafe fn list_append() -> *mut ffi::PyObject {
    let known = LIST_APPEND.with(|d| *d);
    if known != 0 {
        return known as *mut ffi::PyObject;
    }
    let name = ffi::PyUnicode_InternFromString(c"append".as_ptr());
    if name.is_null() {
        ffi::PyErr_Clear();
        return std::ptr::null_mut();
    }
    let d = crate::cpy::_PyType_Lookup(std::ptr::addr_of_mut!(ffi::PyList_Type), name);
    ffi::Py_DECREF(name);
    LIST_APPEND.with(|known| *known = d as usize);
    d
}

/// `list.append(l, x)` on an exact list, as 3.11's PRECALL_NO_KW_LIST_APPEND runs it: no
/// call protocol, and so no recursion level counted (the method descriptor's vectorcall
/// counts one, which made a recursive function that appends reach RecursionError a level
/// before CPython in tier 1). None when the call is not that.
///
/// # Safety
/// GIL held; `args` holds `nargs` live objects.
unsafe fn call_list_append(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
) -> Option<*mut ffi::PyObject> {
    if nargs != 2
        || ffi::Py_TYPE(callable) != std::ptr::addr_of_mut!(ffi::PyMethodDescr_Type)
        || callable != list_append()
        || ffi::Py_TYPE(*args) != std::ptr::addr_of_mut!(ffi::PyList_Type)
    {
        return None;
    }
    if ffi::PyList_Append(*args, *args.add(1)) != 0 {
        return Some(std::ptr::null_mut());
    }
    ffi::Py_INCREF(ffi::Py_None());
    Some(ffi::Py_None())
}

/// Arguments a native builtin call passes in its stack array (more take the helper).
const BUILTIN_MAX_ARGS: u32 = 15;

/// A call of a builtin function or method (CallBuiltin, CallBoundBuiltin) from native
/// code: the callable checked by `guard`, unboxed numbers boxed in place, the arguments
/// laid out in a stack array and handed to the C function, as tier 1 does. Anything else
/// (keywords, a shape the site did not have) goes to `helper`; success continues at `done`.
pub(crate) fn emit(e: &mut Emit, pc: usize, guard: Guard, helper: Block, done: Block) {
    let inst = e.c.linear.insts[pc];
    let ops: Vec<u32> =
        e.c.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize].to_vec();
    let LKind::Op(Op::Call { kwnames }) = inst.kind else {
        e.b.ins().jump(helper, &[]);
        return;
    };
    // The shape LOAD_GLOBAL (NULL, f, args) or LOAD_METHOD (method, self, args) gave it:
    // decided by what defines the first operand, checked at run time.
    let null_first =
        e.c.linear
            .insts
            .iter()
            .any(|i| matches!(i.kind, LKind::Op(Op::Null {})) && i.dst == ops[0]);
    let (callee, args) = if null_first {
        (ops[1], &ops[2..])
    } else {
        (ops[0], &ops[1..])
    };
    if kwnames.0.is_some() || args.len() as u32 > BUILTIN_MAX_ARGS {
        e.b.ins().jump(helper, &[]);
        return;
    }
    let slow = helper;
    if null_first {
        let t0 = e.tag(ops[0]);
        e.guard_eq(t0, tag::NULL as i64, slow);
    }
    let t = e.tag(callee);
    e.guard_eq(t, tag::OBJ as i64, slow);
    let f = e.payload(callee, e.ptr);
    // The known callable, or null (`Guard::Def`: any of the definition's).
    let callable = match guard {
        Guard::Is(callable) => {
            e.guard_eq(f, callable as i64, slow);
            callable
        }
        Guard::Def(ml) => {
            e.guard_type(f, std::ptr::addr_of_mut!(ffi::PyCFunction_Type), slow);
            let m =
                e.b.ins()
                    .load(e.ptr, mem(), f, crate::cpy::CFUNCTION_PARTS.0);
            e.guard_eq(m, ml as i64, slow);
            std::ptr::null_mut()
        }
    };
    // Arguments as objects: numbers boxed in place (one object per value, as tier 1
    // makes), bools as the singletons.
    let array = e.call_args_array();
    for (i, &r) in args.iter().enumerate() {
        let o = e.object_of(r, slow);
        // Slot 0 stays free for PY_VECTORCALL_ARGUMENTS_OFFSET.
        e.b.ins().store(mem(), o, array, 8 * (i as i32 + 1));
    }
    // list.append(x), as 3.11's PRECALL_NO_KW_LIST_APPEND: no call protocol at all.
    // SAFETY: compiling runs with the GIL held.
    if args.len() == 2 && !callable.is_null() && callable == unsafe { list_append() } {
        let me = e.b.ins().load(e.ptr, mem(), array, 8);
        // A list subclass (or anything else) as self: the descriptor call checks it.
        e.guard_type(me, std::ptr::addr_of_mut!(ffi::PyList_Type), slow);
        let x = e.b.ins().load(e.ptr, mem(), array, 16);
        let st = e
            .call(
                ffi::PyList_Append as *const () as usize,
                &[e.ptr, e.ptr],
                Some(types::I32),
                &[me, x],
            )
            .expect("returns");
        e.raise_if(pc, st);
        // SAFETY: taking None's address reads nothing.
        let none = e.b.ins().iconst(e.ptr, unsafe { ffi::Py_None() } as i64);
        e.incref(none);
        e.set(inst.dst, tag::OBJ, none);
        e.b.ins().jump(done, &[]);
        return;
    }
    // SAFETY: compiling runs with the GIL held; the site's code keeps `callable` (or the
    // type owning `ml`) alive.
    let fast = match guard {
        Guard::Is(callable) => unsafe { fast_c(callable) },
        Guard::Def(ml) => unsafe { fast_c_of(ml, Receiver::OfCallable) },
    }
    .filter(|fc| !matches!(fc.recv, Receiver::FirstArg(_)) || !args.is_empty());
    let r = if let Some(fc) = fast {
        emit_fast_c(e, fc, f, array, args.len(), slow)
    } else if is_str_of_one(callable, args.len()) {
        let x = e.b.ins().load(e.ptr, mem(), array, 8);
        e.call(
            ffi::PyObject_Str as *const () as usize,
            &[e.ptr],
            Some(e.ptr),
            &[x],
        )
        .expect("returns")
    } else {
        let argv = e.b.ins().iadd_imm_s(array, 8);
        let nargsf = e.b.ins().iconst(
            e.ptr,
            (args.len() | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET) as i64,
        );
        let null = e.b.ins().iconst(e.ptr, 0);
        // SAFETY: compiling runs with the GIL held; the site keeps `callable` alive.
        let target = match unsafe { fixed_vectorcall(guard) } {
            Some(vc) => vc as usize,
            None => ffi::PyObject_Vectorcall as *const () as usize,
        };
        e.call(
            target,
            &[e.ptr, e.ptr, e.ptr, e.ptr],
            Some(e.ptr),
            &[f, argv, nargsf, null],
        )
        .expect("returns")
    };
    let failed = e.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
    e.raise_if(pc, failed);
    e.set(inst.dst, tag::OBJ, r);
    e.b.ins().jump(done, &[]);
}

/// Native code for `call_fast_c` of the callable `f` on the `nargs` arguments in `array`
/// (from slot 1): a method descriptor's `self` of another type branches to `slow`.
fn emit_fast_c(
    e: &mut Emit,
    fc: FastC,
    f: CValue,
    array: CValue,
    nargs: usize,
    slow: Block,
) -> CValue {
    let ptr = e.ptr;
    let (me, argv, n) = match fc.recv {
        Receiver::Bound(me) => (
            e.b.ins().iconst(ptr, me as i64),
            e.b.ins().iadd_imm_s(array, 8),
            nargs,
        ),
        Receiver::OfCallable => (
            e.b.ins().load(ptr, mem(), f, crate::cpy::CFUNCTION_PARTS.1),
            e.b.ins().iadd_imm_s(array, 8),
            nargs,
        ),
        Receiver::FirstArg(tp) => {
            let me = e.b.ins().load(ptr, mem(), array, 8);
            e.guard_type(me, tp, slow);
            (me, e.b.ins().iadd_imm_s(array, 16), nargs - 1)
        }
    };
    let n = e.b.ins().iconst(ptr, n as i64);
    let mut params = vec![ptr, ptr, ptr];
    let mut argvals = vec![me, argv, n];
    if fc.kw {
        params.push(ptr);
        argvals.push(e.b.ins().iconst(ptr, 0));
    }
    // The signature key: any number unique to the signature (these two are not helper
    // addresses).
    let key = if fc.kw { 3 } else { 2 };
    let f = e.b.ins().iconst(ptr, fc.f as i64);
    e.call_value(key, f, &params, Some(ptr), &argvals)
        .expect("returns")
}
