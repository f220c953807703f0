//! Iteration: `iter()` and the FOR_ITER step.

use crate::value::{PyResult, Raised, Value};
use pyo3_ffi as ffi;

/// GetIter: `iter(v)`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn get_iter(v: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyObject_GetIter(v.as_ptr()))
}

/// ForIter: the next item, or `Null` when exhausted (StopIteration swallowed as FOR_ITER does).
///
/// # Safety
/// GIL held; the operand is an iterator (GetIter checked it).
#[inline]
pub unsafe fn for_iter(it: &Value) -> PyResult<Value> {
    let p = it.as_ptr();
    let next = (*ffi::Py_TYPE(p)).tp_iternext;
    let r = match next {
        Some(f) => f(p),
        None => {
            return Err(super::raise(
                ffi::PyExc_TypeError,
                &format!("'{}' object is not an iterator", super::type_name(p)),
            ))
        }
    };
    if r.is_null() {
        if !ffi::PyErr_Occurred().is_null() {
            if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) == 0 {
                return Err(Raised);
            }
            ffi::PyErr_Clear();
        }
        return Ok(Value::Null);
    }
    Value::from_owned(r)
}
