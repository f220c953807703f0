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

/// Per register: whether it may ever hold an unboxed int or float (`Value::Int`,
/// `Value::Float`), in any tier, so that boxing it (`Emit::box_number`) or testing for an
/// unboxed number needs code there. Numbers come only from the ops below, from arguments
/// (a native caller passes its unboxed numbers), and through edge moves from registers
/// that hold them; a resumed generator's values are objects (the frame's, or boxed at
/// the yield: `generator::held`), as are caught exceptions. Over all of a register's
/// writers (values that share it: `lower::coalesce`), not per value.
pub(crate) fn number_registers(c: &crate::runtime::Compiled) -> Vec<bool> {
    use tiered_ir::Op;
    let lin = &c.linear;
    let mut out = vec![false; lin.nregs as usize];
    for r in out.iter_mut().take(lin.nparams as usize) {
        *r = true;
    }
    let small = const_int_registers(c);
    for inst in &lin.insts {
        let crate::lower::LKind::Op(op) = inst.kind else {
            continue;
        };
        let numbers = match op {
            // Native code keeps a small int constant unboxed.
            Op::Const { .. } => small[inst.dst as usize].is_some(),
            // Unboxed results of their own (int and float arithmetic, a range's items).
            Op::Binary { .. } | Op::Unary { .. } | Op::ForIter {} => true,
            // Results that may be what a tiered function returned (a call; a getter,
            // dunder, `__enter__`, `__iter__` or `__await__` run natively), which may be
            // unboxed; and what is not audited.
            Op::Compare { .. }
            | Op::Send {}
            | Op::LoadAttr { .. }
            | Op::LoadMethod { .. }
            | Op::Subscr {}
            | Op::Call { .. }
            | Op::CallEx { .. }
            | Op::GetIter {}
            | Op::GetAwaitable { .. }
            | Op::GetAiter {}
            | Op::GetAnext {}
            | Op::EndAsyncFor {}
            | Op::BeforeWith {}
            | Op::BeforeAsyncWith {}
            | Op::WithExceptStart {}
            | Op::GetLen {}
            | Op::CheckBound { .. }
            | Op::Unsupported { .. } => true,
            // Objects made or looked up through CPython (or NULL), and bools.
            Op::Null {}
            | Op::Lasti {}
            | Op::LoadAssertionError {}
            | Op::LoadBuildClass {}
            | Op::LoadGlobal { .. }
            | Op::Is { .. }
            | Op::Contains { .. }
            | Op::Truth {}
            | Op::IsNone {}
            | Op::Thrown {}
            | Op::GetYieldFromIter { .. }
            | Op::AsyncGenWrap {}
            | Op::BuildSlice { .. }
            | Op::MakeFunction { .. }
            | Op::BuildTuple { .. }
            | Op::BuildList { .. }
            | Op::BuildSet { .. }
            | Op::BuildMap { .. }
            | Op::BuildConstKeyMap { .. }
            | Op::BuildString { .. }
            | Op::FormatValue { .. }
            | Op::ListToTuple {}
            | Op::UnpackSequence { .. }
            | Op::UnpackEx { .. }
            | Op::MakeCell {}
            | Op::LoadClosure { .. }
            | Op::LoadDeref { .. }
            | Op::PushExcInfo {}
            | Op::CheckExcMatch {}
            | Op::CheckEgMatch {}
            | Op::PrepReraiseStar {}
            | Op::ImportName { .. }
            | Op::ImportFrom { .. }
            | Op::MatchMapping {}
            | Op::MatchSequence {}
            | Op::MatchKeys {}
            | Op::MatchClass { .. } => false,
            // No results.
            Op::StoreGlobal { .. }
            | Op::DeleteGlobal { .. }
            | Op::StoreAttr { .. }
            | Op::DeleteAttr { .. }
            | Op::StoreSubscr {}
            | Op::DeleteSubscr {}
            | Op::ListAppend {}
            | Op::SetAdd {}
            | Op::MapAdd {}
            | Op::ListExtend {}
            | Op::SetUpdate {}
            | Op::DictUpdate {}
            | Op::DictMerge {}
            | Op::StoreDeref { .. }
            | Op::DeleteDeref { .. }
            | Op::PopExcept {}
            | Op::Raise { .. }
            | Op::Reraise { .. }
            | Op::EvalBreaker {} => false,
        };
        if numbers {
            for r in inst.dst..inst.dst + op.result_count() as u32 {
                out[r as usize] = true;
            }
        }
    }
    // Through edge moves, to a fixpoint (a loop's parameters feed each other).
    let mut changed = true;
    while changed {
        changed = false;
        for &(src, dst, _) in &lin.moves {
            if out[src as usize] && !out[dst as usize] {
                out[dst as usize] = true;
                changed = true;
            }
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
