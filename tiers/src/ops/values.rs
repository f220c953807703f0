//! Constants and local-variable checks.

use crate::interp::Ctx;
use crate::native::emit::Emit;
use crate::value::{tag, PyResult, Raised, Value};
use cranelift_codegen::ir::{types, InstBuilder};
use pyo3_ffi as ffi;
use tiered_ir::{ConstIdx, LocalIdx};

/// Const: `co_consts[index]`.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn load_const(ctx: &Ctx, index: ConstIdx) -> PyResult<Value> {
    match ctx.compiled.objects.consts.get(index.0 as usize) {
        Some(&o) => Ok(Value::from_borrowed(o)),
        None => Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: constant index out of range",
        )),
    }
}

/// CheckBound: the value itself, or UnboundLocalError as LOAD_FAST raises it.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn check_bound(ctx: &Ctx, local: LocalIdx, v: &Value) -> PyResult<Value> {
    if !v.is_null() {
        return Ok(v.clone());
    }
    Err(unbound_local(ctx, local))
}

/// Raises 3.11's UnboundLocalError for a local slot.
///
/// # Safety
/// GIL held.
pub unsafe fn unbound_local(ctx: &Ctx, local: LocalIdx) -> Raised {
    let name = local_name(ctx, local);
    super::raise(
        ffi::PyExc_UnboundLocalError,
        &format!("cannot access local variable '{name}' where it is not associated with a value"),
    )
}

/// The name of a locals-plus slot.
///
/// # Safety
/// GIL held.
pub unsafe fn local_name(ctx: &Ctx, local: LocalIdx) -> String {
    match ctx.compiled.objects.local_names.get(local.0 as usize) {
        Some(n) => super::str_of(n.ptr()),
        None => "?".into(),
    }
}

/// The native template of Const: the constant's address is known at compile time (the
/// code object keeps it alive), so it is an incref and a store.
pub(crate) fn emit_const(e: &mut Emit, pc: usize, index: ConstIdx) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let &p = e.c.objects.consts.get(index.0 as usize)?;
    let v = e.b.ins().iconst(e.ptr, p as i64);
    e.incref(v);
    e.set(inst.dst, tag::OBJ, v);
    Some("Const")
}

/// The native template of Null.
pub(crate) fn emit_null(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let z = e.b.ins().iconst(types::I64, 0);
    e.set(inst.dst, tag::NULL, z);
    Some("Null")
}
