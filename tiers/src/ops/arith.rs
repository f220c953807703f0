//! Binary, in-place and unary operators, through CPython's number protocol (which gives
//! int overflow to big ints, float division semantics and the exact error messages).

use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::value::{tag, PyResult, Value};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Block, BlockArg, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;
use tiered_ir::{BinOp, UnaryOp};

/// The number protocol's function for a binary operator.
#[derive(Clone, Copy)]
enum NumberFn {
    Binary(unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject),
    /// `**`'s, whose third argument (the modulus) is None.
    Ternary(
        unsafe extern "C" fn(
            *mut ffi::PyObject,
            *mut ffi::PyObject,
            *mut ffi::PyObject,
        ) -> *mut ffi::PyObject,
    ),
}

/// What BINARY_OP calls for `op` (in-place forms try `__iop__` first).
fn number_fn(op: BinOp) -> NumberFn {
    use NumberFn::{Binary, Ternary};
    match op {
        BinOp::Add => Binary(ffi::PyNumber_Add),
        BinOp::And => Binary(ffi::PyNumber_And),
        BinOp::FloorDivide => Binary(ffi::PyNumber_FloorDivide),
        BinOp::Lshift => Binary(ffi::PyNumber_Lshift),
        BinOp::MatrixMultiply => Binary(ffi::PyNumber_MatrixMultiply),
        BinOp::Multiply => Binary(ffi::PyNumber_Multiply),
        BinOp::Remainder => Binary(ffi::PyNumber_Remainder),
        BinOp::Or => Binary(ffi::PyNumber_Or),
        BinOp::Power => Ternary(ffi::PyNumber_Power),
        BinOp::Rshift => Binary(ffi::PyNumber_Rshift),
        BinOp::Subtract => Binary(ffi::PyNumber_Subtract),
        BinOp::TrueDivide => Binary(ffi::PyNumber_TrueDivide),
        BinOp::Xor => Binary(ffi::PyNumber_Xor),
        BinOp::InplaceAdd => Binary(ffi::PyNumber_InPlaceAdd),
        BinOp::InplaceAnd => Binary(ffi::PyNumber_InPlaceAnd),
        BinOp::InplaceFloorDivide => Binary(ffi::PyNumber_InPlaceFloorDivide),
        BinOp::InplaceLshift => Binary(ffi::PyNumber_InPlaceLshift),
        BinOp::InplaceMatrixMultiply => Binary(ffi::PyNumber_InPlaceMatrixMultiply),
        BinOp::InplaceMultiply => Binary(ffi::PyNumber_InPlaceMultiply),
        BinOp::InplaceRemainder => Binary(ffi::PyNumber_InPlaceRemainder),
        BinOp::InplaceOr => Binary(ffi::PyNumber_InPlaceOr),
        BinOp::InplacePower => Ternary(ffi::PyNumber_InPlacePower),
        BinOp::InplaceRshift => Binary(ffi::PyNumber_InPlaceRshift),
        BinOp::InplaceSubtract => Binary(ffi::PyNumber_InPlaceSubtract),
        BinOp::InplaceTrueDivide => Binary(ffi::PyNumber_InPlaceTrueDivide),
        BinOp::InplaceXor => Binary(ffi::PyNumber_InPlaceXor),
    }
}

/// Binary: `a op b` (in-place forms try `__iop__` first, as BINARY_OP does).
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn binary(op: BinOp, a: &Value, b: &Value) -> PyResult<Value> {
    let (x, y) = (a.as_ptr(), b.as_ptr());
    let r = match number_fn(op) {
        NumberFn::Binary(f) => f(x, y),
        NumberFn::Ternary(f) => f(x, y, ffi::Py_None()),
    };
    Value::from_owned(r)
}

/// Native code for a Binary site that settled generic (`QuickCell::settled_generic`:
/// lists, strs, big ints, user types): the number protocol's function called directly,
/// as `binary` calls it. A `+`/`+=` whose left operand is a last use and a str held by
/// nothing else, with a str, appends to it in place (`str_append`, as tier 1's
/// `str_append_in_place`), so building a string stays linear. (Every str on the left took
/// the tier-1 helper before: xml's `"</" + tag + ">"` 570K times a run, constants too.)
fn emit_binary_generic(e: &mut Emit, pc: usize, op: BinOp) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let left = e.c.linear.operands[inst.args as usize];
    let appends =
        matches!(op, BinOp::Add | BinOp::InplaceAdd) && e.c.linear.last_use[inst.args as usize];
    if !e.c.quick[pc].settled_generic() {
        return None;
    }
    let objs = e.operand_objects(pc);
    let done = e.b.create_block();
    if appends {
        let str_type = std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as i64;
        let ty = e.b.ins().load(e.ptr, mem(), objs[0], 8);
        let is_str = e.b.ins().icmp_imm_s(IntCC::Equal, ty, str_type);
        let refcnt = e.b.ins().load(types::I64, mem(), objs[0], 0);
        let alone = e.b.ins().icmp_imm_s(IntCC::Equal, refcnt, 1);
        let rty = e.b.ins().load(e.ptr, mem(), objs[1], 8);
        let right_str = e.b.ins().icmp_imm_s(IntCC::Equal, rty, str_type);
        // (Not `s + s` from one register: the append would read what it resizes.)
        let distinct = e.b.ins().icmp(IntCC::NotEqual, objs[0], objs[1]);
        let both = e.b.ins().band(is_str, right_str);
        let both = e.b.ins().band(both, alone);
        let both = e.b.ins().band(both, distinct);
        let append = e.b.create_block();
        let generic = e.b.create_block();
        e.b.ins().brif(both, append, &[], generic, &[]);
        e.b.switch_to_block(append);
        // The register's reference goes to the append.
        e.clear(left);
        e.call_for_result(pc, str_append as *const () as usize, &objs);
        e.b.ins().jump(done, &[]);
        e.b.switch_to_block(generic);
    }
    match number_fn(op) {
        NumberFn::Binary(f) => e.call_for_result(pc, f as usize, &objs),
        NumberFn::Ternary(f) => {
            // SAFETY: None's address, a static of libpython's, fixed for the process.
            let none = e.b.ins().iconst(e.ptr, unsafe { ffi::Py_None() } as i64);
            e.call_for_result(pc, f as usize, &[objs[0], objs[1], none]);
        }
    }
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(done);
    Some(BINARY_TEMPLATES[3])
}

/// `left + right` for a str `left` held by nothing else (its reference is taken) and a
/// str `right`: appended in place (`PyUnicode_Append`, which resizes it when it can).
/// Returns the result, or NULL with an exception set.
///
/// # Safety
/// GIL held; `left` an exact str whose only reference the caller gives up, `right` a str.
pub unsafe extern "C" fn str_append(
    left: *mut ffi::PyObject,
    right: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut p = left;
    ffi::PyUnicode_Append(&mut p, right);
    p
}

/// `s += t` on exact strs whose left operand is a last use held by nothing else (and is
/// not the right operand too): appends in place (resizing the string), as CPython's
/// BINARY_OP_INPLACE_ADD_UNICODE does, so building a string in a loop stays linear.
/// `None` when the conditions do not hold.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn str_append_in_place(
    op: BinOp,
    left: &mut Value,
    right: &Value,
) -> Option<PyResult<Value>> {
    if !matches!(op, BinOp::InplaceAdd | BinOp::Add) {
        return None;
    }
    let (l, r) = (left.as_ptr(), right.as_ptr());
    if l.is_null()
        || r.is_null()
        || l == r
        || ffi::PyUnicode_CheckExact(l) == 0
        || ffi::PyUnicode_CheckExact(r) == 0
        || ffi::Py_REFCNT(l) != 1
    {
        return None;
    }
    // The register's reference is the only one: hand it to the append.
    Some(Value::from_owned(str_append(
        std::mem::take(left).into_ptr(),
        r,
    )))
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

/// The native template of Unary on unboxed numbers: `-x`, `+x`, `~x` of an unboxed int
/// (`-` of the smallest i64 overflows into the generic op), `-x` and `+x` of an unboxed
/// float, `not x` of whatever Truth's template reads, and `-x`, `+x`, `~x` of an object
/// (its number slot, through `PyNumber_Negative`...). Anything else (`~` of a float, a
/// bool) takes the generic op: an expected case, not a deopt.
pub(crate) fn emit_unary(e: &mut Emit, pc: usize, op: UnaryOp) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let a = e.c.linear.operands[inst.args as usize];
    if let UnaryOp::Not = op {
        // Every kind (Unary keeps no feedback): only NULL takes the generic path.
        let all = super::compare::TruthSeen::ALL;
        let slow = e.slow_block();
        let t = super::compare::emit_truth_value(e, pc, a, all, slow);
        let v = e.b.ins().bxor_imm_u(t, 1);
        e.set(inst.dst, tag::BOOL, v);
        return Some("UnaryUnboxed");
    }
    let slow = e.slow_block();
    let t = e.tag(a);
    let (int_b, not_int, float_b, done) = (
        e.b.create_block(),
        e.b.create_block(),
        e.b.create_block(),
        e.b.create_block(),
    );
    let is_int = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::INT as i64);
    e.b.ins().brif(is_int, int_b, &[], not_int, &[]);
    e.b.switch_to_block(int_b);
    let x = e.payload(a, types::I64);
    let r = match op {
        UnaryOp::Negative => {
            let min = e.b.ins().icmp_imm_s(IntCC::Equal, x, i64::MIN);
            e.fail_if(min, slow);
            e.b.ins().ineg(x)
        }
        UnaryOp::Positive => x,
        UnaryOp::Invert => e.b.ins().bnot(x),
        UnaryOp::Not => unreachable!("handled above"),
    };
    e.set(inst.dst, tag::INT, r);
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(not_int);
    let (not_float, obj_b) = (e.b.create_block(), e.b.create_block());
    let is_float = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::FLOAT as i64);
    e.b.ins().brif(is_float, float_b, &[], not_float, &[]);
    // An object: the number protocol's own function, called directly (the generic op's
    // call without the tier-1 helper's dispatch).
    e.b.switch_to_block(not_float);
    let is_obj = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
    e.b.ins().brif(is_obj, obj_b, &[], slow, &[]);
    e.b.switch_to_block(obj_b);
    let f = match op {
        UnaryOp::Negative => ffi::PyNumber_Negative as *const () as usize,
        UnaryOp::Positive => ffi::PyNumber_Positive as *const () as usize,
        UnaryOp::Invert => ffi::PyNumber_Invert as *const () as usize,
        UnaryOp::Not => unreachable!("handled above"),
    };
    let x = e.payload(a, e.ptr);
    e.call_for_result(pc, f, &[x]);
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(float_b);
    let x = e.payload(a, types::F64);
    let r = match op {
        UnaryOp::Negative => e.b.ins().fneg(x),
        UnaryOp::Positive => x,
        // TypeError, from the generic op.
        UnaryOp::Invert => {
            e.b.ins().jump(slow, &[]);
            e.b.switch_to_block(done);
            return Some("UnaryUnboxed");
        }
        UnaryOp::Not => unreachable!("handled above"),
    };
    e.set(inst.dst, tag::FLOAT, r);
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(done);
    Some("UnaryUnboxed")
}

/// Quickened forms of Binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryVariant {
    /// Both operands exact ints that fit in i64; the result is an unboxed int (or float for
    /// `/`). Overflow and errors go to the generic op.
    Int,
    /// At least one exact float, the other a float or an i64-sized int; unboxed float result.
    Float,
    /// Ints and floats mixed at one site (+ - * /, e.g. vectors whose components are
    /// either): two ints as `Int`, anything else as `Float`. A site quickened as either
    /// widens to this when it meets the other (`widen_binary`) instead of deopting until
    /// it goes generic, as CPython's own BINARY_OP_*_INT/FLOAT sites do.
    Number,
}

/// Names of Binary's native templates, for coverage: its variants', then a settled
/// generic site's (`emit_binary_generic`).
pub const BINARY_TEMPLATES: &[&str] =
    &["BinaryInt", "BinaryFloat", "BinaryNumber", "BinaryGeneric"];
/// Names of Binary's variants, for coverage.
pub const BINARY_VARIANTS: &[&str] = BINARY_TEMPLATES.split_at(3).0;

impl BinaryVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryVariant::Int => BINARY_VARIANTS[0],
            BinaryVariant::Float => BINARY_VARIANTS[1],
            BinaryVariant::Number => BINARY_VARIANTS[2],
        }
    }
}

/// 3.11's PyLongObject head: 30-bit digits after `ob_size` (whose sign is the number's).
#[repr(C)]
struct LongHead {
    ob_refcnt: ffi::Py_ssize_t,
    ob_type: *mut ffi::PyTypeObject,
    ob_size: ffi::Py_ssize_t,
    ob_digit: [u32; 3],
}

/// The value of an exact int that fits in i64 (unboxed, or a PyLong of up to 3 digits).
#[inline]
pub fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Obj(p) => {
            let p = p.as_ptr();
            // SAFETY: p is a live object (owned by the register); an exact int has
            // 3.11's PyLongObject layout, and we read only the digits `ob_size` says exist.
            unsafe {
                if ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyLong_Type) {
                    return None;
                }
                let h = p as *const LongHead;
                let size = (*h).ob_size;
                let d = std::ptr::addr_of!((*h).ob_digit) as *const u32;
                let mag: i128 = match size.unsigned_abs() {
                    0 => 0,
                    1 => *d as i128,
                    2 => (*d as i128) | ((*d.add(1) as i128) << 30),
                    3 => (*d as i128) | ((*d.add(1) as i128) << 30) | ((*d.add(2) as i128) << 60),
                    _ => return None,
                };
                i64::try_from(if size < 0 { -mag } else { mag }).ok()
            }
        }
        _ => None,
    }
}

/// The value of an exact float (unboxed or a PyFloat).
#[inline]
pub fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Obj(p) => {
            let p = p.as_ptr();
            // SAFETY: p is live; an exact float's value is read with the C-API macro.
            unsafe {
                if ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
                    return None;
                }
                Some(ffi::PyFloat_AS_DOUBLE(p))
            }
        }
        _ => None,
    }
}

/// An operand of a float operation: a float, or an int converted as CPython converts it
/// (i64 to f64 rounds half-even, exactly as PyLong_AsDouble does for such ints).
#[inline]
fn float_operand(v: &Value) -> Option<f64> {
    float_of(v).or_else(|| int_of(v).map(|i| i as f64))
}

/// Which variant fits these operands, if any.
#[inline]
pub fn observe_binary(op: BinOp, a: &Value, b: &Value) -> Option<BinaryVariant> {
    let base = op.base();
    if int_of(a).is_some() && int_of(b).is_some() && int_op_supported(base) {
        return Some(BinaryVariant::Int);
    }
    let is_float = |v: &Value| float_of(v).is_some();
    if (is_float(a) || is_float(b))
        && float_operand(a).is_some()
        && float_operand(b).is_some()
        && mixes(base)
    {
        return Some(BinaryVariant::Float);
    }
    None
}

/// The operators `BinaryVariant::Number` takes.
fn mixes(op: BinOp) -> bool {
    matches!(
        op.base(),
        BinOp::Add | BinOp::Subtract | BinOp::Multiply | BinOp::TrueDivide
    )
}

/// The variant a site quickened as `v` widens to when its guard failed on these
/// operands: an int site meeting a float or a float site meeting two ints becomes
/// `Number` (for the operators both take); anything else is a plain miss.
pub fn widen_binary(op: BinOp, v: BinaryVariant, a: &Value, b: &Value) -> Option<BinaryVariant> {
    let other = match v {
        BinaryVariant::Int => BinaryVariant::Float,
        BinaryVariant::Float => BinaryVariant::Int,
        BinaryVariant::Number => return None,
    };
    (mixes(op) && observe_binary(op, a, b)? == other).then_some(BinaryVariant::Number)
}

fn int_op_supported(op: BinOp) -> bool {
    !matches!(op, BinOp::Power | BinOp::MatrixMultiply)
}

/// Python's floor division and modulo on i64 (`None` for b == 0 or i64::MIN // -1).
#[inline]
fn floor_divmod(a: i64, b: i64) -> Option<(i64, i64)> {
    if b == 0 || (a == i64::MIN && b == -1) {
        return None;
    }
    let (q, r) = (a / b, a % b);
    if r != 0 && ((r < 0) != (b < 0)) {
        Some((q - 1, r + b))
    } else {
        Some((q, r))
    }
}

/// The quickened Binary: `None` when the guard fails or the case needs the generic op
/// (overflow, division by zero, negative shift...), which then computes it exactly.
#[inline]
pub fn binary_quick(op: BinOp, v: BinaryVariant, a: &Value, b: &Value) -> Option<Value> {
    match v {
        BinaryVariant::Int => {
            let (x, y) = (int_of(a)?, int_of(b)?);
            let r = match op.base() {
                BinOp::Add => x.checked_add(y)?,
                BinOp::Subtract => x.checked_sub(y)?,
                BinOp::Multiply => x.checked_mul(y)?,
                BinOp::FloorDivide => floor_divmod(x, y)?.0,
                BinOp::Remainder => floor_divmod(x, y)?.1,
                BinOp::And => x & y,
                BinOp::Or => x | y,
                BinOp::Xor => x ^ y,
                BinOp::Lshift => {
                    if !(0..64).contains(&y) {
                        return None;
                    }
                    let r = x << y;
                    if r >> y != x {
                        return None;
                    }
                    r
                }
                BinOp::Rshift => {
                    if y < 0 {
                        return None;
                    }
                    x >> y.min(63)
                }
                BinOp::TrueDivide => {
                    // Exact below 2**53, so one IEEE division is correctly rounded, as
                    // CPython's long_true_divide is.
                    const EXACT: u64 = 1 << 53;
                    if y == 0 || x.unsigned_abs() > EXACT || y.unsigned_abs() > EXACT {
                        return None;
                    }
                    return Some(Value::Float(x as f64 / y as f64));
                }
                _ => return None,
            };
            Some(Value::Int(r))
        }
        BinaryVariant::Number => {
            if !mixes(op) {
                return None;
            }
            // Two ints as Int (whose overflow the Float path refuses too), else as Float.
            binary_quick(op, BinaryVariant::Int, a, b)
                .or_else(|| binary_quick(op, BinaryVariant::Float, a, b))
        }
        BinaryVariant::Float => {
            if float_of(a).is_none() && float_of(b).is_none() {
                return None;
            }
            let (x, y) = (float_operand(a)?, float_operand(b)?);
            Some(Value::Float(match op.base() {
                BinOp::Add => x + y,
                BinOp::Subtract => x - y,
                BinOp::Multiply => x * y,
                BinOp::TrueDivide => {
                    if y == 0.0 {
                        return None;
                    }
                    x / y
                }
                _ => return None,
            }))
        }
    }
}

/// Native code for an operand read as i64: an unboxed int, or an exact PyLong below 2^63
/// in magnitude (up to three digits); anything else branches to `fail`.
pub(crate) fn emit_int_of(e: &mut Emit, r: u32, fail: Block) -> CValue {
    if let Some(k) = e.const_int(r) {
        return e.b.ins().iconst(types::I64, k);
    }
    let t = e.tag(r);
    let join = e.b.create_block();
    e.b.append_block_param(join, types::I64);
    let unboxed = e.b.create_block();
    let boxed = e.b.create_block();
    let is_int = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::INT as i64);
    e.b.ins().brif(is_int, unboxed, &[], boxed, &[]);
    e.b.switch_to_block(unboxed);
    let v = e.payload(r, types::I64);
    e.b.ins().jump(join, &[BlockArg::Value(v)]);
    e.b.switch_to_block(boxed);
    e.guard_eq(t, tag::OBJ as i64, fail);
    let p = e.payload(r, e.ptr);
    let ty = e.b.ins().load(e.ptr, mem(), p, 8);
    e.guard_eq(ty, std::ptr::addr_of_mut!(ffi::PyLong_Type) as i64, fail);
    // 3.11 PyLongObject: ob_size at 16 (sign = the number's), 30-bit digits from 24.
    let size = e.b.ins().load(types::I64, mem(), p, 16);
    let biased = e.b.ins().iadd_imm_s(size, 1);
    let big = e.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, biased, 2);
    let one = e.b.create_block();
    let mark = e.cold_mark();
    let several = e.b.create_block();
    e.b.ins().brif(big, several, &[], one, &[]);
    e.b.switch_to_block(one);
    let digit = |e: &mut Emit, i: i32| {
        let d = e.b.ins().load(types::I32, mem(), p, 24 + 4 * i);
        e.b.ins().uextend(types::I64, d)
    };
    let d = digit(e, 0);
    // size is -1, 0 or 1: the value is digit * size.
    let v = e.b.ins().imul(d, size);
    e.b.ins().jump(join, &[BlockArg::Value(v)]);
    // Two or three digits (as `int_of` reads them: tier 1 takes those too, so a site that
    // sees them must not deopt here), below 2^63 in magnitude.
    e.b.switch_to_block(several);
    let n = e.b.ins().iabs(size);
    let too_big = e.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, n, 3);
    e.fail_if(too_big, fail);
    let lo = digit(e, 0);
    let hi = digit(e, 1);
    let hi = e.b.ins().ishl_imm_u(hi, 30);
    let two = e.b.ins().bor(lo, hi);
    let three = e.b.create_block();
    let signed = e.b.create_block();
    e.b.append_block_param(signed, types::I64);
    let is_three = e.b.ins().icmp_imm_s(IntCC::Equal, n, 3);
    e.b.ins()
        .brif(is_three, three, &[], signed, &[BlockArg::Value(two)]);
    e.b.switch_to_block(three);
    let top = digit(e, 2);
    let over =
        e.b.ins()
            .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, top, 8);
    e.fail_if(over, fail);
    let top = e.b.ins().ishl_imm_u(top, 60);
    let mag = e.b.ins().bor(two, top);
    e.b.ins().jump(signed, &[BlockArg::Value(mag)]);
    e.b.switch_to_block(signed);
    let mag = e.b.block_params(signed)[0];
    let neg = e.b.ins().ineg(mag);
    let negative = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, size, 0);
    let v = e.b.ins().select(negative, neg, mag);
    e.b.ins().jump(join, &[BlockArg::Value(v)]);
    // Ints of two or three digits (2^30 and up) are rare: out of the hot path's way.
    e.cold_since(mark);
    e.b.switch_to_block(join);
    e.b.block_params(join)[0]
}

/// Native code for a float operand: (value, 1 if it was a float rather than an int);
/// branches to `fail` for anything but floats and i64 ints.
pub(crate) fn emit_float_operand(e: &mut Emit, r: u32, fail: Block) -> (CValue, CValue) {
    let t = e.tag(r);
    let join = e.b.create_block();
    e.b.append_block_param(join, types::F64);
    e.b.append_block_param(join, types::I64);
    let unboxed_f = e.b.create_block();
    let other = e.b.create_block();
    let is_f = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::FLOAT as i64);
    e.b.ins().brif(is_f, unboxed_f, &[], other, &[]);
    e.b.switch_to_block(unboxed_f);
    let x = e.payload(r, types::F64);
    let one = e.b.ins().iconst(types::I64, 1);
    e.b.ins()
        .jump(join, &[BlockArg::Value(x), BlockArg::Value(one)]);
    e.b.switch_to_block(other);
    let is_obj = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
    let obj = e.b.create_block();
    let int_like = e.b.create_block();
    e.b.ins().brif(is_obj, obj, &[], int_like, &[]);
    e.b.switch_to_block(obj);
    let p = e.payload(r, e.ptr);
    let ty = e.b.ins().load(e.ptr, mem(), p, 8);
    let is_pyfloat = e.b.ins().icmp_imm_s(
        IntCC::Equal,
        ty,
        std::ptr::addr_of_mut!(ffi::PyFloat_Type) as i64,
    );
    let pyfloat = e.b.create_block();
    e.b.ins().brif(is_pyfloat, pyfloat, &[], int_like, &[]);
    e.b.switch_to_block(pyfloat);
    // PyFloatObject: ob_fval at 16.
    let x = e.b.ins().load(types::F64, mem(), p, 16);
    let one = e.b.ins().iconst(types::I64, 1);
    e.b.ins()
        .jump(join, &[BlockArg::Value(x), BlockArg::Value(one)]);
    e.b.set_cold_block(int_like);
    let mark = e.cold_mark();
    e.b.switch_to_block(int_like);
    let i = emit_int_of(e, r, fail);
    // i64 to f64 rounds to nearest-even, as PyLong_AsDouble does.
    let x = e.b.ins().fcvt_from_sint(types::F64, i);
    let zero = e.b.ins().iconst(types::I64, 0);
    e.b.ins()
        .jump(join, &[BlockArg::Value(x), BlockArg::Value(zero)]);
    // An int where a float is expected (`2 * x`) is the rarer case, and reading one takes
    // most of this code: out of the hot path's way (raytrace's float operands: about 120
    // of the 160 instructions a BinaryFloat laid out inline).
    e.cold_since(mark);
    e.b.switch_to_block(join);
    let ps = e.b.block_params(join);
    (ps[0], ps[1])
}

/// The native template of a quickened Binary (int: + - * // % & | ^ with overflow checks;
/// float: + - * /), or `None` to use the tier-1 helper.
pub(crate) fn emit_binary(
    e: &mut Emit,
    pc: usize,
    op: BinOp,
    q: Quick,
    fail: Block,
) -> Option<&'static str> {
    let Quick::Binary(v) = q else {
        return emit_binary_generic(e, pc, op);
    };
    let inst = e.c.linear.insts[pc];
    let (a, b) = (
        e.c.linear.operands[inst.args as usize],
        e.c.linear.operands[inst.args as usize + 1],
    );
    let base = op.base();
    let int_ops = matches!(
        base,
        BinOp::Add
            | BinOp::Subtract
            | BinOp::Multiply
            | BinOp::FloorDivide
            | BinOp::Remainder
            | BinOp::And
            | BinOp::Or
            | BinOp::Xor
    );
    let float_ops = matches!(
        base,
        BinOp::Add | BinOp::Subtract | BinOp::Multiply | BinOp::TrueDivide
    );
    match v {
        BinaryVariant::Int => {
            if !int_ops {
                return None;
            }
            let x = emit_int_of(e, a, fail);
            let y = emit_int_of(e, b, fail);
            let r = emit_int_op(e, base, x, y);
            e.set(inst.dst, tag::INT, r);
        }
        BinaryVariant::Float => {
            if !float_ops {
                return None;
            }
            let r = emit_float_op(e, base, (a, b), fail);
            // Stored as f64: a cached register keeps it in an XMM register too.
            e.set(inst.dst, tag::FLOAT, r);
        }
        BinaryVariant::Number => {
            // Two ints' `/` is a float operation tier 1 does (`binary_quick`).
            if !(int_ops && float_ops) {
                return None;
            }
            let floats = e.b.create_block();
            let done = e.b.create_block();
            let x = emit_int_of(e, a, floats);
            let y = emit_int_of(e, b, floats);
            let r = emit_int_op(e, base, x, y);
            e.set(inst.dst, tag::INT, r);
            e.b.ins().jump(done, &[]);
            e.b.switch_to_block(floats);
            let r = emit_float_op(e, base, (a, b), fail);
            e.set(inst.dst, tag::FLOAT, r);
            e.b.ins().jump(done, &[]);
            e.b.switch_to_block(done);
        }
    }
    Some(v.name())
}

/// `x op y` on i64 operands for + - * // % & | ^; overflow takes the op's generic path
/// (an expected case, not a failed guard), which continues with CPython's big ints, as
/// does a division by zero, which raises there.
fn emit_int_op(e: &mut Emit, base: BinOp, x: CValue, y: CValue) -> CValue {
    match base {
        BinOp::FloorDivide | BinOp::Remainder => {
            // Zero and i64::MIN // -1 (a big int) first: the machine division traps on
            // both (as `floor_divmod` refuses them).
            let slow = e.slow_block();
            let zero = e.b.ins().icmp_imm_s(IntCC::Equal, y, 0);
            e.fail_if(zero, slow);
            let minus_one = e.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
            let min = e.b.ins().icmp_imm_s(IntCC::Equal, x, i64::MIN);
            let overflows = e.b.ins().band(minus_one, min);
            e.fail_if(overflows, slow);
            let (q, r) = (e.b.ins().sdiv(x, y), e.b.ins().srem(x, y));
            // Python's rounds toward minus infinity: a remainder whose sign is not the
            // divisor's moves the quotient down one and the remainder up by the divisor.
            let signs = e.b.ins().bxor(r, y);
            let differ = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, signs, 0);
            let nonzero = e.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
            let adjust = e.b.ins().band(differ, nonzero);
            match base {
                BinOp::FloorDivide => {
                    let down = e.b.ins().uextend(types::I64, adjust);
                    e.b.ins().isub(q, down)
                }
                _ => {
                    let up = e.b.ins().iadd(r, y);
                    e.b.ins().select(adjust, up, r)
                }
            }
        }
        BinOp::Add | BinOp::Subtract | BinOp::Multiply => {
            let (r, of) = match base {
                BinOp::Add => e.b.ins().sadd_overflow(x, y),
                BinOp::Subtract => e.b.ins().ssub_overflow(x, y),
                _ => e.b.ins().smul_overflow(x, y),
            };
            let slow = e.slow_block();
            e.fail_if(of, slow);
            r
        }
        BinOp::And => e.b.ins().band(x, y),
        BinOp::Or => e.b.ins().bor(x, y),
        _ => e.b.ins().bxor(x, y),
    }
}

/// `a op b` as floats for + - * / when at least one is a float and the other a float or
/// an i64-sized int; anything else (two ints, other objects, division by zero) branches
/// to `fail`.
fn emit_float_op(e: &mut Emit, base: BinOp, (a, b): (u32, u32), fail: Block) -> CValue {
    let (x, fx) = emit_float_operand(e, a, fail);
    let (y, fy) = emit_float_operand(e, b, fail);
    // int op int is not a float operation.
    let any = e.b.ins().bor(fx, fy);
    let none = e.b.ins().icmp_imm_s(IntCC::Equal, any, 0);
    e.fail_if(none, fail);
    match base {
        BinOp::Add => e.b.ins().fadd(x, y),
        BinOp::Subtract => e.b.ins().fsub(x, y),
        BinOp::Multiply => e.b.ins().fmul(x, y),
        _ => {
            // Division by zero raises ZeroDivisionError on the slow path.
            let zero = e.b.ins().f64const(0.0);
            let is_zero = e.b.ins().fcmp(FloatCC::Equal, y, zero);
            e.fail_if(is_zero, fail);
            e.b.ins().fdiv(x, y)
        }
    }
}
