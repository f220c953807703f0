//! Calls and function creation.

use crate::interp::Ctx;
use crate::value::{Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::KwNames;

/// Call: operands (method or NULL, callable or self, args...) as CALL sees its stack.
/// Python functions nested in tiered code are entered in tier 1 directly.
///
/// # Safety
/// GIL held; `ptrs` is a scratch copy the callee may write `ptrs[k-1]` of
/// (PY_VECTORCALL_ARGUMENTS_OFFSET).
pub unsafe fn call(
    ctx: &Ctx,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> PyResult<Value> {
    let kw = match kwnames.0 {
        Some(i) => ctx
            .compiled
            .objects
            .consts
            .get(i.0 as usize)
            .copied()
            .unwrap_or(std::ptr::null_mut()),
        None => std::ptr::null_mut(),
    };
    let nkw = if kw.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kw) as usize
    };
    let (callable, args) = if ptrs[0].is_null() {
        (ptrs[1], &mut ptrs[2..])
    } else {
        (ptrs[0], &mut ptrs[1..])
    };
    let nargs = args.len() - nkw;
    let nargsf = nargs | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET;
    let kw = if nkw == 0 { std::ptr::null_mut() } else { kw };
    let r = if ffi::PyFunction_Check(callable) != 0 {
        crate::runtime::call_function(callable, args.as_ptr(), nargsf, kw)
    } else {
        ffi::PyObject_Vectorcall(callable, args.as_ptr(), nargsf, kw)
    };
    Value::from_owned(r)
}

/// CallEx: `f(*args, **kwargs)`, with CALL_FUNCTION_EX's conversion of `args` and its
/// error for a non-iterable.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn call_ex(func: &Value, args: &Value, kwargs: Option<&Value>) -> PyResult<Value> {
    let f = func.as_ptr();
    let a = args.as_ptr();
    let tuple = if ffi::PyTuple_CheckExact(a) != 0 {
        ffi::Py_INCREF(a);
        Owned::new(a)?
    } else {
        if (*ffi::Py_TYPE(a)).tp_iter.is_none() && ffi::PySequence_Check(a) == 0 {
            return Err(func_error(
                f,
                &format!(
                    "argument after * must be an iterable, not {}",
                    super::type_name(a)
                ),
            ));
        }
        Owned::new(ffi::PySequence_Tuple(a))?
    };
    let kw = match kwargs {
        Some(k) if ffi::PyDict_CheckExact(k.as_ptr()) == 0 => {
            let d = Owned::new(ffi::PyDict_New())?;
            if crate::cpy::_PyDict_MergeEx(d.ptr(), k.as_ptr(), 2) < 0 {
                super::build::format_kwargs_error(f, k.as_ptr());
                return Err(Raised);
            }
            Some(d)
        }
        Some(k) => {
            ffi::Py_INCREF(k.as_ptr());
            Some(Owned::new(k.as_ptr())?)
        }
        None => None,
    };
    let kwp = kw.as_ref().map(|k| k.ptr()).unwrap_or(std::ptr::null_mut());
    Value::from_owned(ffi::PyObject_Call(f, tuple.ptr(), kwp))
}

/// Raises TypeError "`f()` <msg>" the way 3.11's call sites word errors about a callable
/// (`_PyObject_FunctionStr`: qualified name with module for functions).
pub(crate) unsafe fn func_error(f: *mut ffi::PyObject, msg: &str) -> Raised {
    let fstr = crate::cpy::_PyObject_FunctionStr(f);
    if fstr.is_null() {
        return Raised;
    }
    let name = super::str_of(fstr);
    ffi::Py_DECREF(fstr);
    super::raise(ffi::PyExc_TypeError, &format!("{name} {msg}"))
}

/// MakeFunction: a function from (code, then per flags: defaults, kwdefaults, annotations,
/// closure) in this function's globals.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn make_function(ctx: &Ctx, flags: u32, ops: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let code = ops[0];
    if ffi::PyCode_Check(code) == 0 {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: MAKE_FUNCTION of a non-code object",
        ));
    }
    let f = Owned::new(ffi::PyFunction_New(code, ctx.globals))?;
    let fp = f.ptr() as *mut ffi::PyFunctionObject;
    let mut k = 1;
    let mut next = || {
        let o = ops.get(k).copied().unwrap_or(std::ptr::null_mut());
        k += 1;
        o
    };
    let defaults = if flags & 0x01 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    let kwdefaults = if flags & 0x02 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    let annotations = if flags & 0x04 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    let closure = if flags & 0x08 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    // Set the fields directly as MAKE_FUNCTION does (annotations may be a tuple in 3.11,
    // which the setter functions would reject).
    for (field, v) in [
        (&mut (*fp).func_defaults, defaults),
        (&mut (*fp).func_kwdefaults, kwdefaults),
        (&mut (*fp).func_annotations, annotations),
        (&mut (*fp).func_closure, closure),
    ] {
        if !v.is_null() {
            ffi::Py_INCREF(v);
            let old = std::mem::replace(field, v);
            ffi::Py_XDECREF(old);
        }
    }
    Ok(f.into_value())
}
