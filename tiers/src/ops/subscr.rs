//! Subscripts and slices.

use crate::value::{status, PyResult, Value};
use pyo3_ffi as ffi;

/// Subscr: `o[k]`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn subscr(o: &Value, k: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyObject_GetItem(o.as_ptr(), k.as_ptr()))
}

/// StoreSubscr: `o[k] = v`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn store_subscr(v: &Value, o: &Value, k: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetItem(o.as_ptr(), k.as_ptr(), v.as_ptr()))
}

/// DeleteSubscr: `del o[k]`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn delete_subscr(o: &Value, k: &Value) -> PyResult<()> {
    status(ffi::PyObject_DelItem(o.as_ptr(), k.as_ptr()))
}

/// BuildSlice: `slice(a, b[, c])`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn build_slice(a: &Value, b: &Value, c: Option<&Value>) -> PyResult<Value> {
    let step = c.map(|c| c.as_ptr()).unwrap_or(std::ptr::null_mut());
    Value::from_owned(ffi::PySlice_New(a.as_ptr(), b.as_ptr(), step))
}
