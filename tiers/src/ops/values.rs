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

/// The value of a constant that may live unboxed: a bool, or an int CPython caches
/// (-5..=256), whose boxing gives back the very same object, so nothing can tell.
fn small_int(o: *mut ffi::PyObject) -> Option<(u8, i64)> {
    // SAFETY: constants are live objects owned by the code object; reading an exact int's
    // value raises nothing.
    unsafe {
        if o == ffi::Py_True() || o == ffi::Py_False() {
            return Some((tag::BOOL, (o == ffi::Py_True()) as i64));
        }
        if ffi::PyLong_CheckExact(o) == 0 {
            return None;
        }
        let mut overflow = 0;
        let v = ffi::PyLong_AsLongLongAndOverflow(o, &mut overflow);
        (overflow == 0 && (-5..=256).contains(&v)).then_some((tag::INT, v))
    }
}

/// Per register: the small int or bool constant a Const writes there (see `small_int`).
/// In SSA nothing else writes a Const's register.
pub(crate) fn const_int_registers(c: &crate::runtime::Compiled) -> Vec<Option<i64>> {
    let mut out = vec![None; c.linear.nregs as usize];
    for inst in &c.linear.insts {
        if let crate::lower::LKind::Op(tiered_ir::Op::Const { index }) = inst.kind {
            if let Some(&o) = c.objects.consts.get(index.0 as usize) {
                if let Some((tag::INT, v)) = small_int(o) {
                    out[inst.dst as usize] = Some(v);
                }
            }
        }
    }
    out
}

/// Per register: whether it only ever holds NULL (a Null op's, the call protocol's empty
/// slot: its value has the register to itself and is never released early).
pub(crate) fn null_registers(c: &crate::runtime::Compiled) -> Vec<bool> {
    let mut out = vec![false; c.linear.nregs as usize];
    for inst in &c.linear.insts {
        if let crate::lower::LKind::Op(tiered_ir::Op::Null {}) = inst.kind {
            out[inst.dst as usize] = true;
        }
    }
    out
}

/// Per register of a fresh register file for `c`: whether native code entering `c` at
/// its start writes it before anything can read it. Those are the Consts `c` starts with
/// (their templates only store); a caller need not clear them first.
pub(crate) fn written_first(c: &crate::runtime::Compiled) -> Vec<bool> {
    let mut out = vec![false; c.linear.nregs as usize];
    for inst in &c.linear.insts {
        match inst.kind {
            crate::lower::LKind::Op(tiered_ir::Op::Const { index })
                if c.objects.consts.get(index.0 as usize).is_some() =>
            {
                out[inst.dst as usize] = true;
            }
            _ => break,
        }
    }
    out
}

/// The native template of Const: a small int or bool is stored unboxed (no refcounting);
/// any other constant's address is known at compile time (the code object keeps it
/// alive), so it is an incref and a store.
pub(crate) fn emit_const(e: &mut Emit, pc: usize, index: ConstIdx) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let &p = e.c.objects.consts.get(index.0 as usize)?;
    if let Some((t, v)) = small_int(p) {
        let v = e.b.ins().iconst(types::I64, v);
        e.set(inst.dst, t, v);
        return Some("Const");
    }
    let v = e.b.ins().iconst(e.ptr, p as i64);
    e.incref(v);
    e.set(inst.dst, tag::OBJ, v);
    Some("Const")
}

/// The native template of Null.
pub(crate) fn emit_null(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    // A register written only outside loops is still NULL here (see may_hold_old):
    // nothing to write.
    if e.may_hold_old(inst.dst, pc) {
        let z = e.b.ins().iconst(types::I64, 0);
        e.set(inst.dst, tag::NULL, z);
    }
    Some("Null")
}
