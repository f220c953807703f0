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
    match v {
        Value::Bool(b) => return Ok(Value::Bool(*b)),
        Value::Int(i) => return Ok(Value::Bool(*i != 0)),
        // NaN is true, as `x != 0.0` says.
        Value::Float(x) => return Ok(Value::Bool(*x != 0.0)),
        _ => {}
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

/// Quickened forms of Compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareVariant {
    /// Both exact ints in i64: an unboxed bool.
    Int,
    /// Floats (or a float and an int small enough to convert exactly): IEEE comparison,
    /// which is what float_richcompare does for such operands.
    Float,
}

/// Names of Compare's variants, for coverage.
pub const COMPARE_VARIANTS: &[&str] = &["CompareInt", "CompareFloat"];

impl CompareVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            CompareVariant::Int => COMPARE_VARIANTS[0],
            CompareVariant::Float => COMPARE_VARIANTS[1],
        }
    }
}

/// A float, or an int that converts to f64 exactly (|i| <= 2**53).
#[inline]
fn exact_float(v: &Value) -> Option<f64> {
    use super::arith::{float_of, int_of};
    float_of(v).or_else(|| {
        int_of(v)
            .filter(|i| i.unsigned_abs() <= 1 << 53)
            .map(|i| i as f64)
    })
}

/// Which variant fits these operands, if any.
#[inline]
pub fn observe_compare(a: &Value, b: &Value) -> Option<CompareVariant> {
    use super::arith::{float_of, int_of};
    if int_of(a).is_some() && int_of(b).is_some() {
        return Some(CompareVariant::Int);
    }
    if (float_of(a).is_some() || float_of(b).is_some())
        && exact_float(a).is_some()
        && exact_float(b).is_some()
    {
        return Some(CompareVariant::Float);
    }
    None
}

/// The quickened Compare (`None` when the guard fails).
#[inline]
pub fn compare_quick(op: CmpOp, v: CompareVariant, a: &Value, b: &Value) -> Option<Value> {
    use super::arith::{float_of, int_of};
    let r = match v {
        CompareVariant::Int => {
            let (x, y) = (int_of(a)?, int_of(b)?);
            match op {
                CmpOp::Lt => x < y,
                CmpOp::Le => x <= y,
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
                CmpOp::Gt => x > y,
                CmpOp::Ge => x >= y,
            }
        }
        CompareVariant::Float => {
            if float_of(a).is_none() && float_of(b).is_none() {
                return None;
            }
            let (x, y) = (exact_float(a)?, exact_float(b)?);
            match op {
                CmpOp::Lt => x < y,
                CmpOp::Le => x <= y,
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
                CmpOp::Gt => x > y,
                CmpOp::Ge => x >= y,
            }
        }
    };
    Some(Value::Bool(r))
}
