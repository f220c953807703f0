//! Binary, in-place and unary operators, through CPython's number protocol (which gives
//! int overflow to big ints, float division semantics and the exact error messages).

use crate::value::{PyResult, Value};
use pyo3_ffi as ffi;
use tiered_ir::{BinOp, UnaryOp};

/// Binary: `a op b` (in-place forms try `__iop__` first, as BINARY_OP does).
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn binary(op: BinOp, a: &Value, b: &Value) -> PyResult<Value> {
    let (x, y) = (a.as_ptr(), b.as_ptr());
    let r = match op {
        BinOp::Add => ffi::PyNumber_Add(x, y),
        BinOp::And => ffi::PyNumber_And(x, y),
        BinOp::FloorDivide => ffi::PyNumber_FloorDivide(x, y),
        BinOp::Lshift => ffi::PyNumber_Lshift(x, y),
        BinOp::MatrixMultiply => ffi::PyNumber_MatrixMultiply(x, y),
        BinOp::Multiply => ffi::PyNumber_Multiply(x, y),
        BinOp::Remainder => ffi::PyNumber_Remainder(x, y),
        BinOp::Or => ffi::PyNumber_Or(x, y),
        BinOp::Power => ffi::PyNumber_Power(x, y, ffi::Py_None()),
        BinOp::Rshift => ffi::PyNumber_Rshift(x, y),
        BinOp::Subtract => ffi::PyNumber_Subtract(x, y),
        BinOp::TrueDivide => ffi::PyNumber_TrueDivide(x, y),
        BinOp::Xor => ffi::PyNumber_Xor(x, y),
        BinOp::InplaceAdd => ffi::PyNumber_InPlaceAdd(x, y),
        BinOp::InplaceAnd => ffi::PyNumber_InPlaceAnd(x, y),
        BinOp::InplaceFloorDivide => ffi::PyNumber_InPlaceFloorDivide(x, y),
        BinOp::InplaceLshift => ffi::PyNumber_InPlaceLshift(x, y),
        BinOp::InplaceMatrixMultiply => ffi::PyNumber_InPlaceMatrixMultiply(x, y),
        BinOp::InplaceMultiply => ffi::PyNumber_InPlaceMultiply(x, y),
        BinOp::InplaceRemainder => ffi::PyNumber_InPlaceRemainder(x, y),
        BinOp::InplaceOr => ffi::PyNumber_InPlaceOr(x, y),
        BinOp::InplacePower => ffi::PyNumber_InPlacePower(x, y, ffi::Py_None()),
        BinOp::InplaceRshift => ffi::PyNumber_InPlaceRshift(x, y),
        BinOp::InplaceSubtract => ffi::PyNumber_InPlaceSubtract(x, y),
        BinOp::InplaceTrueDivide => ffi::PyNumber_InPlaceTrueDivide(x, y),
        BinOp::InplaceXor => ffi::PyNumber_InPlaceXor(x, y),
    };
    Value::from_owned(r)
}

/// Unary: `-a`, `+a`, `~a`, `not a`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn unary(op: UnaryOp, a: &Value) -> PyResult<Value> {
    let x = a.as_ptr();
    match op {
        UnaryOp::Negative => Value::from_owned(ffi::PyNumber_Negative(x)),
        UnaryOp::Positive => Value::from_owned(ffi::PyNumber_Positive(x)),
        UnaryOp::Invert => Value::from_owned(ffi::PyNumber_Invert(x)),
        UnaryOp::Not => {
            let t = super::compare::truth(a)?;
            Ok(match t {
                Value::Bool(b) => Value::Bool(!b),
                other => other,
            })
        }
    }
}
