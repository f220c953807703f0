//! tiered's execution tiers: values, the tier-1 interpreter and its ops (one file per op
//! family in `ops/`), calls and fallback, stats and coverage.
//!
//! invariant: everything here runs with the GIL held: it is only entered from CPython
//! calls into the bindings.

pub mod activation;
pub mod bind;
pub mod code;
pub mod coverage;
pub mod cpy;
pub mod generator;
pub mod interp;
pub mod lower;
pub mod native;
pub mod ops;
pub mod quick;
pub mod runtime;
pub mod stack;
pub mod stats;
pub mod thread_exit;
pub mod traceback;
pub mod tracing;
pub mod value;

use pyo3_ffi as ffi;

/// A function's `__qualname__` as a Rust string, for messages.
///
/// # Safety
/// GIL held; `func` is a live function object.
pub unsafe fn code_name(func: *mut ffi::PyObject) -> String {
    let q = (*(func as *mut ffi::PyFunctionObject)).func_qualname;
    if q.is_null() || ffi::PyUnicode_Check(q) == 0 {
        return "<function>".into();
    }
    let mut n: ffi::Py_ssize_t = 0;
    let p = ffi::PyUnicode_AsUTF8AndSize(q, &mut n);
    if p.is_null() {
        ffi::PyErr_Clear();
        return "<function>".into();
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, n as usize)).into_owned()
}
