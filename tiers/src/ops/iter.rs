//! Iteration: `iter()` and the FOR_ITER step.

use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::value::{tag, PyResult, Raised, Value};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder};
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

/// Quickened forms of ForIter: the builtin iterators stepped without a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForIterVariant {
    /// A `list_iterator`.
    List,
    /// A `tuple_iterator`.
    Tuple,
    /// A `range_iterator`, yielding unboxed ints.
    Range,
    /// Any other iterator of a static type (dict keys/values/items, str, set, zip,
    /// enumerate...): its `tp_iternext` (which cannot change) called directly.
    Builtin {
        /// The iterator type seen (static: never freed).
        tp: *mut ffi::PyTypeObject,
    },
}

/// Names of ForIter's native templates, for coverage: its variants', then a settled
/// generic site's (any iterator: its type's `tp_iternext` read at the step).
pub const FOR_ITER_TEMPLATES: &[&str] = &[
    "ForIterList",
    "ForIterTuple",
    "ForIterRange",
    "ForIterBuiltin",
    "ForIterGeneric",
];
/// Names of ForIter's variants, for coverage.
pub const FOR_ITER_VARIANTS: &[&str] = FOR_ITER_TEMPLATES.split_at(4).0;

impl ForIterVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            ForIterVariant::List => FOR_ITER_VARIANTS[0],
            ForIterVariant::Tuple => FOR_ITER_VARIANTS[1],
            ForIterVariant::Range => FOR_ITER_VARIANTS[2],
            ForIterVariant::Builtin { .. } => FOR_ITER_VARIANTS[3],
        }
    }
}

/// 3.11's list and tuple iterators: `{ head, it_index, it_seq }` (seq NULL once exhausted).
#[repr(C)]
struct SeqIter {
    ob_base: ffi::PyObject,
    it_index: ffi::Py_ssize_t,
    it_seq: *mut ffi::PyObject,
}

/// 3.11's range iterator: `{ head, index, start, step, len }` (Objects/rangeobject.c).
#[repr(C)]
struct RangeIter {
    ob_base: ffi::PyObject,
    index: std::os::raw::c_long,
    start: std::os::raw::c_long,
    step: std::os::raw::c_long,
    len: std::os::raw::c_long,
}

/// Which variant fits this iterator, if any.
#[inline]
pub fn observe_for_iter(it: &Value) -> Option<ForIterVariant> {
    let p = it.as_ptr();
    if p.is_null() {
        return None;
    }
    // SAFETY: reading the type of a live object.
    let t = unsafe { ffi::Py_TYPE(p) };
    if t == std::ptr::addr_of_mut!(ffi::PyListIter_Type) {
        Some(ForIterVariant::List)
    } else if t == std::ptr::addr_of_mut!(ffi::PyTupleIter_Type) {
        Some(ForIterVariant::Tuple)
    } else if t == std::ptr::addr_of_mut!(ffi::PyRangeIter_Type) {
        Some(ForIterVariant::Range)
    } else {
        // SAFETY: reading a live type's flags and slot.
        let fixed =
            unsafe { (*t).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 && (*t).tp_iternext.is_some() };
        fixed.then_some(ForIterVariant::Builtin { tp: t })
    }
}

/// The quickened ForIter: `None` when the guard fails; otherwise the next item, or `Null`
/// when exhausted (with the same state change the type's tp_iternext makes).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn for_iter_quick(v: ForIterVariant, it: &Value) -> Option<PyResult<Value>> {
    if observe_for_iter(it) != Some(v) {
        return None;
    }
    let p = it.as_ptr();
    Some(Ok(match v {
        ForIterVariant::Builtin { .. } => return Some(for_iter(it)),
        ForIterVariant::List | ForIterVariant::Tuple => {
            // SAFETY: the type check above makes p a list/tuple iterator of 3.11's layout.
            let s = p as *mut SeqIter;
            let seq = (*s).it_seq;
            if seq.is_null() {
                return Some(Ok(Value::Null));
            }
            let (len, item) = if v == ForIterVariant::List {
                let n = ffi::PyList_GET_SIZE(seq);
                (
                    n,
                    if (*s).it_index < n {
                        ffi::PyList_GET_ITEM(seq, (*s).it_index)
                    } else {
                        std::ptr::null_mut()
                    },
                )
            } else {
                let n = ffi::PyTuple_GET_SIZE(seq);
                (
                    n,
                    if (*s).it_index < n {
                        ffi::PyTuple_GET_ITEM(seq, (*s).it_index)
                    } else {
                        std::ptr::null_mut()
                    },
                )
            };
            if (*s).it_index < len {
                (*s).it_index += 1;
                Value::from_borrowed(item)
            } else {
                (*s).it_seq = std::ptr::null_mut();
                ffi::Py_DECREF(seq);
                Value::Null
            }
        }
        ForIterVariant::Range => {
            // SAFETY: the type check above makes p a 3.11 range iterator.
            let r = p as *mut RangeIter;
            if (*r).index < (*r).len {
                // The same wrapping arithmetic rangeiter_next uses.
                let x = ((*r).start as u64)
                    .wrapping_add(((*r).index as u64).wrapping_mul((*r).step as u64))
                    as i64;
                (*r).index += 1;
                Value::Int(x)
            } else {
                Value::Null
            }
        }
    }))
}

/// The native template of GetIter: `PyObject_GetIter` called directly (GET_ITER's own
/// call, as `get_iter`), raising where it raises.
pub(crate) fn emit_get_iter(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let o = e.operand_objects(pc)[0];
    e.call_for_result(pc, ffi::PyObject_GetIter as *const () as usize, &[o]);
    Some("GetIter")
}

/// The native template of a quickened ForIter (exhaustion takes the tier-1 helper, or for
/// a builtin iterator a helper telling exhaustion from an error).
pub(crate) fn emit_for_iter(
    e: &mut Emit,
    pc: usize,
    q: Quick,
    fail: Block,
) -> Option<&'static str> {
    let v = match q {
        Quick::ForIter(v) => v,
        _ => return emit_for_iter_generic(e, pc),
    };
    let inst = e.c.linear.insts[pc];
    let it_reg = e.c.linear.operands[inst.args as usize];
    let tp = match v {
        ForIterVariant::List => std::ptr::addr_of_mut!(ffi::PyListIter_Type),
        ForIterVariant::Tuple => std::ptr::addr_of_mut!(ffi::PyTupleIter_Type),
        ForIterVariant::Range => std::ptr::addr_of_mut!(ffi::PyRangeIter_Type),
        ForIterVariant::Builtin { tp } => tp,
    };
    let it = e.object_of_type(it_reg, tp, fail);
    // The loop's end, as tier 1's ForIter ends it (its flag true, the item register as
    // it was), natively for list, tuple and range iterators: it ran once per loop
    // through the op's generic path (go: 340,000 times a run).
    let ended = e.b.create_block();
    e.b.set_cold_block(ended);
    let flag = e.b.create_block();
    match v {
        ForIterVariant::List | ForIterVariant::Tuple => {
            let items_inline = v == ForIterVariant::Tuple;
            // list/tuple iterator: it_index at 16, it_seq at 24 (NULL once exhausted).
            let seq = e.b.ins().load(e.ptr, mem(), it, 24);
            let gone = e.b.ins().icmp_imm_s(IntCC::Equal, seq, 0);
            e.fail_if(gone, ended);
            let idx = e.b.ins().load(types::I64, mem(), it, 16);
            // ob_size at 16; a tuple's items inline from 24, a list's behind ob_item at 24.
            let n = e.b.ins().load(types::I64, mem(), seq, 16);
            let done = e.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, idx, n);
            let release = e.b.create_block();
            e.b.set_cold_block(release);
            e.fail_if(done, release);
            let items = if items_inline {
                e.b.ins().iadd_imm_s(seq, 24)
            } else {
                e.b.ins().load(e.ptr, mem(), seq, 24)
            };
            let off = e.b.ins().ishl_imm_u(idx, 3);
            let addr = e.b.ins().iadd(items, off);
            let item = e.b.ins().load(e.ptr, mem(), addr, 0);
            let next = e.b.ins().iadd_imm_s(idx, 1);
            e.b.ins().store(mem(), next, it, 16);
            e.incref(item);
            e.set(inst.dst, tag::OBJ, item);
            e.b.ins().jump(flag, &[]);
            // Exhausted now: the iterator lets go of its sequence, as listiter_next and
            // tupleiter_next do (the release may run __del__: the iterator is consistent).
            e.b.switch_to_block(release);
            let null = e.b.ins().iconst(e.ptr, 0);
            e.b.ins().store(mem(), null, it, 24);
            e.decref(seq);
            e.b.ins().jump(ended, &[]);
        }
        ForIterVariant::Range => {
            // rangeiterobject: index 16, start 24, step 32, len 40.
            let idx = e.b.ins().load(types::I64, mem(), it, 16);
            let len = e.b.ins().load(types::I64, mem(), it, 40);
            let done = e.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, idx, len);
            e.fail_if(done, ended);
            let start = e.b.ins().load(types::I64, mem(), it, 24);
            let step = e.b.ins().load(types::I64, mem(), it, 32);
            let off = e.b.ins().imul(idx, step);
            let x = e.b.ins().iadd(start, off);
            let next = e.b.ins().iadd_imm_s(idx, 1);
            e.b.ins().store(mem(), next, it, 16);
            e.set(inst.dst, tag::INT, x);
            e.b.ins().jump(flag, &[]);
        }
        ForIterVariant::Builtin { tp } => {
            // SAFETY: a static type's slot, read at compile time; it cannot change.
            let next = unsafe { (*tp).tp_iternext }? as *const () as usize;
            let item = e.call(next, &[e.ptr], Some(e.ptr), &[it]).expect("returns");
            emit_stepped(e, pc, item, flag);
        }
    }
    // The end: the flag set, then straight to the loop's exit. (A builtin iterator's end
    // goes through its helper: nothing branches here then, and no code is made for it.)
    e.b.seal_block(ended);
    e.b.switch_to_block(ended);
    if !e.b.is_unreachable() {
        let yes = e.b.ins().iconst(types::I64, 1);
        e.set(inst.dst + 1, tag::BOOL, yes);
        e.continue_known(pc, inst.dst + 1, true);
    }
    emit_item_flag(e, pc, flag);
    Some(v.name())
}

/// A ForIter site that settled generic (`QuickCell::settled_generic`: an iterator of a
/// class with `__next__`, a generator of CPython's, an iterator of another extension's
/// heap type): its type's `tp_iternext` read and called at each step, as tier 1's
/// `for_iter` calls it (xml's `iterparse` iterator ran it in tier 1 1.2M times a run); an
/// object with none takes the generic path, which raises.
fn emit_for_iter_generic(e: &mut Emit, pc: usize) -> Option<&'static str> {
    if !e.c.quick[pc].settled_generic() {
        return None;
    }
    let it = e.operand_objects(pc)[0];
    let ty = e.b.ins().load(e.ptr, mem(), it, 8);
    let next = e.b.ins().load(
        e.ptr,
        mem(),
        ty,
        std::mem::offset_of!(ffi::PyTypeObject, tp_iternext) as i32,
    );
    let none = e.b.ins().icmp_imm_s(IntCC::Equal, next, 0);
    let slow = e.slow_block();
    e.fail_if(none, slow);
    let key = crate::native::trampoline::ITERNEXT_SIGNATURE_KEY;
    let item = e
        .call_value(key, next, &[e.ptr], Some(e.ptr), &[it])
        .expect("returns");
    let flag = e.b.create_block();
    emit_stepped(e, pc, item, flag);
    emit_item_flag(e, pc, flag);
    Some(FOR_ITER_TEMPLATES[4])
}

/// After ForIter `pc` called an iterator's `tp_iternext` for `item`: an item goes to
/// `flag` in the op's result; NULL (exhausted, or an error: a dict changed size) to a
/// helper that tells which and sets the registers (or the handler) up, then the next
/// instruction.
fn emit_stepped(e: &mut Emit, pc: usize, item: cranelift_codegen::ir::Value, flag: Block) {
    let dst = e.c.linear.insts[pc].dst;
    let got = e.b.create_block();
    let end = e.b.create_block();
    e.b.ins().brif(item, got, &[], end, &[]);
    e.b.switch_to_block(end);
    let r = e.call_pc_helper(
        crate::native::helpers::for_iter_end as *const () as usize,
        pc,
        None,
    );
    e.check_status(pc, r);
    let next_pc = e.next_block(pc);
    e.b.ins().jump(next_pc, &[]);
    e.b.switch_to_block(got);
    e.set(dst, tag::OBJ, item);
    e.b.ins().jump(flag, &[]);
}

/// An item: ForIter `pc`'s flag false, set last so the Branch after it takes the constant.
fn emit_item_flag(e: &mut Emit, pc: usize, flag: Block) {
    let dst = e.c.linear.insts[pc].dst;
    e.b.switch_to_block(flag);
    let no = e.b.ins().iconst(types::I64, 0);
    e.set(dst + 1, tag::BOOL, no);
}
