//! `yield from` and its steps (GET_YIELD_FROM_ITER, SEND), exactly as 3.11's eval loop
//! runs them. Suspending and resuming the generator itself is `crate::generator`'s.

use crate::cpy::{frame, gen as g};
use crate::generator::Thread;
use crate::lower::NO_VALUE;
use crate::native::emit::{mem, Emit};
use crate::value::{tag, PyResult, Raised, Value};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;

extern "C" {
    /// `next(gen)`/`gen.send(v)` without the method call (3.10+).
    fn PyIter_Send(
        iter: *mut ffi::PyObject,
        arg: *mut ffi::PyObject,
        presult: *mut *mut ffi::PyObject,
    ) -> std::os::raw::c_int;
    /// Raises `exception` from the one being raised (its `__cause__` and `__context__`).
    fn _PyErr_FormatFromCause(
        exception: *mut ffi::PyObject,
        format: *const std::os::raw::c_char,
        ...
    ) -> *mut ffi::PyObject;
    /// Takes a StopIteration's value (None if it has none); -1 for any other exception.
    fn _PyGen_FetchStopIterationValue(pvalue: *mut *mut ffi::PyObject) -> std::os::raw::c_int;
}

/// GetYieldFromIter: `iter(v)` unless `v` is a generator, or a coroutine in a coroutine
/// (`coroutine`: the code is one, or a generator-based one); a coroutine in a plain
/// generator is a TypeError.
///
/// # Safety
/// GIL held.
pub unsafe fn get_yield_from_iter(coroutine: bool, v: &Value) -> PyResult<Value> {
    let o = v.as_ptr();
    let t = ffi::Py_TYPE(o);
    if t == std::ptr::addr_of_mut!(ffi::PyCoro_Type) || crate::generator::is_our_coroutine(o) {
        if !coroutine {
            return Err(super::raise(
                ffi::PyExc_TypeError,
                "cannot 'yield from' a coroutine object in a non-coroutine generator",
            ));
        }
        return Ok(v.clone());
    }
    if t == std::ptr::addr_of_mut!(ffi::PyGen_Type) {
        return Ok(v.clone());
    }
    Value::from_owned(ffi::PyObject_GetIter(o))
}

/// GetAwaitable: the iterator `await v` drives (CPython's `_PyCoro_GetAwaitableIter`, not
/// exported): a coroutine (CPython's or ours) itself, else what `__await__` returns, which
/// must be an iterator and not a coroutine. A coroutine already being awaited (suspended
/// in an `await` of its own) is a RuntimeError. `kind` 1 and 2 are `async with`'s
/// `__aenter__` and `__aexit__` results, named in the error for a non-awaitable.
///
/// # Safety
/// GIL held.
pub unsafe fn get_awaitable(kind: u32, v: &Value) -> PyResult<Value> {
    let o = v.as_ptr();
    let iter = match awaitable_iter(o) {
        Ok(i) => i,
        Err(Raised) => {
            let t = ffi::Py_TYPE(o);
            let no_await = (*t).tp_as_async.is_null() || (*(*t).tp_as_async).am_await.is_none();
            if no_await && (kind == 1 || kind == 2) {
                let which = if kind == 1 { "__aenter__" } else { "__aexit__" };
                return Err(super::raise(
                    ffi::PyExc_TypeError,
                    &format!(
                        "'async with' received an object from {which} that does not implement __await__: {}",
                        super::type_name(o)
                    ),
                ));
            }
            return Err(Raised);
        }
    };
    // (CPython checks coroutines only, not generator-based ones.)
    let i = iter.as_ptr();
    let coroutine = ffi::Py_TYPE(i) == std::ptr::addr_of_mut!(ffi::PyCoro_Type)
        || crate::generator::is_our_coroutine(i);
    if coroutine && crate::generator::awaiting(i) {
        return Err(super::raise(
            ffi::PyExc_RuntimeError,
            "coroutine is being awaited already",
        ));
    }
    Ok(iter)
}

/// GetAiter: `async for`'s `v.__aiter__()`, which must have `__anext__`.
///
/// # Safety
/// GIL held.
pub unsafe fn get_aiter(v: &Value) -> PyResult<Value> {
    let o = v.as_ptr();
    let Some(aiter) = async_slot(o, |a| a.am_aiter) else {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "'async for' requires an object with __aiter__ method, got {}",
                super::type_name(o)
            ),
        ));
    };
    let it = Value::from_owned(aiter(o))?;
    if async_slot(it.as_ptr(), |a| a.am_anext).is_none() {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "'async for' received an object from __aiter__ that does not implement __anext__: {}",
                super::type_name(it.as_ptr())
            ),
        ));
    }
    Ok(it)
}

/// GetAnext: the awaitable of `async for`'s next step: `it.__anext__()` (an async
/// generator's as it is, anything else's made awaitable).
///
/// # Safety
/// GIL held.
pub unsafe fn get_anext(it: &Value) -> PyResult<Value> {
    let o = it.as_ptr();
    let Some(anext) = async_slot(o, |a| a.am_anext) else {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "'async for' requires an iterator with __anext__ method, got {}",
                super::type_name(o)
            ),
        ));
    };
    let next = Value::from_owned(anext(o))?;
    if ffi::Py_TYPE(o) == std::ptr::addr_of_mut!(ffi::PyAsyncGen_Type)
        || crate::generator::is_our_async_generator(o)
    {
        return Ok(next);
    }
    match awaitable_iter(next.as_ptr()) {
        Ok(a) => Ok(a),
        Err(Raised) => {
            _PyErr_FormatFromCause(
                ffi::PyExc_TypeError,
                c"'async for' received an invalid object from __anext__: %.100s".as_ptr(),
                (*ffi::Py_TYPE(next.as_ptr())).tp_name,
            );
            Err(Raised)
        }
    }
}

/// AsyncGenWrap: `v` wrapped as an async generator's `yield` hands it to the awaitable
/// driving it.
///
/// # Safety
/// GIL held.
pub unsafe fn async_gen_wrap(v: &Value) -> PyResult<Value> {
    Value::from_owned(g::wrap_value(v.as_ptr()))
}

/// EndAsyncFor: whether `exc` (the exception that left `async for`'s step) ends the loop.
///
/// # Safety
/// GIL held.
pub unsafe fn ends_async_for(exc: &Value) -> bool {
    ffi::PyErr_GivenExceptionMatches(exc.as_ptr(), ffi::PyExc_StopAsyncIteration) != 0
}

/// The async slot `pick` chooses of `o`'s type, if it has one.
unsafe fn async_slot(
    o: *mut ffi::PyObject,
    pick: impl Fn(&ffi::PyAsyncMethods) -> Option<ffi::unaryfunc>,
) -> Option<ffi::unaryfunc> {
    let a = (*ffi::Py_TYPE(o)).tp_as_async;
    if a.is_null() {
        return None;
    }
    pick(&*a)
}

/// Whether `o` is a coroutine (CPython's or ours), or a generator-based one.
unsafe fn is_coroutine(o: *mut ffi::PyObject) -> bool {
    let t = ffi::Py_TYPE(o);
    t == std::ptr::addr_of_mut!(ffi::PyCoro_Type)
        || crate::generator::is_our_coroutine(o)
        || crate::generator::is_our_iterable_coroutine(o)
        || (t == std::ptr::addr_of_mut!(ffi::PyGen_Type)
            && frame::code_flags(g::head(o).gi_code) & ITERABLE_COROUTINE != 0)
}

/// `CO_ITERABLE_COROUTINE`.
const ITERABLE_COROUTINE: u32 = 0x100;

unsafe fn awaitable_iter(o: *mut ffi::PyObject) -> PyResult<Value> {
    if is_coroutine(o) {
        return Ok(Value::from_borrowed(o));
    }
    let t = ffi::Py_TYPE(o);
    let getter = if (*t).tp_as_async.is_null() {
        None
    } else {
        (*(*t).tp_as_async).am_await
    };
    let Some(getter) = getter else {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "object {} can't be used in 'await' expression",
                super::type_name(o)
            ),
        ));
    };
    let res = Value::from_owned(getter(o))?;
    let r = res.as_ptr();
    if is_coroutine(r) {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            "__await__() returned a coroutine",
        ));
    }
    if ffi::PyIter_Check(r) == 0 {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            &format!(
                "__await__() returned non-iterator of type '{}'",
                super::type_name(r)
            ),
        ));
    }
    Ok(res)
}

/// Send: one step of `yield from`: the receiver's next value and false, or its return
/// value and true once it finished (`send_raw`).
///
/// # Safety
/// GIL held.
#[inline]
pub(crate) unsafe fn send(th: Thread, receiver: &Value, v: &Value) -> PyResult<(Value, bool)> {
    let mut out = std::ptr::null_mut();
    match send_raw(th, receiver.as_ptr(), v.as_ptr(), &mut out) {
        g::PYGEN_RETURN => Ok((Value::from_owned(out)?, true)),
        g::PYGEN_NEXT => Ok((Value::from_owned(out)?, false)),
        _ => Err(Raised),
    }
}

/// One step of `yield from` on `r` with `sent` sent in, on thread `th` (the running
/// activation's): PYGEN_NEXT with what it yielded
/// in `*out`, PYGEN_RETURN with its return value there, or PYGEN_ERROR with an exception
/// set. A generator of ours is stepped directly (PyIter_Send would find the same slot).
/// With a trace function set, 3.11 calls `__next__` or `send` instead of the send slot
/// (so the tracer sees the StopIteration).
///
/// # Safety
/// GIL held; `r` and `sent` live objects.
#[inline(always)]
pub(crate) unsafe fn send_raw(
    th: Thread,
    r: *mut ffi::PyObject,
    sent: *mut ffi::PyObject,
    out: &mut *mut ffi::PyObject,
) -> std::os::raw::c_int {
    let ts = th.ts;
    *out = std::ptr::null_mut();
    if sent == crate::generator::stepped() {
        // The generator's step already stepped `r` (`generator::delegate`).
        return crate::generator::take_stepped(r, out);
    }
    if ts.trace_hook().0.is_null() {
        let status = if crate::generator::is_ours(r) {
            crate::generator::send_ex2(th, r, sent, false, false, out)
        } else if crate::generator::is_our_asend(r) {
            send_asend(r, sent, out)
        } else {
            PyIter_Send(r, sent, out)
        };
        return if out.is_null() {
            g::PYGEN_ERROR
        } else {
            status
        };
    }
    send_traced(ts, r, sent, out)
}

/// `send_raw` with a trace function set: `__next__` or `send` called, so the tracer sees
/// the StopIteration (out of line: rare, and it kept `send_raw` from being inlined).
///
/// # Safety
/// As `send_raw`.
#[cold]
#[inline(never)]
unsafe fn send_traced(
    ts: crate::cpy::ThreadState,
    r: *mut ffi::PyObject,
    sent: *mut ffi::PyObject,
    out: &mut *mut ffi::PyObject,
) -> std::os::raw::c_int {
    let t = ffi::Py_TYPE(r);
    *out = match (*t).tp_iternext {
        Some(next) if sent == ffi::Py_None() && ffi::PyIter_Check(r) != 0 => next(r),
        _ => {
            let name = ffi::PyUnicode_InternFromString(c"send".as_ptr());
            if name.is_null() {
                return g::PYGEN_ERROR;
            }
            let o = ffi::PyObject_CallMethodOneArg(r, name, sent);
            ffi::Py_DECREF(name);
            o
        }
    };
    if !out.is_null() {
        return g::PYGEN_NEXT;
    }
    if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) != 0 {
        crate::tracing::exception(ts);
    }
    if _PyGen_FetchStopIterationValue(out) == 0 {
        return g::PYGEN_RETURN;
    }
    g::PYGEN_ERROR
}

/// `send_raw` on an `__anext__()`/`asend()` awaitable of ours: its step as PyIter_Send
/// would take it (`__next__` for None, else `send`), the result as a status rather than a
/// StopIteration (`asend_step`). Out of line, so `send_raw` stays small enough to inline
/// into the steps of every other `yield from` (generators' tree: 2.5% more instructions
/// with this inside).
///
/// # Safety
/// As `send_raw`; `r` is an awaitable of ours.
#[inline(never)]
unsafe fn send_asend(
    r: *mut ffi::PyObject,
    sent: *mut ffi::PyObject,
    out: &mut *mut ffi::PyObject,
) -> std::os::raw::c_int {
    let arg = match sent == ffi::Py_None() {
        true => std::ptr::null_mut(),
        false => sent,
    };
    crate::generator::asend_step(r, arg, out)
}

/// Native code for LKind::Suspend at `pc`: an in-place yield leaves the values in
/// registers (`generator::held`), each in its resume parameter's; another YIELD_VALUE
/// whose values are all objects (or NULL locals) moves them into the running generator's
/// frame inline, as `generator::suspend` does (no reference count changes but for values
/// in two slots, or constants, which keep their registers). Both leave with the yielded
/// value. Anything else (a RETURN_GENERATOR, a handler's lasti among the slots, a number
/// that cannot be boxed, a frame object or slots synced into the frame where values would
/// be held, not a generator's frame) calls `generator::suspend` through its helper.
pub(crate) fn emit_suspend(e: &mut Emit, pc: usize) {
    let inst = e.c.linear.insts[pc];
    let crate::lower::LKind::Suspend { value, index } = inst.kind else {
        unreachable!("emit_suspend on a Suspend")
    };
    let slow = e.b.create_block();
    e.b.set_cold_block(slow);
    let lin = &e.c.linear;
    let point = &lin.suspensions[index as usize];
    let slots: Vec<u32> =
        lin.operands[inst.args as usize..(inst.args + inst.nargs) as usize].to_vec();
    if point.in_place {
        // Numbers boxed as the frame would hold them, so that the garbage collector sees
        // the objects CPython's frame would (`gc.get_referents`).
        for &r in slots.iter().chain([&value]) {
            e.box_number(r, slow);
        }
        // No code of CPython's may read the frame behind our back: no frame object.
        let frame = yielding_frame(e, value, slow);
        let fo =
            e.b.ins()
                .load(e.ptr, mem(), frame, frame::offset::FRAME_OBJ);
        e.fail_if(fo, slow);
        suspended_at(e, frame, inst.offset);
        // A copy leaves if a slot or a constant keeps the value's register.
        let keeps = point.keeps_value || slots.contains(&value);
        yield_value(e, value, keeps);
        // Each slot's value to its resume parameter's register: all read, the sources
        // emptied, then the parameters written (a parameter's register may be another
        // slot's).
        let moves: Vec<(u32, u32)> = slots
            .iter()
            .zip(&point.params)
            .filter(|(s, p)| s != p)
            .map(|(&s, &p)| (s, p))
            .collect();
        let regs = e.regs();
        let words: Vec<_> = moves.iter().map(|&(s, _)| e.load_words(regs, s)).collect();
        for &(s, _) in &moves {
            e.clear(s);
        }
        for (&(_, p), (t, w)) in moves.iter().zip(words) {
            e.store_reg(p, t, w);
        }
        let ok = e.b.ins().iconst(types::I64, 0);
        e.leave(ok);
    } else if value != NO_VALUE && point.lasti.is_empty() {
        let moved = point.release.clone();
        let keeps = point.keeps_value;
        // Numbers boxed in place (as `Value::box_in_place`), then the guards: objects
        // or NULL in the slots, an object to yield.
        let mut seen = Vec::new();
        for &r in slots.iter().chain([&value]) {
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            e.box_number(r, slow);
            let t = e.tag(r);
            let other = e.b.ins().band_imm_s(t, !(tag::OBJ as i64));
            e.fail_if(other, slow);
        }
        let frame = yielding_frame(e, value, slow);
        // The slots: a register's value moves into its first slot; a second slot, a
        // constant's register or the yielded register gets a new reference.
        let zero = e.b.ins().iconst(types::I64, 0);
        let mut taken = Vec::new();
        for (i, &r) in slots.iter().enumerate() {
            let t = e.tag(r);
            let p = e.payload(r, types::I64);
            let is_obj = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
            let o = e.b.ins().select(is_obj, p, zero);
            if r == value || taken.contains(&r) || !moved.contains(&r) {
                e.incref_loaded(t, p);
            } else {
                taken.push(r);
            }
            let at = frame::offset::LOCALSPLUS + 8 * i as i32;
            e.b.ins().store(mem(), o, frame, at);
        }
        let n = e.b.ins().iconst(types::I32, slots.len() as i64);
        e.b.ins().store(mem(), n, frame, frame::offset::TAIL);
        suspended_at(e, frame, inst.offset);
        // (A constant stays in its register for the later steps.)
        yield_value(e, value, keeps);
        for r in taken {
            e.clear(r);
        }
        let ok = e.b.ins().iconst(types::I64, 0);
        e.leave(ok);
    } else {
        e.b.ins().jump(slow, &[]);
    }
    e.b.switch_to_block(slow);
    let ctx = e.ctx();
    let regs = e.regs();
    let pcv = e.b.ins().iconst(types::I32, pc as i64);
    let out = e.out();
    let status = e
        .call(
            crate::native::helpers::suspend as *const () as usize,
            &[e.ptr, e.ptr, types::I32, e.ptr],
            Some(types::I64),
            &[ctx, regs, pcv, out],
        )
        .expect("returns");
    e.leave(status);
}

/// The running generator's frame, for a yield of register `value` (boxed): branches to
/// `slow` unless the value is an object and the frame a generator's without slots synced
/// into it.
fn yielding_frame(e: &mut Emit, value: u32, slow: Block) -> CValue {
    let t = e.tag(value);
    let not_obj = e.b.ins().icmp_imm_s(IntCC::NotEqual, t, tag::OBJ as i64);
    e.fail_if(not_obj, slow);
    let frame = e.frame_ptr();
    let owner = e.b.ins().load(types::I8, mem(), frame, OWNER);
    let not_gen =
        e.b.ins()
            .icmp_imm_s(IntCC::NotEqual, owner, g::OWNED_BY_GENERATOR as i64);
    e.fail_if(not_gen, slow);
    let synced =
        e.b.ins()
            .load(types::I32, mem(), frame, frame::offset::TAIL);
    e.fail_if(synced, slow);
    frame
}

/// Marks generator frame `frame` suspended at the yield at bytecode `offset`.
fn suspended_at(e: &mut Emit, frame: CValue, offset: u32) {
    let unit = e.c.code_unit(offset) as i64;
    let unit = e.b.ins().iconst(e.ptr, unit);
    e.b.ins()
        .store(mem(), unit, frame, frame::offset::PREV_INSTR);
    let suspended = e.b.ins().iconst(types::I8, g::FRAME_SUSPENDED as i64);
    e.b.ins().store(mem(), suspended, frame, FRAME_STATE);
}

/// The yielded value (an object, checked) leaves as a returned one does: moved out of
/// its register, or a new reference when the register `keeps` it.
fn yield_value(e: &mut Emit, value: u32, keeps: bool) {
    let t = e.tag(value);
    let p = e.payload(value, types::I64);
    let out = e.out();
    e.b.ins().store(mem(), t, out, 0);
    e.b.ins().store(mem(), p, out, 8);
    if keeps {
        e.incref(p);
    } else {
        e.clear(value);
    }
}

/// Native code for Send: the step (`send_raw`) through one helper taking the operands
/// (the sent value boxed as the generic op boxes it), its outcome written inline: the
/// value, and whether the receiver returned. Anything unusual (a NULL operand) takes the
/// generic op.
pub(crate) fn emit_send(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let objs = e.operand_objects(pc);
    let ctx = e.ctx();
    // The argument array's first word holds the outcome (nothing else uses it here).
    let out = e.call_args_array();
    let st = e
        .call(
            crate::native::helpers::send as *const () as usize,
            &[e.ptr, e.ptr, e.ptr, e.ptr],
            Some(types::I64),
            &[ctx, objs[0], objs[1], out],
        )
        .expect("returns");
    let failed = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, st, 0);
    e.raise_if(pc, failed);
    let v = e.b.ins().load(e.ptr, mem(), out, 0);
    e.set(inst.dst, tag::OBJ, v);
    let returned =
        e.b.ins()
            .icmp_imm_s(IntCC::Equal, st, g::PYGEN_RETURN as i64);
    e.set(inst.dst + 1, tag::BOOL, returned);
    Some("Send")
}

/// Native code for GetYieldFromIter: `PyObject_GetIter` of the operand, called directly;
/// a coroutine (CPython's or ours) takes the generic path (`get_yield_from_iter`: itself
/// in a coroutine, a TypeError elsewhere). A generator is its own iterator either way.
pub(crate) fn emit_get_yield_from_iter(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let ours = crate::generator::coroutine_type();
    if ours.is_null() {
        return None;
    }
    let inst = e.c.linear.insts[pc];
    let src = e.c.linear.operands[inst.args as usize];
    let slow = e.slow_block();
    let o = e.object_of(src, slow);
    let ty = e.b.ins().load(e.ptr, mem(), o, 8);
    for coro in [std::ptr::addr_of_mut!(ffi::PyCoro_Type), ours] {
        let is_coro = e.b.ins().icmp_imm_s(IntCC::Equal, ty, coro as i64);
        e.fail_if(is_coro, slow);
    }
    e.call_for_result(pc, ffi::PyObject_GetIter as *const () as usize, &[o]);
    Some("GetYieldFromIter")
}

/// Native code for GetAwaitable: a coroutine of ours that has not started (what `await
/// f()` of a tiered coroutine function gets) is its own awaitable, and cannot be awaited
/// already (`_PyGen_yf` is NULL for a created frame); so is the awaitable of our async
/// generator's `__anext__()` or `asend(v)` (its `__await__` returns itself: `await
/// agen.__anext__()`; `async for` steps it without GET_AWAITABLE). Either moves (or is
/// copied) to the result. Anything else takes the generic path (`get_awaitable`).
pub(crate) fn emit_get_awaitable(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let coro = crate::generator::coroutine_type();
    if coro.is_null() {
        return None;
    }
    let asend = crate::generator::async_generator_entries().map(|(_, _, asend)| asend);
    let inst = e.c.linear.insts[pc];
    let src = e.c.linear.operands[inst.args as usize];
    let last = e.c.linear.last_use[inst.args as usize];
    let slow = e.slow_block();
    let t = e.tag(src);
    e.guard_eq(t, tag::OBJ as i64, slow);
    let o = e.payload(src, e.ptr);
    let ty = e.b.ins().load(e.ptr, mem(), o, 8);
    let (coroutine, other, take) = (e.b.create_block(), e.b.create_block(), e.b.create_block());
    let is_coro = e.b.ins().icmp_imm_s(IntCC::Equal, ty, coro as i64);
    e.b.ins().brif(is_coro, coroutine, &[], other, &[]);
    e.b.switch_to_block(coroutine);
    let state = e.b.ins().load(types::I8, mem(), o, HEAD_STATE);
    let started =
        e.b.ins()
            .icmp_imm_s(IntCC::NotEqual, state, g::FRAME_CREATED as i64);
    e.b.ins().brif(started, slow, &[], take, &[]);
    e.b.switch_to_block(other);
    match asend {
        Some(asend) => {
            let is_asend = e.b.ins().icmp_imm_s(IntCC::Equal, ty, asend as i64);
            e.b.ins().brif(is_asend, take, &[], slow, &[]);
        }
        None => {
            e.b.ins().jump(slow, &[]);
        }
    }
    e.b.switch_to_block(take);
    if last {
        e.clear(src);
    } else {
        e.incref(o);
    }
    e.set(inst.dst, tag::OBJ, o);
    Some("GetAwaitable")
}

/// Native code for GetAnext on an async generator of ours: its `__anext__` slot called
/// directly (the awaitable is used as it is, as the generic op uses an async
/// generator's). Anything else takes the generic path (`get_anext`).
pub(crate) fn emit_get_anext(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let (agen, anext, _) = crate::generator::async_generator_entries()?;
    let inst = e.c.linear.insts[pc];
    let src = e.c.linear.operands[inst.args as usize];
    let slow = e.slow_block();
    let o = e.object_of_type(src, agen, slow);
    e.call_for_result(pc, anext, &[o]);
    Some("GetAnext")
}

/// Native code for AsyncGenWrap: the wrapper made by a direct call
/// (`helpers::wrap_async_value`).
pub(crate) fn emit_async_gen_wrap(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let objs = e.operand_objects(pc);
    let helper = crate::native::helpers::wrap_async_value as *const () as usize;
    e.call_for_result(pc, helper, &objs);
    Some("AsyncGenWrap")
}

/// Byte offset, from a generator object, of its `gi_frame_state`.
const HEAD_STATE: i32 = std::mem::offset_of!(g::GenHead, gi_frame_state) as i32;

/// Native code for Thrown: the value sent in moves to its result; NULL (an exception
/// thrown in) takes the generic path, which raises it.
pub(crate) fn emit_thrown(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let inst = e.c.linear.insts[pc];
    let src = e.c.linear.operands[inst.args as usize];
    let last = e.c.linear.last_use[inst.args as usize];
    let t = e.tag(src);
    let thrown = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::NULL as i64);
    let slow = e.slow_block();
    e.fail_if(thrown, slow);
    let p = e.payload(src, types::I64);
    if last {
        e.clear(src);
    } else {
        e.incref_loaded(t, p);
    }
    e.store_reg(inst.dst, t, p);
    if last && src != inst.dst {
        // The value moved out at its last use: the Drop after this (which releases the
        // register it died in) goes without it here (every resumption runs this).
        e.continue_moved(pc, &[src]);
        let unreached = e.b.create_block();
        e.b.switch_to_block(unreached);
    }
    Some("Thrown")
}

/// Byte offset, from a generator's frame, of the frame's `owner`.
const OWNER: i32 = std::mem::offset_of!(frame::InterpreterFrame, owner) as i32;
/// Byte offset, from a generator's frame, of the generator's `gi_frame_state`.
const FRAME_STATE: i32 = HEAD_STATE - g::IFRAME as i32;
