//! Comparisons, identity, membership and truth.

use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::value::{tag, PyResult, Raised, Value};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Block, BlockArg, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;
use tiered_ir::CmpOp;

/// Compare: `a op b` via rich comparison (any object may come back).
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn compare(op: CmpOp, a: &Value, b: &Value) -> PyResult<Value> {
    let r = ffi::PyObject_RichCompare(a.as_ptr(), b.as_ptr(), rich_op(op));
    if r == ffi::Py_True() || r == ffi::Py_False() {
        let b = r == ffi::Py_True();
        ffi::Py_DECREF(r);
        return Ok(Value::Bool(b));
    }
    Value::from_owned(r)
}

/// The kinds of operand a Truth site has met in tier 1 (bits), which its native template
/// tests for and nothing else: any other goes to the op's tier-1 helper as a failed guard
/// (counted: a site that keeps meeting new kinds has its code recompiled with them). A
/// template for every kind was about 130 Cranelift instructions at each site, 8% of all
/// the pyperformance kernels compiled; most sites meet one or two kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruthSeen(u8);

impl TruthSeen {
    /// An unboxed bool.
    pub const BOOL: u8 = 1;
    /// An unboxed int.
    pub const INT: u8 = 2;
    /// An unboxed float.
    pub const FLOAT: u8 = 4;
    /// True or False, as objects.
    pub const TRUE_FALSE: u8 = 8;
    /// None.
    pub const NONE: u8 = 16;
    /// An exact int, list, tuple, dict, str or bytes object (`sized_types`).
    pub const SIZED: u8 = 32;
    /// Any other object (`PyObject_IsTrue`).
    pub const OTHER: u8 = 64;
    /// Every kind: what a site that never ran is compiled for.
    pub const ALL: TruthSeen = TruthSeen(127);

    /// The kind of `v` (none for NULL).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn kind_of(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => Self::BOOL,
            Value::Int(_) => Self::INT,
            Value::Float(_) => Self::FLOAT,
            _ => {
                let p = v.as_ptr();
                if p == ffi::Py_True() || p == ffi::Py_False() {
                    Self::TRUE_FALSE
                } else if p == ffi::Py_None() {
                    Self::NONE
                } else if sized_types().contains(&ffi::Py_TYPE(p)) {
                    Self::SIZED
                } else {
                    Self::OTHER
                }
            }
        }
    }

    /// Whether kind `k` was met.
    pub fn has(self, k: u8) -> bool {
        self.0 & k != 0
    }

    /// The variant's name, for dumps.
    pub fn name(&self) -> &'static str {
        "TruthSeen"
    }
}

/// Records the kind of Truth's operand `v` at the site of `q` (tier 1, quickening on).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn observe_truth(q: &crate::quick::QuickCell, v: &Value) {
    let seen = match q.get() {
        Quick::Truth(s) => s.0,
        _ => 0,
    };
    let k = TruthSeen::kind_of(v);
    if seen & k != k {
        q.specialize(Quick::Truth(TruthSeen(seen | k)));
    }
}

/// Exact builtin types whose truth is whether the word at `cpy::SIZED_WORD` is non-zero
/// (ints, lists, tuples and bytes: ob_size; dicts: ma_used; strs: their length).
fn sized_types() -> [*mut ffi::PyTypeObject; 6] {
    [
        std::ptr::addr_of_mut!(ffi::PyLong_Type),
        std::ptr::addr_of_mut!(ffi::PyList_Type),
        std::ptr::addr_of_mut!(ffi::PyTuple_Type),
        std::ptr::addr_of_mut!(ffi::PyDict_Type),
        std::ptr::addr_of_mut!(ffi::PyUnicode_Type),
        std::ptr::addr_of_mut!(ffi::PyBytes_Type),
    ]
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

/// Compare in a frame at the recursion limit (`ThreadState::at_recursion_limit`), where
/// CPython's COMPARE_OP raises RecursionError "... in comparison" before comparing,
/// unless 3.11 specialized it: a comparison whose result a conditional jump takes at once
/// (`jump`) of two floats, two ints of one digit, or two strs by `==` or `!=`
/// (COMPARE_OP_{FLOAT,INT,STR}_JUMP, which skip the check). Those compare with a level
/// lent for the comparison itself; the rest take PyObject_RichCompare's check, which
/// raises there. (Quickened compares elsewhere skip the check: no other frame's own ops
/// can reach the limit.)
///
/// # Safety
/// GIL held; `ts` is the running thread's state.
pub unsafe fn compare_at_limit(
    ts: crate::cpy::ThreadState,
    op: CmpOp,
    jump: bool,
    a: &Value,
    b: &Value,
) -> PyResult<Value> {
    if !(jump && specialized_in_cpython(op, a, b)) {
        return compare(op, a, b);
    }
    ts.lending_a_level(|| compare(op, a, b))
}

/// Whether 3.11 specializes a comparison followed by a conditional jump for these
/// operands (`_Py_Specialize_CompareOp`): the same exact type on both sides, and that
/// float, int with at most one 30-bit digit, or str compared by `==` or `!=`.
fn specialized_in_cpython(op: CmpOp, a: &Value, b: &Value) -> bool {
    let (x, y) = (a.as_ptr(), b.as_ptr());
    // SAFETY: reading the types and sizes of live objects (boxed by the caller).
    unsafe {
        if x.is_null() || y.is_null() || ffi::Py_TYPE(x) != ffi::Py_TYPE(y) {
            return false;
        }
        if ffi::PyFloat_CheckExact(x) != 0 {
            return true;
        }
        if ffi::PyLong_CheckExact(x) != 0 {
            let digits = |o: *mut ffi::PyObject| (*(o as *mut ffi::PyVarObject)).ob_size.abs();
            return digits(x) <= 1 && digits(y) <= 1;
        }
        ffi::PyUnicode_CheckExact(x) != 0 && matches!(op, CmpOp::Eq | CmpOp::Ne)
    }
}

/// Quickened forms of Compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareVariant {
    /// Both exact ints in i64: an unboxed bool.
    Int,
    /// Floats (or a float and an int small enough to convert exactly): IEEE comparison,
    /// which is what float_richcompare does for such operands.
    Float,
    /// `==` or `!=` of two exact strs: equal contents (what unicode_richcompare decides).
    Str,
    /// `==` or `!=` of exact builtin types that do not compare with each other (an int
    /// and a str, None and a list...): both sides return NotImplemented, so CPython falls
    /// back to identity, and objects of different types are never the same object.
    Unrelated {
        /// The left operand's type (static).
        a: *mut ffi::PyTypeObject,
        /// The right operand's type (static).
        b: *mut ffi::PyTypeObject,
    },
    /// `==` or `!=` of two objects whose types both compare as `object` does (no rich
    /// comparison dunder of their own: plain instances, enum members, None): every
    /// `object_richcompare` involved answers NotImplemented unless the two are the same
    /// object, so the result is identity. Checked on each object's type at every run (a
    /// class may get an `__eq__` later), so no type is kept.
    Identity,
}

/// Names of Compare's native templates, for coverage: its variants', then a settled
/// generic site's (`emit_compare_generic`).
pub const COMPARE_TEMPLATES: &[&str] = &[
    "CompareInt",
    "CompareFloat",
    "CompareStr",
    "CompareUnrelated",
    "CompareIdentity",
    "CompareGeneric",
];
/// Names of Compare's variants, for coverage.
pub const COMPARE_VARIANTS: &[&str] = COMPARE_TEMPLATES.split_at(5).0;

/// Which group of mutually comparable builtin types an exact type belongs to, if it is
/// one whose `==` returns NotImplemented for every other type here (bytes is left out:
/// `python -b` warns when it meets a str).
fn comparable_group(t: *mut ffi::PyTypeObject) -> Option<u8> {
    // SAFETY: taking the addresses of CPython's static types reads nothing.
    unsafe {
        let groups: [(*mut ffi::PyTypeObject, u8); 9] = [
            (std::ptr::addr_of_mut!(ffi::PyLong_Type), 0),
            (std::ptr::addr_of_mut!(ffi::PyFloat_Type), 0),
            (std::ptr::addr_of_mut!(ffi::PyUnicode_Type), 1),
            (std::ptr::addr_of_mut!(ffi::PyTuple_Type), 2),
            (std::ptr::addr_of_mut!(ffi::PyList_Type), 3),
            (std::ptr::addr_of_mut!(ffi::PyDict_Type), 4),
            (std::ptr::addr_of_mut!(ffi::PySet_Type), 5),
            (std::ptr::addr_of_mut!(ffi::PyFrozenSet_Type), 5),
            (ffi::Py_TYPE(ffi::Py_None()), 6),
        ];
        groups.iter().find(|(g, _)| *g == t).map(|&(_, k)| k)
    }
}

/// The exact type of a register's value (unboxed numbers by their tag).
fn type_of(v: &Value) -> Option<*mut ffi::PyTypeObject> {
    match v {
        Value::Int(_) => Some(std::ptr::addr_of_mut!(ffi::PyLong_Type)),
        Value::Float(_) => Some(std::ptr::addr_of_mut!(ffi::PyFloat_Type)),
        // SAFETY: reading the type of a live object.
        Value::Obj(p) => Some(unsafe { ffi::Py_TYPE(p.as_ptr()) }),
        Value::Null | Value::Bool(_) => None,
    }
}

/// Both operands' types when they are unrelated builtin types (see `Unrelated`).
fn unrelated(a: &Value, b: &Value) -> Option<(*mut ffi::PyTypeObject, *mut ffi::PyTypeObject)> {
    let (ta, tb) = (type_of(a)?, type_of(b)?);
    (comparable_group(ta)? != comparable_group(tb)?).then_some((ta, tb))
}

extern "C" {
    /// Whether two exact strs have equal contents (libpython 3.11, cpython/unicodeobject.h).
    fn _PyUnicode_EQ(a: *mut ffi::PyObject, b: *mut ffi::PyObject) -> std::os::raw::c_int;
}

/// `object`'s rich comparison (`object_richcompare`), which every type inherits unless it
/// or a base defines its own.
fn object_richcompare() -> Option<ffi::richcmpfunc> {
    // SAFETY: `object`'s type object is static and readied before any code runs.
    unsafe { (*std::ptr::addr_of_mut!(ffi::PyBaseObject_Type)).tp_richcompare }
}

/// Both operands objects whose types compare as `object` does (see `Identity`).
#[inline]
fn both_compare_by_identity(a: &Value, b: &Value) -> bool {
    let Some(base) = object_richcompare() else {
        return false;
    };
    [a, b].iter().all(|v| match v {
        // SAFETY: reading the type slot of a live object.
        Value::Obj(p) => unsafe {
            matches!((*ffi::Py_TYPE(p.as_ptr())).tp_richcompare, Some(f) if std::ptr::fn_addr_eq(f, base))
        },
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => false,
    })
}

/// Both operands exact strs.
#[inline]
fn both_str(a: &Value, b: &Value) -> bool {
    let (x, y) = (a.as_ptr(), b.as_ptr());
    // SAFETY: reading the types of live objects.
    !x.is_null()
        && !y.is_null()
        && unsafe { ffi::PyUnicode_CheckExact(x) != 0 && ffi::PyUnicode_CheckExact(y) != 0 }
}

impl CompareVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            CompareVariant::Int => COMPARE_VARIANTS[0],
            CompareVariant::Float => COMPARE_VARIANTS[1],
            CompareVariant::Str => COMPARE_VARIANTS[2],
            CompareVariant::Unrelated { .. } => COMPARE_VARIANTS[3],
            CompareVariant::Identity => COMPARE_VARIANTS[4],
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
pub fn observe_compare(op: CmpOp, a: &Value, b: &Value) -> Option<CompareVariant> {
    use super::arith::{float_of, int_of};
    if int_of(a).is_some() && int_of(b).is_some() {
        return Some(CompareVariant::Int);
    }
    if matches!(op, CmpOp::Eq | CmpOp::Ne) && both_str(a, b) {
        return Some(CompareVariant::Str);
    }
    if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        if let Some((a, b)) = unrelated(a, b) {
            return Some(CompareVariant::Unrelated { a, b });
        }
        if both_compare_by_identity(a, b) {
            return Some(CompareVariant::Identity);
        }
    }
    if (float_of(a).is_some() || float_of(b).is_some())
        && exact_float(a).is_some()
        && exact_float(b).is_some()
    {
        return Some(CompareVariant::Float);
    }
    None
}

/// `x op y` with IEEE semantics for floats (NaN compares unequal to everything).
#[inline]
fn cmp<T: PartialOrd>(op: CmpOp, x: T, y: T) -> bool {
    match op {
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
    }
}

/// The quickened Compare (`None` when the guard fails).
#[inline]
pub fn compare_quick(op: CmpOp, v: CompareVariant, a: &Value, b: &Value) -> Option<Value> {
    use super::arith::{float_of, int_of};
    let r = match v {
        CompareVariant::Int => cmp(op, int_of(a)?, int_of(b)?),
        CompareVariant::Float => {
            if float_of(a).is_none() && float_of(b).is_none() {
                return None;
            }
            cmp(op, exact_float(a)?, exact_float(b)?)
        }
        CompareVariant::Str => {
            if !both_str(a, b) {
                return None;
            }
            // SAFETY: both are live exact strs.
            let eq = unsafe { _PyUnicode_EQ(a.as_ptr(), b.as_ptr()) } != 0;
            eq == (op == CmpOp::Eq)
        }
        CompareVariant::Unrelated { a: ta, b: tb } => {
            if type_of(a) != Some(ta) || type_of(b) != Some(tb) {
                return None;
            }
            op == CmpOp::Ne
        }
        CompareVariant::Identity => {
            if !both_compare_by_identity(a, b) {
                return None;
            }
            (a.as_ptr() == b.as_ptr()) == (op == CmpOp::Eq)
        }
    };
    Some(Value::Bool(r))
}

/// The rich comparison operator of `op` (`Py_LT`...).
fn rich_op(op: CmpOp) -> std::os::raw::c_int {
    match op {
        CmpOp::Lt => ffi::Py_LT,
        CmpOp::Le => ffi::Py_LE,
        CmpOp::Eq => ffi::Py_EQ,
        CmpOp::Ne => ffi::Py_NE,
        CmpOp::Gt => ffi::Py_GT,
        CmpOp::Ge => ffi::Py_GE,
    }
}

/// A settled generic Compare (sets, tuples, instances with `__lt__`...):
/// `PyObject_RichCompare` called from native code, as CPython's COMPARE_OP does, instead
/// of running the op through the tier-1 helper. The result is whatever object comes back
/// (True and False too: the Truth that usually follows tests them inline).
fn emit_compare_generic(e: &mut Emit, pc: usize, op: CmpOp) -> Option<&'static str> {
    if !e.c.quick[pc].settled_generic() {
        return None;
    }
    let objs = e.operand_objects(pc);
    let o = e.b.ins().iconst(e.ptr, rich_op(op) as i64);
    e.call_for_result(
        pc,
        ffi::PyObject_RichCompare as *const () as usize,
        &[objs[0], objs[1], o],
    );
    Some(COMPARE_TEMPLATES[5])
}

/// The native template of a quickened Compare (an unboxed bool), a settled generic one's
/// call, or `None`.
pub(crate) fn emit_compare(
    e: &mut Emit,
    pc: usize,
    op: CmpOp,
    q: Quick,
    fail: Block,
) -> Option<&'static str> {
    let Quick::Compare(v) = q else {
        return emit_compare_generic(e, pc, op);
    };
    let inst = e.c.linear.insts[pc];
    let (a, b) = (
        e.c.linear.operands[inst.args as usize],
        e.c.linear.operands[inst.args as usize + 1],
    );
    let r = match v {
        CompareVariant::Int => {
            let x = super::arith::emit_int_of(e, a, fail);
            let y = super::arith::emit_int_of(e, b, fail);
            let cc = match op {
                CmpOp::Lt => IntCC::SignedLessThan,
                CmpOp::Le => IntCC::SignedLessThanOrEqual,
                CmpOp::Eq => IntCC::Equal,
                CmpOp::Ne => IntCC::NotEqual,
                CmpOp::Gt => IntCC::SignedGreaterThan,
                CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
            };
            e.b.ins().icmp(cc, x, y)
        }
        CompareVariant::Float => {
            let (x, fx) = super::arith::emit_float_operand(e, a, fail);
            let (y, fy) = super::arith::emit_float_operand(e, b, fail);
            let any = e.b.ins().bor(fx, fy);
            let none = e.b.ins().icmp_imm_s(IntCC::Equal, any, 0);
            e.fail_if(none, fail);
            // An int operand converts exactly up to 2**53 (as tier 1 checks); larger ones
            // compare exactly on the slow path, as float_richcompare does. Checked after
            // the conversion, which rounds 2**53 + 1 down to 2**53: so from 2**53 on.
            for (val, is_float) in [(x, fx), (y, fy)] {
                let limit = e.b.ins().f64const(9007199254740992.0);
                let mag = e.b.ins().fabs(val);
                let too_big = e.b.ins().fcmp(FloatCC::GreaterThanOrEqual, mag, limit);
                let was_int = e.b.ins().icmp_imm_s(IntCC::Equal, is_float, 0);
                let bad = e.b.ins().band(too_big, was_int);
                e.fail_if(bad, fail);
            }
            let cc = match op {
                CmpOp::Lt => FloatCC::LessThan,
                CmpOp::Le => FloatCC::LessThanOrEqual,
                CmpOp::Eq => FloatCC::Equal,
                CmpOp::Ne => FloatCC::NotEqual,
                CmpOp::Gt => FloatCC::GreaterThan,
                CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            };
            e.b.ins().fcmp(cc, x, y)
        }
        CompareVariant::Str => {
            let str_type = std::ptr::addr_of_mut!(ffi::PyUnicode_Type);
            let ptrs = [
                e.object_of_type(a, str_type, fail),
                e.object_of_type(b, str_type, fail),
            ];
            // The same object is equal to itself; otherwise compare contents.
            let same = e.b.ins().icmp(IntCC::Equal, ptrs[0], ptrs[1]);
            let (quick, call, join) = (e.b.create_block(), e.b.create_block(), e.b.create_block());
            e.b.append_block_param(join, types::I8);
            e.b.ins().brif(same, quick, &[], call, &[]);
            e.b.switch_to_block(quick);
            let one = e.b.ins().iconst(types::I8, 1);
            e.b.ins().jump(join, &[BlockArg::Value(one)]);
            e.b.switch_to_block(call);
            let eq = e
                .call(
                    _PyUnicode_EQ as *const () as usize,
                    &[e.ptr, e.ptr],
                    Some(types::I32),
                    &[ptrs[0], ptrs[1]],
                )
                .expect("returns");
            let eq = e.b.ins().icmp_imm_s(IntCC::NotEqual, eq, 0);
            e.b.ins().jump(join, &[BlockArg::Value(eq)]);
            e.b.switch_to_block(join);
            let eq = e.b.block_params(join)[0];
            if op == CmpOp::Eq {
                eq
            } else {
                e.b.ins().bxor_imm_u(eq, 1)
            }
        }
        CompareVariant::Unrelated { a: ta, b: tb } => {
            for (r, ty) in [(a, ta), (b, tb)] {
                let t = e.tag(r);
                super::calls::emit_type_guard(e, r, t, ty as usize, fail);
            }
            e.b.ins().iconst(types::I8, (op == CmpOp::Ne) as i64)
        }
        CompareVariant::Identity => {
            let base = object_richcompare()? as *const () as i64;
            let ptrs = [a, b].map(|r| {
                let t = e.tag(r);
                e.guard_eq(t, tag::OBJ as i64, fail);
                e.payload(r, e.ptr)
            });
            for &p in &ptrs {
                let ty = e.b.ins().load(e.ptr, mem(), p, 8);
                let slot = e.b.ins().load(
                    e.ptr,
                    mem(),
                    ty,
                    std::mem::offset_of!(ffi::PyTypeObject, tp_richcompare) as i32,
                );
                e.guard_eq(slot, base, fail);
            }
            let cc = if op == CmpOp::Eq {
                IntCC::Equal
            } else {
                IntCC::NotEqual
            };
            e.b.ins().icmp(cc, ptrs[0], ptrs[1])
        }
    };
    let r = e.b.ins().uextend(types::I64, r);
    e.set(inst.dst, tag::BOOL, r);
    Some(v.name())
}

/// The native template of Truth: the kinds of operand the site met in tier 1
/// (`TruthSeen`; every kind if it never ran), others through the op's helper as a failed
/// guard (`emit_truth_value`).
pub(crate) fn emit_truth(e: &mut Emit, pc: usize, fail: Block) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let a = e.c.linear.operands[inst.args as usize];
    let seen = match e.c.quick[pc].get() {
        Quick::Truth(s) => s,
        _ => TruthSeen::ALL,
    };
    // With every kind tested, only NULL is left: the generic path, not a failed guard.
    let unseen = match seen == TruthSeen::ALL {
        true => e.slow_block(),
        false => fail,
    };
    let r = emit_truth_value(e, pc, a, seen, unseen);
    e.set(inst.dst, tag::BOOL, r);
    Some("TruthUnboxed")
}

/// Native code for `bool(a)` as an i64 (0 or 1), as op `pc`, for the kinds `seen` (each
/// tested inline: unboxed bools, ints and floats, True, False and None by identity,
/// exact sized builtins by their size word; any other object through `PyObject_IsTrue`,
/// its `__bool__` or `__len__`, raising as the op raises, out of line). Anything else
/// branches to `unseen` (with every kind seen, only NULL).
pub(crate) fn emit_truth_value(
    e: &mut Emit,
    pc: usize,
    a: u32,
    seen: TruthSeen,
    unseen: Block,
) -> CValue {
    let t = e.tag(a);
    let join = e.b.create_block();
    e.b.append_block_param(join, types::I64);
    // Unboxed values, by tag.
    let unboxed: [(u8, u8); 3] = [
        (TruthSeen::BOOL, tag::BOOL),
        (TruthSeen::INT, tag::INT),
        (TruthSeen::FLOAT, tag::FLOAT),
    ];
    for (kind, tg) in unboxed.into_iter().filter(|&(k, _)| seen.has(k)) {
        let hit = e.b.create_block();
        let next = e.b.create_block();
        let is = e.b.ins().icmp_imm_s(IntCC::Equal, t, tg as i64);
        e.b.ins().brif(is, hit, &[], next, &[]);
        e.b.switch_to_block(hit);
        let v = match kind {
            TruthSeen::BOOL => {
                let v = e.payload(a, types::I8);
                e.b.ins().uextend(types::I64, v)
            }
            TruthSeen::INT => {
                let i = e.payload(a, types::I64);
                let nz = e.b.ins().icmp_imm_s(IntCC::NotEqual, i, 0);
                e.b.ins().uextend(types::I64, nz)
            }
            _ => {
                let x = e.payload(a, types::F64);
                let zero = e.b.ins().f64const(0.0);
                // NotEqual is true for NaN, as bool(nan) is.
                let nz = e.b.ins().fcmp(FloatCC::NotEqual, x, zero);
                e.b.ins().uextend(types::I64, nz)
            }
        };
        e.b.ins().jump(join, &[BlockArg::Value(v)]);
        e.b.switch_to_block(next);
    }
    let objects = TruthSeen::TRUE_FALSE | TruthSeen::NONE | TruthSeen::SIZED | TruthSeen::OTHER;
    if !seen.has(objects) {
        e.b.ins().jump(unseen, &[]);
        e.b.switch_to_block(join);
        return e.b.block_params(join)[0];
    }
    e.guard_eq(t, tag::OBJ as i64, unseen);
    let p = e.payload(a, e.ptr);
    // True, False and None (flags kept in attributes, results of calls) by identity.
    // SAFETY: the singletons live as long as the interpreter.
    let (yes, no, none) = unsafe { (ffi::Py_True(), ffi::Py_False(), ffi::Py_None()) };
    let singletons = [
        (TruthSeen::TRUE_FALSE, yes, 1),
        (TruthSeen::TRUE_FALSE, no, 0),
        (TruthSeen::NONE, none, 0),
    ];
    for (_, singleton, truth) in singletons.into_iter().filter(|s| seen.has(s.0)) {
        let is = e.b.ins().icmp_imm_s(IntCC::Equal, p, singleton as i64);
        let hit = e.b.create_block();
        let next = e.b.create_block();
        e.b.ins().brif(is, hit, &[], next, &[]);
        e.b.switch_to_block(hit);
        let v = e.b.ins().iconst(types::I64, truth);
        e.b.ins().jump(join, &[BlockArg::Value(v)]);
        e.b.switch_to_block(next);
    }
    // Exact ints, lists, tuples, bytes (ob_size), dicts (ma_used) and strs (length) keep
    // the word that is 0 exactly when they are false at the same place, after the header.
    let sized = seen.has(TruthSeen::SIZED).then(|| {
        let sized = e.b.create_block();
        let ty = e.b.ins().load(e.ptr, mem(), p, 8);
        for t in sized_types() {
            let is = e.b.ins().icmp_imm_s(IntCC::Equal, ty, t as i64);
            let next = e.b.create_block();
            e.b.ins().brif(is, sized, &[], next, &[]);
            e.b.switch_to_block(next);
        }
        sized
    });
    if seen.has(TruthSeen::OTHER) {
        // Instances of Python classes and the rest: what the generic op calls, without
        // its dispatch (the `if w:` of an object, a class with `__len__`); out of line
        // unless it is all the site met.
        if seen != TruthSeen(TruthSeen::OTHER) {
            e.b.set_cold_block(e.b.current_block().expect("in a block"));
        }
        let r = e
            .call(
                ffi::PyObject_IsTrue as *const () as usize,
                &[e.ptr],
                Some(types::I32),
                &[p],
            )
            .expect("returns");
        let failed = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
        e.raise_if(pc, failed);
        let r = e.b.ins().uextend(types::I64, r);
        e.b.ins().jump(join, &[BlockArg::Value(r)]);
    } else {
        e.b.ins().jump(unseen, &[]);
    }
    if let Some(sized) = sized {
        e.b.switch_to_block(sized);
        let size = e.b.ins().load(types::I64, mem(), p, crate::cpy::SIZED_WORD);
        let nz = e.b.ins().icmp_imm_s(IntCC::NotEqual, size, 0);
        let nz = e.b.ins().uextend(types::I64, nz);
        e.b.ins().jump(join, &[BlockArg::Value(nz)]);
    }
    e.b.switch_to_block(join);
    e.b.block_params(join)[0]
}

/// The native template of Is (`a is b`, or `is not`): the two objects' addresses, with
/// numbers boxed in place first as tier 1 boxes them (one object per value, so identity
/// holds as in CPython) and bools as their singletons. Boxing out of memory takes the
/// generic op.
pub(crate) fn emit_is(e: &mut Emit, pc: usize, invert: bool) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let ab = e.operand_objects(pc);
    let (a, b) = (ab[0], ab[1]);
    let cc = if invert {
        IntCC::NotEqual
    } else {
        IntCC::Equal
    };
    let same = e.b.ins().icmp(cc, a, b);
    let v = e.b.ins().uextend(types::I64, same);
    e.set(inst.dst, tag::BOOL, v);
    Some("Is")
}

/// The native template of IsNone: an object register holding None's address; an
/// unboxed number or bool is never None (as tier 1 reads it, without boxing).
pub(crate) fn emit_is_none(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let r = e.c.linear.operands[inst.args as usize];
    let t = e.tag(r);
    let p = e.payload(r, e.ptr);
    let is_obj = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
    // SAFETY: taking the singleton's address reads nothing.
    let none = unsafe { ffi::Py_None() } as i64;
    let is_none = e.b.ins().icmp_imm_s(IntCC::Equal, p, none);
    let both = e.b.ins().band(is_obj, is_none);
    let v = e.b.ins().uextend(types::I64, both);
    e.set(inst.dst, tag::BOOL, v);
    Some("IsNone")
}

/// The native template of Contains (`item in container`, or `not in`): PySequence_Contains
/// called directly, on the operands as objects (numbers boxed in place first, as tier 1
/// boxes them); an exception it raises goes to the handler, as the generic op's would.
pub(crate) fn emit_contains(e: &mut Emit, pc: usize, invert: bool) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let ic = e.operand_objects(pc);
    let (item, container) = (ic[0], ic[1]);
    let r = e
        .call(
            ffi::PySequence_Contains as *const () as usize,
            &[e.ptr, e.ptr],
            Some(types::I32),
            &[container, item],
        )
        .expect("returns");
    let failed = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
    e.raise_if(pc, failed);
    let cc = if invert {
        IntCC::NotEqual
    } else {
        IntCC::Equal
    };
    let found = e.b.ins().icmp_imm_s(cc, r, 1);
    let v = e.b.ins().uextend(types::I64, found);
    e.set(inst.dst, tag::BOOL, v);
    Some("Contains")
}
