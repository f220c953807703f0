//! Calls and function creation.

use crate::interp::Ctx;
use crate::runtime::Compiled;
use crate::value::{Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::KwNames;

/// A call site's pieces: callable, argument array (writable one slot before, as
/// PY_VECTORCALL_ARGUMENTS_OFFSET allows), nargsf and kwnames.
struct CallShape {
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
}

/// Splits Call's operands (method or NULL, callable or self, args...) as CALL does.
unsafe fn shape(ctx: &Ctx, kwnames: KwNames, ptrs: &mut [*mut ffi::PyObject]) -> CallShape {
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
    CallShape {
        callable,
        args: args.as_ptr(),
        nargsf: (args.len() - nkw) | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
        kwnames: if nkw == 0 { std::ptr::null_mut() } else { kw },
    }
}

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
    let c = shape(ctx, kwnames, ptrs);
    let r = if ffi::PyFunction_Check(c.callable) != 0 {
        crate::runtime::call_function(c.callable, c.args, c.nargsf, c.kwnames)
    } else {
        ffi::PyObject_Vectorcall(c.callable, c.args, c.nargsf, c.kwnames)
    };
    Value::from_owned(r)
}

/// Quickened forms of Call.
#[derive(Clone, Copy, Debug)]
pub enum CallVariant {
    /// A Python function whose code runs in tier 1, entered directly (no CPython frame):
    /// callees are specialized too, not just the decorated function.
    PyFunction {
        /// The function seen (compared by identity, never dereferenced unless equal).
        func: *mut ffi::PyObject,
        /// Its code then (a reassigned `__code__` fails the guard).
        code: *mut ffi::PyObject,
        /// The compiled code (the registry keeps it for the process's life).
        compiled: *const Compiled,
    },
    /// A `@tiered` wrapper, entered without the vectorcall protocol.
    Tiered {
        /// The wrapper seen (compared by identity).
        callable: *mut ffi::PyObject,
    },
}

/// Names of Call's variants, for coverage.
pub const CALL_VARIANTS: &[&str] = &["CallPyFunction", "CallTiered"];

impl CallVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            CallVariant::PyFunction { .. } => CALL_VARIANTS[0],
            CallVariant::Tiered { .. } => CALL_VARIANTS[1],
        }
    }
}

/// Which variant fits this call site's callable, if any (compiling a Python callee's code).
///
/// # Safety
/// GIL held.
pub unsafe fn observe_call(
    ctx: &Ctx,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> Option<CallVariant> {
    let c = shape(ctx, kwnames, ptrs);
    if crate::runtime::entry_of_wrapper(c.callable).is_some() {
        return Some(CallVariant::Tiered {
            callable: c.callable,
        });
    }
    if ffi::PyFunction_Check(c.callable) == 0 {
        return None;
    }
    let code = (*(c.callable as *mut ffi::PyFunctionObject)).func_code;
    // The callee is specialized for the argument types this site passes.
    match crate::runtime::compiled_for_args(
        code,
        c.args,
        ffi::PyVectorcall_NARGS(c.nargsf) as usize,
    ) {
        Ok(compiled) if compiled.runnable() => Some(CallVariant::PyFunction {
            func: c.callable,
            code,
            compiled: std::rc::Rc::as_ptr(&compiled),
        }),
        Ok(_) => None,
        Err(_) => {
            ffi::PyErr_Clear();
            None
        }
    }
}

/// The quickened Call (`None` when the callable is not the one specialized on).
///
/// # Safety
/// GIL held; `ptrs` as for `call`.
#[inline]
pub unsafe fn call_quick(
    ctx: &Ctx,
    v: CallVariant,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> Option<PyResult<Value>> {
    let c = shape(ctx, kwnames, ptrs);
    let r = match v {
        CallVariant::PyFunction {
            func,
            code,
            compiled,
        } => {
            if c.callable != func
                || (*(func as *mut ffi::PyFunctionObject)).func_code != code
                || crate::cpy::tracing_active()
            {
                return None;
            }
            // Callees entered from tiered code tier up as their caller does.
            match crate::runtime::call_compiled(
                &*compiled, func, c.args, c.nargsf, c.kwnames, ctx.tuning,
            ) {
                crate::runtime::CallOutcome::Ran(r, _)
                | crate::runtime::CallOutcome::CpythonRan(r) => r,
            }
        }
        CallVariant::Tiered { callable } => {
            if c.callable != callable {
                return None;
            }
            crate::runtime::entry_of_wrapper(callable)?.call(c.args, c.nargsf, c.kwnames)
        }
    };
    Some(Value::from_owned(r))
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

/// The native template of a quickened Call: one direct helper call that checks the callee
/// and enters it (no generic op dispatch); another callee takes the slow path.
pub(crate) fn emit_call(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    let crate::quick::Quick::Call(v) = q else {
        return None;
    };
    e.call_guarded_helper(pc, crate::native::helpers::call as *const () as usize, fail);
    Some(v.name())
}
