//! Attribute access and method lookup.

use crate::interp::Ctx;
use crate::value::{status, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

/// LoadAttr: `o.name`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn load_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyObject_GetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
    ))
}

/// StoreAttr: `o.name = v`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn store_attr(ctx: &Ctx, name: NameIdx, o: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
        v.as_ptr(),
    ))
}

/// DeleteAttr: `del o.name`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn delete_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
        std::ptr::null_mut(),
    ))
}

/// LoadMethod: (unbound method, self) when the type has a plain method, else
/// (NULL, attribute), exactly as LOAD_METHOD pushes them.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn load_method(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<(Value, Value)> {
    let mut meth: *mut ffi::PyObject = std::ptr::null_mut();
    let found = crate::cpy::_PyObject_GetMethod(o.as_ptr(), super::name_obj(ctx, name)?, &mut meth);
    if meth.is_null() {
        return Err(Raised);
    }
    let meth = Value::from_owned(meth)?;
    if found != 0 {
        Ok((meth, o.clone()))
    } else {
        Ok((Value::Null, meth))
    }
}
