//! Comparisons, membership and truth.

use crate::value::{PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::CmpOp;

/// Compare: `a op b` via rich comparison (any object may come back).
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn compare(op: CmpOp, a: &Value, b: &Value) -> PyResult<Value> {
    let o = match op {
        CmpOp::Lt => ffi::Py_LT,
        CmpOp::Le => ffi::Py_LE,
        CmpOp::Eq => ffi::Py_EQ,
        CmpOp::Ne => ffi::Py_NE,
        CmpOp::Gt => ffi::Py_GT,
        CmpOp::Ge => ffi::Py_GE,
    };
    let r = ffi::PyObject_RichCompare(a.as_ptr(), b.as_ptr(), o);
    if r == ffi::Py_True() || r == ffi::Py_False() {
        let b = r == ffi::Py_True();
        ffi::Py_DECREF(r);
        return Ok(Value::Bool(b));
    }
    Value::from_owned(r)
}

/// Contains: `item in container` (or `not in`).
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn contains(invert: bool, item: &Value, container: &Value) -> PyResult<Value> {
    let r = ffi::PySequence_Contains(container.as_ptr(), item.as_ptr());
    if r < 0 {
        return Err(Raised);
    }
    Ok(Value::Bool((r == 1) != invert))
}

/// Truth: `bool(v)` (unboxed bools pass through).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn truth(v: &Value) -> PyResult<Value> {
    if let Value::Bool(b) = v {
        return Ok(Value::Bool(*b));
    }
    let p = v.as_ptr();
    if p == ffi::Py_None() {
        return Ok(Value::Bool(false));
    }
    let r = ffi::PyObject_IsTrue(p);
    if r < 0 {
        return Err(Raised);
    }
    Ok(Value::Bool(r == 1))
}
