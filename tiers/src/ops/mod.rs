//! One file per op family: each op's tier-1 semantics, exactly CPython 3.11's. Quickened
//! variants and native templates of a family will live in the same file.

pub mod arith;
pub mod attrs;
pub mod build;
pub mod calls;
pub mod cells;
pub mod compare;
pub mod events;
pub mod exceptions;
pub mod generators;
pub mod globals;
pub mod imports;
pub mod iter;
pub mod matching;
pub mod subscr;
pub mod values;

use pyo3_ffi as ffi;
use std::ffi::CStr;

/// A type's `tp_name`, for error messages.
///
/// # Safety
/// GIL held; `o` live.
pub(crate) unsafe fn type_name(o: *mut ffi::PyObject) -> String {
    CStr::from_ptr((*ffi::Py_TYPE(o)).tp_name)
        .to_string_lossy()
        .into_owned()
}

/// Raises `exc` with a Rust-formatted message.
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn raise(exc: *mut ffi::PyObject, msg: &str) -> crate::value::Raised {
    let m = std::ffi::CString::new(msg.replace('\0', "\\x00")).unwrap_or_default();
    ffi::PyErr_SetString(exc, m.as_ptr());
    crate::value::Raised
}

/// A Python str object's text (lossy), for messages.
///
/// # Safety
/// GIL held; `o` live.
pub(crate) unsafe fn str_of(o: *mut ffi::PyObject) -> String {
    if ffi::PyUnicode_Check(o) == 0 {
        return String::new();
    }
    let mut n: ffi::Py_ssize_t = 0;
    let p = ffi::PyUnicode_AsUTF8AndSize(o, &mut n);
    if p.is_null() {
        ffi::PyErr_Clear();
        return String::new();
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, n as usize)).into_owned()
}

/// `co_names[name]` of the running function.
///
/// # Safety
/// GIL held.
#[inline]
pub(crate) unsafe fn name_obj(
    ctx: &crate::interp::Ctx,
    name: tiered_ir::NameIdx,
) -> crate::value::PyResult<*mut ffi::PyObject> {
    ctx.compiled
        .objects
        .names
        .get(name.0 as usize)
        .copied()
        .ok_or_else(|| raise(ffi::PyExc_SystemError, "tiered: name index out of range"))
}
