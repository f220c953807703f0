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

/// Quickened forms of Subscr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscrVariant {
    /// An exact list indexed by an i64 int (negative indices count from the end).
    ListInt,
    /// An exact tuple indexed by an i64 int.
    TupleInt,
    /// An exact dict with an exact str or int key (whose hashing runs no user code).
    Dict,
}

/// Names of Subscr's native templates, for coverage: its variants', then a settled
/// generic site's (`emit_subscr_generic`).
pub const SUBSCR_TEMPLATES: &[&str] = &[
    "SubscrListInt",
    "SubscrTupleInt",
    "SubscrDict",
    "SubscrGeneric",
];
/// Names of Subscr's variants, for coverage.
pub const SUBSCR_VARIANTS: &[&str] = SUBSCR_TEMPLATES.split_at(3).0;

impl SubscrVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            SubscrVariant::ListInt => SUBSCR_VARIANTS[0],
            SubscrVariant::TupleInt => SUBSCR_VARIANTS[1],
            SubscrVariant::Dict => SUBSCR_VARIANTS[2],
        }
    }
}

/// Which variant fits these operands, if any.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn observe_subscr(o: &Value, k: &Value) -> Option<SubscrVariant> {
    let p = o.as_ptr();
    if p.is_null() {
        return None;
    }
    if super::arith::int_of(k).is_some() {
        if ffi::PyList_CheckExact(p) != 0 {
            return Some(SubscrVariant::ListInt);
        }
        if ffi::PyTuple_CheckExact(p) != 0 {
            return Some(SubscrVariant::TupleInt);
        }
    }
    let kp = k.as_ptr();
    if ffi::PyDict_CheckExact(p) != 0
        && !kp.is_null()
        && (ffi::PyUnicode_CheckExact(kp) != 0 || ffi::PyLong_CheckExact(kp) != 0)
    {
        return Some(SubscrVariant::Dict);
    }
    None
}

/// The quickened Subscr: `None` when the guard fails or an index is out of range (the
/// generic op then raises IndexError).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn subscr_quick(v: SubscrVariant, o: &Value, k: &Value) -> Option<PyResult<Value>> {
    if observe_subscr(o, k) != Some(v) {
        return None;
    }
    let p = o.as_ptr();
    match v {
        SubscrVariant::ListInt | SubscrVariant::TupleInt => {
            let i = super::arith::int_of(k)?;
            let n = if v == SubscrVariant::ListInt {
                ffi::PyList_GET_SIZE(p)
            } else {
                ffi::PyTuple_GET_SIZE(p)
            } as i64;
            let i = index_in(i, n)?;
            let item = if v == SubscrVariant::ListInt {
                ffi::PyList_GET_ITEM(p, i as ffi::Py_ssize_t)
            } else {
                ffi::PyTuple_GET_ITEM(p, i as ffi::Py_ssize_t)
            };
            Some(Ok(Value::from_borrowed(item)))
        }
        SubscrVariant::Dict => {
            // Decided here, never retried generically: a lookup can run a stored key's
            // __eq__, which must not run twice.
            let r = ffi::PyDict_GetItemWithError(p, k.as_ptr());
            if r.is_null() {
                if ffi::PyErr_Occurred().is_null() {
                    // An exact dict has no __missing__: KeyError(key), as dict_subscript.
                    ffi::PyErr_SetObject(ffi::PyExc_KeyError, k.as_ptr());
                }
                return Some(Err(crate::value::Raised));
            }
            Some(Ok(Value::from_borrowed(r)))
        }
    }
}

/// Quickened forms of StoreSubscr (CPython's STORE_SUBSCR_LIST_INT and _DICT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreSubscrVariant {
    /// An exact list, an i64 index (negative from the end) in range.
    ListInt,
    /// An exact dict, any key.
    Dict,
}

/// Names of StoreSubscr's native templates, for coverage: its variants', then a settled
/// generic site's (`emit_store_subscr_generic`).
pub const STORE_SUBSCR_TEMPLATES: &[&str] = &[
    "StoreSubscrListInt",
    "StoreSubscrDict",
    "StoreSubscrGeneric",
];
/// Names of StoreSubscr's variants, for coverage.
pub const STORE_SUBSCR_VARIANTS: &[&str] = STORE_SUBSCR_TEMPLATES.split_at(2).0;

impl StoreSubscrVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            StoreSubscrVariant::ListInt => STORE_SUBSCR_VARIANTS[0],
            StoreSubscrVariant::Dict => STORE_SUBSCR_VARIANTS[1],
        }
    }
}

/// Which StoreSubscr variant fits `o[k] = ...` (operands are objects here), if any.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn observe_store_subscr(o: &Value, k: &Value) -> Option<StoreSubscrVariant> {
    let p = o.as_ptr();
    if p.is_null() {
        return None;
    }
    if ffi::PyList_CheckExact(p) != 0 && super::arith::int_of(k).is_some() {
        return Some(StoreSubscrVariant::ListInt);
    }
    if ffi::PyDict_CheckExact(p) != 0 {
        return Some(StoreSubscrVariant::Dict);
    }
    None
}

/// The quickened StoreSubscr: `None` when the guard fails or the index is out of range
/// (the generic op then raises IndexError).
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn store_subscr_quick(
    v: StoreSubscrVariant,
    value: &Value,
    o: &Value,
    k: &Value,
) -> Option<PyResult<()>> {
    if observe_store_subscr(o, k) != Some(v) {
        return None;
    }
    let p = o.as_ptr();
    match v {
        StoreSubscrVariant::ListInt => {
            let i = super::arith::int_of(k)?;
            let n = ffi::PyList_GET_SIZE(p) as i64;
            let i = index_in(i, n)?;
            // As list_ass_item: the new reference in, then the old one released (which
            // may run __del__, after the list is consistent).
            let x = value.as_ptr();
            ffi::Py_INCREF(x);
            let slot = (*(p as *mut ffi::PyListObject)).ob_item.add(i as usize);
            let old = std::mem::replace(&mut *slot, x);
            ffi::Py_DECREF(old);
            Some(Ok(()))
        }
        // Decided here, never retried generically: hashing the key may run user code.
        StoreSubscrVariant::Dict => {
            Some(status(ffi::PyDict_SetItem(p, k.as_ptr(), value.as_ptr())))
        }
    }
}

/// Looks `k` up in the exact dict `d`: a new reference, or NULL with KeyError (an exact
/// dict has no `__missing__`) or the lookup's own exception set. For native code.
///
/// # Safety
/// GIL held; `d` an exact dict, `k` an object.
pub unsafe extern "C" fn dict_item(
    d: *mut ffi::PyObject,
    k: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let r = ffi::PyDict_GetItemWithError(d, k);
    if r.is_null() {
        if ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_SetObject(ffi::PyExc_KeyError, k);
        }
        return std::ptr::null_mut();
    }
    ffi::Py_INCREF(r);
    r
}

/// Native templates of StoreSubscr: a list item replaced in place (index as for Subscr,
/// out of range takes the generic op), or `PyDict_SetItem` on an exact dict.
pub(crate) fn emit_store_subscr(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::{types, InstBuilder};
    let crate::quick::Quick::StoreSubscr(v) = q else {
        return e.c.quick[pc]
            .settled_generic()
            .then(|| emit_store_subscr_generic(e, pc));
    };
    let inst = e.c.linear.insts[pc];
    let ops = &e.c.linear.operands[inst.args as usize..(inst.args + 3) as usize];
    let (x, o, k) = (ops[0], ops[1], ops[2]);
    let done = e.b.create_block();
    match v {
        StoreSubscrVariant::ListInt => {
            let p = e.object_of_type(o, std::ptr::addr_of_mut!(ffi::PyList_Type), fail);
            // The value as an object (a number boxed in place, as the generic op would).
            let slow = e.slow_block();
            let xv = e.object_of(x, slow);
            let at = emit_item_slot(e, p, k, false, fail);
            e.incref(xv);
            let old = e.b.ins().load(e.ptr, mem(), at, 0);
            e.b.ins().store(mem(), xv, at, 0);
            e.decref(old);
            e.b.ins().jump(done, &[]);
        }
        StoreSubscrVariant::Dict => {
            let p = e.object_of_type(o, std::ptr::addr_of_mut!(ffi::PyDict_Type), fail);
            let slow = e.slow_block();
            let kv = e.object_of(k, slow);
            let xv = e.object_of(x, slow);
            let st = e
                .call(
                    ffi::PyDict_SetItem as *const () as usize,
                    &[e.ptr, e.ptr, e.ptr],
                    Some(types::I32),
                    &[p, kv, xv],
                )
                .expect("returns");
            e.raise_if(pc, st);
            e.b.ins().jump(done, &[]);
        }
    }
    e.b.switch_to_block(done);
    Some(v.name())
}

/// Native templates of Subscr (for a list or tuple indexed by an int): type guard, the
/// index as i64, negative indices from the end, a bounds check (out of range takes the
/// generic op, which raises IndexError), then the item. An exact dict with a str or int
/// key is looked up by `dict_item`.
pub(crate) fn emit_subscr(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::InstBuilder;
    let crate::quick::Quick::Subscr(v) = q else {
        return e.c.quick[pc]
            .settled_generic()
            .then(|| emit_subscr_generic(e, pc));
    };
    let inst = e.c.linear.insts[pc];
    let (o, k) = (
        e.c.linear.operands[inst.args as usize],
        e.c.linear.operands[inst.args as usize + 1],
    );
    let tp = match v {
        SubscrVariant::ListInt => std::ptr::addr_of_mut!(ffi::PyList_Type),
        SubscrVariant::TupleInt => std::ptr::addr_of_mut!(ffi::PyTuple_Type),
        SubscrVariant::Dict => {
            emit_subscr_dict(e, pc, o, k, fail);
            return Some(v.name());
        }
    };
    let p = e.object_of_type(o, tp, fail);
    let at = emit_item_slot(e, p, k, v == SubscrVariant::TupleInt, fail);
    let item = e.b.ins().load(e.ptr, mem(), at, 0);
    e.incref(item);
    e.set(inst.dst, tag::OBJ, item);
    Some(v.name())
}

/// SubscrDict's template: an exact dict and an exact str or int key (whose hashing and
/// comparison run no user code), looked up by `dict_item`.
fn emit_subscr_dict(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    o: u32,
    k: u32,
    fail: cranelift_codegen::ir::Block,
) {
    use crate::value::tag;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::InstBuilder;
    let inst = e.c.linear.insts[pc];
    let p = e.object_of_type(o, std::ptr::addr_of_mut!(ffi::PyDict_Type), fail);
    let kv = e.object_of(k, fail);
    let kt = e.b.ins().load(e.ptr, crate::native::emit::mem(), kv, 8);
    let is_str = e.b.ins().icmp_imm_s(
        IntCC::Equal,
        kt,
        std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as i64,
    );
    let is_int = e.b.ins().icmp_imm_s(
        IntCC::Equal,
        kt,
        std::ptr::addr_of_mut!(ffi::PyLong_Type) as i64,
    );
    let ok = e.b.ins().bor(is_str, is_int);
    let other = e.b.ins().icmp_imm_s(IntCC::Equal, ok, 0);
    e.fail_if(other, fail);
    let r = e
        .call(
            dict_item as *const () as usize,
            &[e.ptr, e.ptr],
            Some(e.ptr),
            &[p, kv],
        )
        .expect("returns");
    let missing = e.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
    e.raise_if(pc, missing);
    e.set(inst.dst, tag::OBJ, r);
}

/// An index `i` into a sequence of `n` items as CPython takes it (negative counts from
/// the end), if it is in range.
#[inline]
fn index_in(i: i64, n: i64) -> Option<i64> {
    let i = if i < 0 { i + n } else { i };
    (0..n).contains(&i).then_some(i)
}

/// Native code for the address of item `k` (an int register) of the list or tuple at `p`
/// (`inline_items`: a tuple's items follow its header; a list's are behind `ob_item`):
/// negative indices from the end, out of range to the op's slow path (the generic op
/// raises IndexError), a non-int index to `fail`.
fn emit_item_slot(
    e: &mut crate::native::emit::Emit,
    p: cranelift_codegen::ir::Value,
    k: u32,
    inline_items: bool,
    fail: cranelift_codegen::ir::Block,
) -> cranelift_codegen::ir::Value {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    let i = super::arith::emit_int_of(e, k, fail);
    // PyVarObject: ob_size at 16; items follow at 24 (a tuple's inline, a list's behind
    // its ob_item pointer).
    let n = e.b.ins().load(types::I64, mem(), p, 16);
    let neg = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, 0);
    let wrapped = e.b.ins().iadd(i, n);
    let i = e.b.ins().select(neg, wrapped, i);
    let out = e.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, i, n);
    let slow = e.slow_block();
    e.fail_if(out, slow);
    let off = e.b.ins().ishl_imm_u(i, 3);
    let items = if inline_items {
        e.b.ins().iadd_imm_s(p, 24)
    } else {
        e.b.ins().load(e.ptr, mem(), p, 24)
    };
    e.b.ins().iadd(items, off)
}

/// Native code for a Subscr site that settled generic (`QuickCell::settled_generic`: a
/// slice, a str, a user type's `__getitem__`): `PyObject_GetItem`, as the generic op calls
/// it, without going through the tier-1 helper's dispatch.
fn emit_subscr_generic(e: &mut crate::native::emit::Emit, pc: usize) -> &'static str {
    let objs = e.operand_objects(pc);
    e.call_for_result(pc, ffi::PyObject_GetItem as *const () as usize, &objs);
    SUBSCR_TEMPLATES[3]
}

/// Native code for a StoreSubscr site that settled generic: `PyObject_SetItem(o, k, v)`
/// (operands v, o, k), as `emit_subscr_generic`.
fn emit_store_subscr_generic(e: &mut crate::native::emit::Emit, pc: usize) -> &'static str {
    use cranelift_codegen::ir::types;
    let objs = e.operand_objects(pc);
    let st = e
        .call(
            ffi::PyObject_SetItem as *const () as usize,
            &[e.ptr, e.ptr, e.ptr],
            Some(types::I32),
            &[objs[1], objs[2], objs[0]],
        )
        .expect("returns");
    e.raise_if(pc, st);
    STORE_SUBSCR_TEMPLATES[2]
}

/// Native code for BuildSlice: `PySlice_New` called directly (bounds boxed as the generic
/// op boxes them).
pub(crate) fn emit_build_slice(
    e: &mut crate::native::emit::Emit,
    pc: usize,
) -> Option<&'static str> {
    use cranelift_codegen::ir::InstBuilder;
    let mut objs = e.operand_objects(pc);
    if objs.len() == 2 {
        objs.push(e.b.ins().iconst(e.ptr, 0));
    }
    e.call_for_result(pc, ffi::PySlice_New as *const () as usize, &objs);
    Some("BuildSlice")
}
