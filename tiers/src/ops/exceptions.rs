//! Raising, handling and `with`: the thread's handled-exception state is kept exactly as
//! CPython's eval loop keeps it, so `sys.exc_info()`, bare `raise` and implicit chaining
//! (`__context__`) behave the same.

use crate::value::{Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;

/// PushExcInfo: makes `exc` the handled exception; returns the previous one (None if none).
///
/// # Safety
/// GIL held.
pub unsafe fn push_exc_info(exc: &Value) -> PyResult<Value> {
    // The innermost level's own exception, as PUSH_EXC_INFO reads it (not the topmost
    // one handled, which `PyErr_GetHandledException` gives: inside a generator whose own
    // level is empty that is its caller's, and the generator would keep it).
    let item = crate::cpy::ThreadState::current().exc_info();
    let prev = (*item).exc_value;
    let prev = Value::from_borrowed(if prev.is_null() { ffi::Py_None() } else { prev });
    ffi::PyErr_SetHandledException(exc.as_ptr());
    Ok(prev)
}

/// PopExcept: restores the handled exception saved by PushExcInfo.
///
/// # Safety
/// GIL held.
pub unsafe fn pop_except(prev: &Value) {
    let p = prev.as_ptr();
    ffi::PyErr_SetHandledException(if p == ffi::Py_None() {
        std::ptr::null_mut()
    } else {
        p
    });
}

/// CheckExcMatch: `isinstance(exc, types)`, rejecting non-exception classes as CPython does.
///
/// # Safety
/// GIL held.
pub unsafe fn check_exc_match(exc: &Value, types: &Value) -> PyResult<Value> {
    let t = types.as_ptr();
    let valid = |o: *mut ffi::PyObject| ffi::PyExceptionClass_Check(o) != 0;
    let ok = if ffi::PyTuple_Check(t) != 0 {
        (0..ffi::PyTuple_GET_SIZE(t)).all(|i| valid(ffi::PyTuple_GET_ITEM(t, i)))
    } else {
        valid(t)
    };
    if !ok {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            "catching classes that do not inherit from BaseException is not allowed",
        ));
    }
    Ok(Value::Bool(
        ffi::PyErr_GivenExceptionMatches(exc.as_ptr(), t) != 0,
    ))
}

/// How a `raise` left.
pub enum Raise {
    /// A new exception (its traceback gets this frame's line).
    New,
    /// A bare `raise` of the handled exception (keeps its traceback as is).
    Reraise,
}

/// Raise: `raise`, `raise exc`, `raise exc from cause`, as 3.11's do_raise.
///
/// # Safety
/// GIL held.
pub unsafe fn raise(exc: Option<&Value>, cause: Option<&Value>) -> Raise {
    let Some(exc) = exc else {
        let v = ffi::PyErr_GetHandledException();
        if v.is_null() {
            super::raise(ffi::PyExc_RuntimeError, "No active exception to reraise");
            return Raise::New;
        }
        restore(v);
        ffi::Py_DECREF(v);
        return Raise::Reraise;
    };
    let e = exc.as_ptr();
    let value = if ffi::PyExceptionClass_Check(e) != 0 {
        let Ok(v) = Owned::new(ffi::PyObject_CallNoArgs(e)) else {
            return Raise::New;
        };
        if ffi::PyExceptionInstance_Check(v.ptr()) == 0 {
            let (tr, vr) = (repr(e), repr(ffi::Py_TYPE(v.ptr()) as *mut ffi::PyObject));
            super::raise(
                ffi::PyExc_TypeError,
                &format!(
                    "calling {tr} should have returned an instance of BaseException, not {vr}"
                ),
            );
            return Raise::New;
        }
        v
    } else if ffi::PyExceptionInstance_Check(e) != 0 {
        ffi::Py_INCREF(e);
        match Owned::new(e) {
            Ok(v) => v,
            Err(Raised) => return Raise::New,
        }
    } else {
        super::raise(
            ffi::PyExc_TypeError,
            "exceptions must derive from BaseException",
        );
        return Raise::New;
    };
    if let Some(cause) = cause {
        let c = cause.as_ptr();
        let fixed = if ffi::PyExceptionClass_Check(c) != 0 {
            let f = ffi::PyObject_CallNoArgs(c);
            if f.is_null() {
                return Raise::New;
            }
            f
        } else if ffi::PyExceptionInstance_Check(c) != 0 {
            ffi::Py_INCREF(c);
            c
        } else if c == ffi::Py_None() {
            std::ptr::null_mut()
        } else {
            super::raise(
                ffi::PyExc_TypeError,
                "exception causes must derive from BaseException",
            );
            return Raise::New;
        };
        // Steals `fixed`; also sets __suppress_context__ (so `from None` hides the context).
        ffi::PyException_SetCause(value.ptr(), fixed);
    }
    // PyErr_SetObject chains the handled exception as __context__, as CPython's raise does.
    ffi::PyErr_SetObject(ffi::Py_TYPE(value.ptr()) as *mut ffi::PyObject, value.ptr());
    Raise::New
}

unsafe fn repr(o: *mut ffi::PyObject) -> String {
    let r = ffi::PyObject_Repr(o);
    if r.is_null() {
        ffi::PyErr_Clear();
        return "?".into();
    }
    let s = super::str_of(r);
    ffi::Py_DECREF(r);
    s
}

/// Sets an exception instance as the current error with its own traceback.
unsafe fn restore(v: *mut ffi::PyObject) {
    let t = ffi::Py_TYPE(v) as *mut ffi::PyObject;
    let tb = ffi::PyException_GetTraceback(v); // new reference or NULL
    ffi::Py_INCREF(t);
    ffi::Py_INCREF(v);
    ffi::PyErr_Restore(t, v, tb);
}

/// Reraise: re-raises the exception unchanged (RERAISE).
///
/// # Safety
/// GIL held; the operand is an exception instance.
pub unsafe fn reraise(exc: &Value) {
    let v = exc.as_ptr();
    if v.is_null() || ffi::PyExceptionInstance_Check(v) == 0 {
        super::raise(ffi::PyExc_SystemError, "tiered: RERAISE of a non-exception");
        return;
    }
    restore(v);
}

/// BeforeWith: looks up `__enter__`/`__exit__` on the type, calls `__enter__`.
///
/// # Safety
/// GIL held.
pub unsafe fn before_with(mgr: &Value) -> PyResult<(Value, Value)> {
    enter_context(mgr, [c"__enter__", c"__exit__"], "")
}

/// BeforeAsyncWith: `async with`'s entry, as BeforeWith's with `__aenter__`/`__aexit__`:
/// (bound `__aexit__`, the awaitable `__aenter__()` returned).
///
/// # Safety
/// GIL held.
pub unsafe fn before_async_with(mgr: &Value) -> PyResult<(Value, Value)> {
    enter_context(mgr, [c"__aenter__", c"__aexit__"], "asynchronous ")
}

/// BEFORE_WITH and BEFORE_ASYNC_WITH: the special methods `names` (enter, exit) looked up
/// on the type, the bound exit and what calling enter returned; `kind` goes in the
/// TypeError CPython raises for a missing one.
unsafe fn enter_context(
    mgr: &Value,
    names: [&std::ffi::CStr; 2],
    kind: &str,
) -> PyResult<(Value, Value)> {
    let m = mgr.as_ptr();
    let missing = |what: &str| {
        super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "'{}' object does not support the {kind}context manager protocol{what}",
                super::type_name(m)
            ),
        )
    };
    let Some(enter) = special(m, names[0])? else {
        return Err(missing(""));
    };
    let Some(exit) = special(m, names[1])? else {
        let exit = names[1].to_string_lossy();
        return Err(missing(&format!(" (missed {exit} method)")));
    };
    let res = Value::from_owned(ffi::PyObject_CallNoArgs(enter.ptr()))?;
    Ok((exit.into_value(), res))
}

unsafe fn special(o: *mut ffi::PyObject, name: &std::ffi::CStr) -> PyResult<Option<Owned>> {
    let n = Owned::new(ffi::PyUnicode_InternFromString(name.as_ptr()))?;
    let r = crate::cpy::_PyObject_LookupSpecial(o, n.ptr());
    if r.is_null() {
        return if ffi::PyErr_Occurred().is_null() {
            Ok(None)
        } else {
            Err(Raised)
        };
    }
    Ok(Some(Owned::new(r)?))
}

/// WithExceptStart: `exit(type(e), e, e.__traceback__)`.
///
/// # Safety
/// GIL held; `exc` is an exception instance.
pub unsafe fn with_except_start(exit: &Value, exc: &Value) -> PyResult<Value> {
    let v = exc.as_ptr();
    let t = ffi::Py_TYPE(v) as *mut ffi::PyObject;
    let tb = ffi::PyException_GetTraceback(v);
    let tb = if tb.is_null() {
        Value::from_borrowed(ffi::Py_None())
    } else {
        Value::from_owned(tb)?
    };
    let mut args = [std::ptr::null_mut(), t, v, tb.as_ptr()];
    Value::from_owned(ffi::PyObject_Vectorcall(
        exit.as_ptr(),
        args.as_mut_ptr().add(1),
        3 | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
        std::ptr::null_mut(),
    ))
}

/// Whether `o` is an exception group (`_PyBaseExceptionGroup_Check`).
///
/// # Safety
/// GIL held; `o` is an object.
#[inline]
unsafe fn is_exception_group(o: *mut ffi::PyObject) -> bool {
    ffi::PyObject_TypeCheck(o, ffi::PyExc_BaseExceptionGroup as *mut ffi::PyTypeObject) != 0
}

/// `BaseExceptionGroup("", excs)`, as `_PyExc_CreateExceptionGroup` builds the groups
/// except* makes (an ExceptionGroup when every member is an Exception).
///
/// # Safety
/// GIL held; `excs` is a sequence.
unsafe fn new_exception_group(excs: *mut ffi::PyObject) -> PyResult<Value> {
    let msg = Owned::new(ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0))?;
    let args = [msg.ptr(), excs];
    Value::from_owned(ffi::PyObject_Vectorcall(
        ffi::PyExc_BaseExceptionGroup,
        args.as_ptr(),
        2,
        std::ptr::null_mut(),
    ))
}

/// Rejects what `except* T` may not name: non-exception classes, then exception groups
/// (ceval.c's check_except_star_type_valid, same messages and order).
///
/// # Safety
/// GIL held; `t` is an object.
unsafe fn check_except_star_type_valid(t: *mut ffi::PyObject) -> PyResult<()> {
    let valid = |o: *mut ffi::PyObject| ffi::PyExceptionClass_Check(o) != 0;
    let classes: Vec<*mut ffi::PyObject> = if ffi::PyTuple_Check(t) != 0 {
        (0..ffi::PyTuple_GET_SIZE(t))
            .map(|i| ffi::PyTuple_GET_ITEM(t, i))
            .collect()
    } else {
        vec![t]
    };
    if !classes.iter().all(|&c| valid(c)) {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            "catching classes that do not inherit from BaseException is not allowed",
        ));
    }
    for c in classes {
        match ffi::PyObject_IsSubclass(c, ffi::PyExc_BaseExceptionGroup) {
            r if r < 0 => return Err(Raised),
            0 => {}
            _ => {
                return Err(super::raise(
                    ffi::PyExc_TypeError,
                    "catching ExceptionGroup with except* is not allowed. Use except instead.",
                ))
            }
        }
    }
    Ok(())
}

/// CheckEgMatch: splits the exception an `except* T` clause sees into (rest, match); with
/// no match the results are (exc, None). A naked exception that matches is wrapped in a
/// new group; a match becomes the handled exception, as CHECK_EG_MATCH does.
///
/// # Safety
/// GIL held; `exc` is an exception instance or None.
pub unsafe fn check_eg_match(exc: &Value, types: &Value) -> PyResult<(Value, Value)> {
    let t = types.as_ptr();
    check_except_star_type_valid(t)?;
    let e = exc.as_ptr();
    let none = || Value::from_borrowed(ffi::Py_None());
    let (rest, matched) = if e == ffi::Py_None() {
        (none(), none())
    } else if ffi::PyErr_GivenExceptionMatches(e, t) != 0 {
        let matched = if is_exception_group(e) {
            exc.clone()
        } else {
            let one = Owned::new(ffi::PyTuple_New(1))?;
            ffi::Py_INCREF(e);
            ffi::PyTuple_SET_ITEM(one.ptr(), 0, e);
            new_exception_group(one.ptr())?
        };
        (none(), matched)
    } else if is_exception_group(e) {
        let name = Owned::new(ffi::PyUnicode_InternFromString(c"split".as_ptr()))?;
        let pair = Owned::new(ffi::PyObject_CallMethodOneArg(e, name.ptr(), t))?;
        let p = pair.ptr();
        // CPython only asserts this of `split` (an override returning anything else is
        // undefined behaviour there); refuse it cleanly.
        if ffi::PyTuple_CheckExact(p) == 0 || ffi::PyTuple_GET_SIZE(p) != 2 {
            return Err(super::raise(
                ffi::PyExc_TypeError,
                "tiered: ExceptionGroup.split() did not return a 2-tuple",
            ));
        }
        (
            Value::from_borrowed(ffi::PyTuple_GET_ITEM(p, 1)),
            Value::from_borrowed(ffi::PyTuple_GET_ITEM(p, 0)),
        )
    } else {
        (none(), none())
    };
    if matched.as_ptr() == ffi::Py_None() {
        return Ok((exc.clone(), matched));
    }
    ffi::PyErr_SetHandledException(matched.as_ptr());
    Ok((rest, matched))
}

/// Whether two exceptions share notes, traceback, cause and context: what tells a re-raised
/// exception (a part of the original group) from a newly raised one.
///
/// # Safety
/// GIL held; operands are objects.
unsafe fn same_exception_metadata(a: *mut ffi::PyObject, b: *mut ffi::PyObject) -> bool {
    if ffi::PyExceptionInstance_Check(a) == 0 || ffi::PyExceptionInstance_Check(b) == 0 {
        return false;
    }
    let (a, b) = (
        &*(a as *const ffi::PyBaseExceptionObject),
        &*(b as *const ffi::PyBaseExceptionObject),
    );
    a.notes == b.notes && a.traceback == b.traceback && a.cause == b.cause && a.context == b.context
}

/// Adds `id()` of every leaf exception under `exc` to the set `ids`.
///
/// # Safety
/// GIL held; `exc` is an exception instance or None, `ids` a set.
unsafe fn collect_leaf_ids(exc: *mut ffi::PyObject, ids: *mut ffi::PyObject) -> PyResult<()> {
    if exc == ffi::Py_None() {
        return Ok(());
    }
    if !is_exception_group(exc) {
        let id = Owned::new(ffi::PyLong_FromVoidPtr(exc.cast()))?;
        return crate::value::status(ffi::PySet_Add(ids, id.ptr()));
    }
    let excs = (*(exc as *const crate::cpy::BaseExceptionGroupObject)).excs;
    for i in 0..ffi::PyTuple_GET_SIZE(excs) {
        if ffi::Py_EnterRecursiveCall(c" in collect_exception_group_leaf_ids".as_ptr()) != 0 {
            return Err(Raised);
        }
        let r = collect_leaf_ids(ffi::PyTuple_GET_ITEM(excs, i), ids);
        ffi::Py_LeaveRecursiveCall();
        r?;
    }
    Ok(())
}

/// The predicate `BaseExceptionGroup.subgroup` applies for a projection: true for a leaf
/// exception whose `id()` is in the set the function is bound to.
///
/// # Safety
/// Called by CPython with the GIL held; `ids` is the bound set, `exc` an exception.
unsafe extern "C" fn is_kept_leaf(
    ids: *mut ffi::PyObject,
    exc: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if is_exception_group(exc) {
        return ffi::PyBool_FromLong(0);
    }
    let id = ffi::PyLong_FromVoidPtr(exc.cast());
    if id.is_null() {
        return std::ptr::null_mut();
    }
    let r = ffi::PySet_Contains(ids, id);
    ffi::Py_DECREF(id);
    if r < 0 {
        return std::ptr::null_mut();
    }
    ffi::PyBool_FromLong(r.into())
}

/// A method definition CPython only ever reads.
struct MethodDef(ffi::PyMethodDef);

// SAFETY: the definition is immutable after construction and holds only static strings and
// a function pointer, so sharing it between threads is sound.
unsafe impl Sync for MethodDef {}

/// The native leaf test bound to a set of ids (see `is_kept_leaf`).
static IS_KEPT_LEAF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"is_kept_leaf".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: is_kept_leaf,
    },
    ml_flags: ffi::METH_O,
    ml_doc: std::ptr::null(),
});

/// The code of `lambda e, f=None: f(e)`, compiled on first use and kept for good (only
/// touched with the GIL held).
static FORWARDER_CODE: std::sync::atomic::AtomicPtr<ffi::PyObject> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// A Python function calling `f(e)`: 3.11's `subgroup` takes only Python functions as
/// predicates, so this wraps the native leaf test.
///
/// # Safety
/// GIL held; `f` is callable.
unsafe fn python_forwarder(f: *mut ffi::PyObject) -> PyResult<Owned> {
    let mut code = FORWARDER_CODE.load(std::sync::atomic::Ordering::Relaxed);
    if code.is_null() {
        let module = Owned::new(ffi::Py_CompileString(
            c"lambda e, f=None: f(e)".as_ptr(),
            c"<tiered>".as_ptr(),
            ffi::Py_eval_input,
        ))?;
        let consts = Owned::new(ffi::PyObject_GetAttrString(
            module.ptr(),
            c"co_consts".as_ptr(),
        ))?;
        let found = (0..ffi::PyTuple_GET_SIZE(consts.ptr()))
            .map(|i| ffi::PyTuple_GET_ITEM(consts.ptr(), i))
            .find(|&c| ffi::PyCode_Check(c) != 0);
        let Some(found) = found else {
            return Err(super::raise(
                ffi::PyExc_SystemError,
                "tiered: cannot compile the except* predicate",
            ));
        };
        ffi::Py_INCREF(found); // kept for the life of the process
        FORWARDER_CODE.store(found, std::sync::atomic::Ordering::Relaxed);
        code = found;
    }
    let globals = Owned::new(ffi::PyDict_New())?;
    let func = Owned::new(ffi::PyFunction_New(code, globals.ptr()))?;
    let defaults = Owned::new(ffi::PyTuple_New(1))?;
    ffi::Py_INCREF(f);
    ffi::PyTuple_SET_ITEM(defaults.ptr(), 0, f);
    crate::value::status(ffi::PyFunction_SetDefaults(func.ptr(), defaults.ptr()))?;
    Ok(func)
}

/// The part of group `eg` made of the leaves found in the groups of `keep`, with `eg`'s
/// nesting and metadata (exception_group_projection). It runs the interpreter's own
/// `BaseExceptionGroup.subgroup`, so `derive()` overrides and notes are honoured exactly.
///
/// # Safety
/// GIL held; `eg` is an exception group, `keep` a list.
unsafe fn exception_group_projection(
    eg: *mut ffi::PyObject,
    keep: *mut ffi::PyObject,
) -> PyResult<Value> {
    let ids = Owned::new(ffi::PySet_New(std::ptr::null_mut()))?;
    for i in 0..ffi::PyList_GET_SIZE(keep) {
        collect_leaf_ids(ffi::PyList_GET_ITEM(keep, i), ids.ptr())?;
    }
    let test = Owned::new(ffi::PyCFunction_NewEx(
        std::ptr::addr_of!(IS_KEPT_LEAF.0) as *mut ffi::PyMethodDef,
        ids.ptr(),
        std::ptr::null_mut(),
    ))?;
    let pred = python_forwarder(test.ptr())?;
    let subgroup = Owned::new(ffi::PyObject_GetAttrString(
        ffi::PyExc_BaseExceptionGroup,
        c"subgroup".as_ptr(),
    ))?;
    let args = [eg, pred.ptr()];
    Value::from_owned(ffi::PyObject_Vectorcall(
        subgroup.ptr(),
        args.as_ptr(),
        2,
        std::ptr::null_mut(),
    ))
}

/// PrepReraiseStar: what leaves a `try`/`except*` (`_PyExc_PrepReraiseStar`): None when
/// nothing is left; the re-raised parts of the original group keep its structure, and
/// newly raised exceptions join them in a new group.
///
/// # Safety
/// GIL held; `orig` is the caught exception, `excs` the list the clauses appended to.
pub unsafe fn prep_reraise_star(orig: &Value, excs: &Value) -> PyResult<Value> {
    let (o, l) = (orig.as_ptr(), excs.as_ptr());
    if ffi::PyList_Check(l) == 0 {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: PREP_RERAISE_STAR of a non-list",
        ));
    }
    let n = ffi::PyList_GET_SIZE(l);
    if n == 0 {
        return Ok(Value::from_borrowed(ffi::Py_None()));
    }
    if !is_exception_group(o) {
        // A naked exception was wrapped: only one clause ran, so there is one result.
        return Ok(Value::from_borrowed(ffi::PyList_GET_ITEM(l, 0)));
    }
    let raised = Owned::new(ffi::PyList_New(0))?;
    let reraised = Owned::new(ffi::PyList_New(0))?;
    for i in 0..n {
        let e = ffi::PyList_GET_ITEM(l, i);
        if e == ffi::Py_None() {
            continue;
        }
        let to = if same_exception_metadata(e, o) {
            &reraised
        } else {
            &raised
        };
        crate::value::status(ffi::PyList_Append(to.ptr(), e))?;
    }
    let reraised_eg = exception_group_projection(o, reraised.ptr())?;
    if ffi::PyList_GET_SIZE(raised.ptr()) == 0 {
        return Ok(reraised_eg);
    }
    if reraised_eg.as_ptr() != ffi::Py_None() {
        crate::value::status(ffi::PyList_Append(raised.ptr(), reraised_eg.as_ptr()))?;
    }
    if ffi::PyList_GET_SIZE(raised.ptr()) > 1 {
        new_exception_group(raised.ptr())
    } else {
        Ok(Value::from_borrowed(ffi::PyList_GET_ITEM(raised.ptr(), 0)))
    }
}
