//! Closure cells: creating, reading, writing and deleting them.

use crate::interp::Ctx;
use crate::native::emit::{mem, Emit};
use crate::value::{status, tag, PyResult, Raised, Value};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder};
use pyo3_ffi as ffi;
use tiered_frontend::code::slot;
use tiered_ir::LocalIdx;

/// MakeCell: a new cell holding the operand (empty for NULL).
///
/// # Safety
/// GIL held.
pub unsafe fn make_cell(v: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyCell_New(v.as_ptr()))
}

/// LoadClosure: closure cell `index` of the running function `func`.
///
/// # Safety
/// GIL held; `func` live.
pub unsafe fn load_closure(func: *mut ffi::PyFunctionObject, index: u32) -> PyResult<Value> {
    let closure = (*func).func_closure;
    if closure.is_null()
        || ffi::PyTuple_Check(closure) == 0
        || index as isize >= ffi::PyTuple_GET_SIZE(closure)
    {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: function has no closure cell for a free variable",
        ));
    }
    Ok(Value::from_borrowed(ffi::PyTuple_GET_ITEM(
        closure,
        index as ffi::Py_ssize_t,
    )))
}

unsafe fn cell_ptr(c: &Value) -> PyResult<*mut ffi::PyObject> {
    let p = c.as_ptr();
    if p.is_null() || ffi::PyCell_Check(p) == 0 {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: cell variable does not hold a cell",
        ));
    }
    Ok(p)
}

/// The error of reading an empty cell: UnboundLocalError for the function's own cell
/// variables, NameError for free variables, as 3.11 words them.
unsafe fn empty_cell_error(ctx: &Ctx, local: LocalIdx) -> Raised {
    let kind = ctx
        .compiled
        .info
        .local_kinds
        .get(local.0 as usize)
        .copied()
        .unwrap_or(0);
    if kind & slot::FREE != 0 {
        let name = super::values::local_name(ctx, local);
        super::raise(
            ffi::PyExc_NameError,
            &format!("cannot access free variable '{name}' where it is not associated with a value in enclosing scope"),
        )
    } else {
        super::values::unbound_local(ctx, local)
    }
}

/// LoadDeref: the cell's content.
///
/// # Safety
/// GIL held.
pub unsafe fn load_deref(ctx: &Ctx, local: LocalIdx, c: &Value) -> PyResult<Value> {
    // A checked cell and no error: PyCell_Get's NULL means "empty".
    let v = ffi::PyCell_Get(cell_ptr(c)?);
    if v.is_null() {
        return Err(empty_cell_error(ctx, local));
    }
    Value::from_owned(v)
}

/// StoreDeref: sets the cell's content.
///
/// # Safety
/// GIL held.
pub unsafe fn store_deref(c: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PyCell_Set(cell_ptr(c)?, v.as_ptr()))
}

/// DeleteDeref: empties the cell (error if already empty).
///
/// # Safety
/// GIL held.
pub unsafe fn delete_deref(ctx: &Ctx, local: LocalIdx, c: &Value) -> PyResult<()> {
    let p = cell_ptr(c)?;
    let v = ffi::PyCell_Get(p);
    if v.is_null() {
        return Err(empty_cell_error(ctx, local));
    }
    ffi::Py_DECREF(v);
    status(ffi::PyCell_Set(p, std::ptr::null_mut()))
}

/// Native code for MakeCell: `PyCell_New` of the operand, called directly; a local that is
/// always NULL there (not assigned yet: the usual case at a function's start) makes an
/// empty cell, and a NULL elsewhere takes the generic path.
pub(crate) fn emit_make_cell(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let r = e.c.linear.operands[inst.args as usize];
    let v = match e.is_null_register(r) {
        true => e.b.ins().iconst(e.ptr, 0),
        false => {
            let slow = e.slow_block();
            e.object_of(r, slow)
        }
    };
    e.call_for_result(pc, ffi::PyCell_New as *const () as usize, &[v]);
    Some("MakeCell")
}

/// Native code for LoadClosure: cell `index` of the running function's closure, a new
/// reference, read inline (COPY_FREE_VARS: every call of a closure takes its cells so at
/// its start; mdp's lambdas and nested functions ran it in tier 1 two million times a
/// run); a function with no closure tuple that long takes the generic path, which raises.
pub(crate) fn emit_load_closure(e: &mut Emit, pc: usize, index: u32) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let slow = e.slow_block();
    let func = e.func_ptr();
    let closure = e.b.ins().load(
        e.ptr,
        mem(),
        func,
        std::mem::offset_of!(ffi::PyFunctionObject, func_closure) as i32,
    );
    let none = e.b.ins().icmp_imm_s(IntCC::Equal, closure, 0);
    e.fail_if(none, slow);
    e.guard_type(closure, std::ptr::addr_of_mut!(ffi::PyTuple_Type), slow);
    // A tuple: ob_size, then the items.
    let size = e.b.ins().load(types::I64, mem(), closure, 16);
    let short =
        e.b.ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, size, index as i64);
    e.fail_if(short, slow);
    let cell = e.b.ins().load(e.ptr, mem(), closure, 24 + 8 * index as i32);
    e.incref(cell);
    e.set(inst.dst, tag::OBJ, cell);
    Some("LoadClosure")
}

/// Native code for LoadDeref: the cell's content, a new reference, read inline; an empty
/// cell (or a register not holding a cell) takes the generic path, which raises.
/// (A closure's free variables are read this way: genexprs, nested functions, decorators.)
pub(crate) fn emit_load_deref(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let cell_reg = e.c.linear.operands[inst.args as usize];
    let slow = e.slow_block();
    let cell = e.object_of_type(cell_reg, std::ptr::addr_of_mut!(ffi::PyCell_Type), slow);
    let v =
        e.b.ins()
            .load(e.ptr, mem(), cell, crate::cpy::CELL_CONTENTS);
    let empty = e.b.ins().icmp_imm_s(IntCC::Equal, v, 0);
    e.fail_if(empty, slow);
    e.incref(v);
    e.set(inst.dst, tag::OBJ, v);
    Some("LoadDeref")
}

/// Native code for StoreDeref: `PyCell_Set` inline (the new content's reference taken,
/// then the old one released); anything but a cell takes the generic path.
pub(crate) fn emit_store_deref(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let (cell_reg, value_reg) = (
        e.c.linear.operands[inst.args as usize],
        e.c.linear.operands[inst.args as usize + 1],
    );
    let slow = e.slow_block();
    let cell = e.object_of_type(cell_reg, std::ptr::addr_of_mut!(ffi::PyCell_Type), slow);
    let v = e.object_of(value_reg, slow);
    e.incref(v);
    let old =
        e.b.ins()
            .load(e.ptr, mem(), cell, crate::cpy::CELL_CONTENTS);
    e.b.ins().store(mem(), v, cell, crate::cpy::CELL_CONTENTS);
    let (release, done) = (e.b.create_block(), e.b.create_block());
    e.b.ins().brif(old, release, &[], done, &[]);
    e.b.switch_to_block(release);
    e.decref(old);
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(done);
    Some("StoreDeref")
}
