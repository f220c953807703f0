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
    let prev = ffi::PyErr_GetHandledException();
    let prev = if prev.is_null() {
        Value::from_borrowed(ffi::Py_None())
    } else {
        Value::from_owned(prev)?
    };
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
    let m = mgr.as_ptr();
    let enter = special(m, c"__enter__")?;
    let Some(enter) = enter else {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "'{}' object does not support the context manager protocol",
                super::type_name(m)
            ),
        ));
    };
    let Some(exit) = special(m, c"__exit__")? else {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "'{}' object does not support the context manager protocol (missed __exit__ method)",
                super::type_name(m)
            ),
        ));
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
