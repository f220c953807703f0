//! One step of a generator of ours (CPython's `gen_send_ex2`): the body resumed in our
//! tiers at a suspension of ours, or, when a trace or profile function is set or the frame
//! stopped where our code has no resume point, in CPython's own loop from the same frame.

use super::delegate::Step;
use super::{bump, compiled_of, files, footer, Kind};
use crate::cpy::frame;
use crate::cpy::gen as g;
use crate::cpy::ThreadState;
use crate::interp::{self, Ctx};
use crate::lower::Suspension;
use crate::native::helpers::guarded;
use crate::runtime::Compiled;
use crate::value::{PyResult, Raised, Value};
use pyo3_ffi as ffi;
use std::cell::Cell;
use std::os::raw::c_int;

extern "C" {
    fn _PyErr_FormatFromCause(
        exception: *mut ffi::PyObject,
        format: *const std::os::raw::c_char,
        ...
    ) -> *mut ffi::PyObject;
    pub(super) fn _PyGen_SetStopIterationValue(value: *mut ffi::PyObject) -> c_int;
    fn _PyErr_ChainStackItem(exc_info: *mut g::ErrStackItem);
}

/// The thread a step runs on: its state and the lowest stack address tiered code may run
/// at there (`stack::limit_for`). A step our own code asks for (`yield from`, `await`)
/// takes both from the running activation (`Thread::of`), as calls between our functions
/// do, instead of looking the limit up again at every resumption.
#[derive(Clone, Copy)]
pub(crate) struct Thread {
    pub(crate) ts: ThreadState,
    pub(crate) stack_limit: usize,
}

impl Thread {
    /// The calling thread, for a step CPython asks for (a slot or a method).
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    pub(crate) unsafe fn current() -> Thread {
        let ts = ThreadState::current();
        Thread {
            ts,
            stack_limit: crate::stack::limit_for(ts),
        }
    }

    /// The thread activation `ctx` runs on.
    #[inline]
    pub(crate) fn of(ctx: &Ctx) -> Thread {
        Thread {
            ts: ctx.tstate,
            stack_limit: ctx.stack_limit,
        }
    }
}

/// `tp_iternext`: `next(gen)` (`gen_iternext`: a return value other than None as
/// StopIteration, a plain return as NULL with nothing set). A plain return comes back
/// from `send_ex2` as PYGEN_RETURN with no value (`finished`: CPython's PYGEN_ERROR with
/// none): raising StopIteration for it anyway cost every exhausted generator expression
/// an exception set and cleared by its consumer (1.5% of nqueens' instructions).
pub(super) unsafe extern "C" fn iternext(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let mut result = std::ptr::null_mut();
        if send_ex2(
            Thread::current(),
            gen,
            std::ptr::null_mut(),
            false,
            false,
            &mut result,
        ) == g::PYGEN_RETURN
        {
            if !result.is_null() && result != ffi::Py_None() {
                _PyGen_SetStopIterationValue(result);
            }
            ffi::Py_XDECREF(result);
            return std::ptr::null_mut();
        }
        result
    })
}

/// `am_send`: `yield from gen`, `await`, `PyIter_Send`.
pub(super) unsafe extern "C" fn am_send(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    guarded(ffi::PySendResult::PYGEN_ERROR, || {
        match send_ex2(Thread::current(), gen, arg, false, false, result) {
            g::PYGEN_RETURN => ffi::PySendResult::PYGEN_RETURN,
            g::PYGEN_NEXT => ffi::PySendResult::PYGEN_NEXT,
            _ => ffi::PySendResult::PYGEN_ERROR,
        }
    })
}

/// `gen.send(arg)`.
pub(super) unsafe extern "C" fn send_method(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || send_value(gen, arg, false, false))
}

/// CPython's `gen_send_ex`: a step's outcome as a value: what it yielded, or NULL with
/// its return as StopIteration (StopAsyncIteration for an async generator) or its
/// exception set.
pub(crate) unsafe fn send_value(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    exc: bool,
    closing: bool,
) -> *mut ffi::PyObject {
    let mut result = std::ptr::null_mut();
    if send_ex2(Thread::current(), gen, arg, exc, closing, &mut result) == g::PYGEN_RETURN {
        if Kind::of(gen) == Kind::AsyncGenerator {
            ffi::PyErr_SetNone(ffi::PyExc_StopAsyncIteration);
        } else if result == ffi::Py_None() {
            ffi::PyErr_SetNone(ffi::PyExc_StopIteration);
        } else {
            _PyGen_SetStopIterationValue(result);
        }
        ffi::Py_XDECREF(result);
        return std::ptr::null_mut();
    }
    result
}

/// CPython's `gen_send_ex2` for a generator of ours, on thread `th` (the current one): `arg`
/// is the value sent in (NULL for `next()`); `exc` says an exception (set) is thrown in instead; `closing` that `close()`
/// asks. Its checks, then one step, in our tiers where the frame stopped at a suspension
/// of ours and nothing traces, else in CPython's loop.
#[inline]
pub(crate) unsafe fn send_ex2(
    th: Thread,
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    exc: bool,
    closing: bool,
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    *presult = std::ptr::null_mut();
    let state = g::head(gen).gi_frame_state;
    let fresh_with_value = state == g::FRAME_CREATED && !arg.is_null() && arg != ffi::Py_None();
    if fresh_with_value || state == g::FRAME_EXECUTING || state >= g::FRAME_COMPLETED {
        return refused(gen, state, arg, exc, closing, presult);
    }
    let ts = th.ts;
    let c = compiled_of(gen);
    let at = c.offset_of_unit((*g::iframe(gen)).prev_instr);
    match c.linear.suspension_at(at).filter(|_| !ts.tracing()) {
        Some(point) => {
            // In a `yield from` or `await`: the delegate steps first, and that may be all.
            let stepped = point.send.is_some() && !exc && state == g::FRAME_SUSPENDED && {
                match super::delegate::step(th, gen, c, point, arg, presult) {
                    Step::Done(status) => return status,
                    Step::Taken => true,
                    Step::Declined => false,
                }
            };
            let regs = match files::registers(gen) {
                Some(regs) => regs,
                None => match files::attach(gen, c) {
                    Some(regs) => regs,
                    // The code's generators finish in their first step (or no memory):
                    // on stack registers, kept if this one suspends.
                    None => {
                        return crate::runtime::with_registers(c.linear.nregs as usize, |regs| {
                            files::load_constants(c, regs);
                            let r = resume(th, gen, c, point, arg, stepped, exc, regs, presult);
                            if g::head(gen).gi_frame_state == g::FRAME_SUSPENDED {
                                c.gen_files.first_step_suspended(true);
                                if files::keep_registers(gen, regs).is_err() {
                                    return lost(gen, presult);
                                }
                            }
                            r
                        })
                    }
                },
            };
            let status = resume(th, gen, c, point, arg, stepped, exc, regs, presult);
            if g::head(gen).gi_frame_state != g::FRAME_SUSPENDED {
                files::finished(gen);
                if state == g::FRAME_CREATED {
                    c.gen_files.first_step_suspended(false);
                }
            }
            status
        }
        None => cpython_step(ts, gen, c, arg, exc, presult),
    }
}

/// A generator that yielded but could keep its values neither in a register file nor in
/// its frame (out of memory: `keep_registers`) ends with that error, as if raised there.
#[cold]
#[inline(never)]
unsafe fn lost(gen: *mut ffi::PyObject, presult: *mut *mut ffi::PyObject) -> c_int {
    ffi::Py_XDECREF(std::mem::replace(&mut *presult, std::ptr::null_mut()));
    clear(gen);
    g::PYGEN_ERROR
}

/// `send_ex2` for a generator that cannot take a step in state `state` (out of line: the
/// hot path saved and restored more registers with these messages in it): a value sent
/// into a fresh generator, a running one, or a finished one (a finished coroutine raises
/// unless it is being closed; otherwise a value sent in gets None back as its return).
#[cold]
#[inline(never)]
unsafe fn refused(
    gen: *mut ffi::PyObject,
    state: i8,
    arg: *mut ffi::PyObject,
    exc: bool,
    closing: bool,
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    let kind = Kind::of(gen);
    if state == g::FRAME_CREATED {
        let msg = format!(
            "can't send non-None value to a just-started {}",
            kind.name()
        );
        crate::ops::raise(ffi::PyExc_TypeError, &msg);
        return g::PYGEN_ERROR;
    }
    if state == g::FRAME_EXECUTING {
        let msg = format!("{} already executing", kind.name());
        crate::ops::raise(ffi::PyExc_ValueError, &msg);
        return g::PYGEN_ERROR;
    }
    if kind == Kind::Coroutine && !closing {
        crate::ops::raise(
            ffi::PyExc_RuntimeError,
            "cannot reuse already awaited coroutine",
        );
    } else if !arg.is_null() && !exc {
        ffi::Py_INCREF(ffi::Py_None());
        *presult = ffi::Py_None();
        return g::PYGEN_RETURN;
    }
    g::PYGEN_ERROR
}

/// Runs generator `gen` from suspension `point` in register file `regs` (empty but for
/// its constants: `registers`), as
/// `gen_send_ex2` runs a frame: pushes the value sent in (`delegate::stepped()` after its
/// delegate took the step, `stepped`; or raises the exception thrown in, `exc`, at the
/// yield), links the frame and the generator's exception level, and finishes the
/// generator if it did not yield.
#[allow(clippy::too_many_arguments)]
// Always inlined, as `run`: every step of every generator runs both, and the compiler's
// own choice moved with unrelated code (left out, they cost nqueens 1.5%).
#[inline(always)]
unsafe fn resume(
    th: Thread,
    gen: *mut ffi::PyObject,
    c: &Compiled,
    point: &Suspension,
    arg: *mut ffi::PyObject,
    stepped: bool,
    exc: bool,
    regs: &mut [Value],
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    // The stack for the whole step (its code runs in `run`), checked before the frame is
    // touched, so that a step moved to a fresh segment starts from the top.
    if crate::stack::nearly_exhausted(th.stack_limit) {
        return resume_grown(th, gen, c, point, arg, stepped, exc, regs, presult);
    }
    let h = g::head(gen);
    let f = g::iframe(gen);
    // The frame's slots (and the value sent in on top of its stack, or NULL for an
    // exception thrown in: `Thrown` raises it) move into the resume block's parameters.
    let n = (*f).stacktop.max(0) as usize;
    // Held in registers (`held`): already where the resume block reads them.
    let held = point.in_place && n == 0;
    if !held && n + 1 != point.params.len() {
        crate::ops::raise(
            ffi::PyExc_SystemError,
            "tiered: a generator's frame does not match its resume point",
        );
        return g::PYGEN_ERROR;
    }
    (*f).stacktop = 0;
    // The parameters' registers written here are empty (`suspend` moved their values
    // into the frame; held values are not written, only the value sent in is), so they
    // are written without releasing what they held: nothing. This runs at every step of
    // every generator, so without bounds checks: every parameter is a register of this
    // code (`lower` made both), checked here in debug builds.
    let file = regs.as_mut_ptr();
    let put = |r: u32, v: Value| {
        debug_assert!(
            matches!(regs.get(r as usize), Some(Value::Null)),
            "a resume parameter is an empty register"
        );
        // SAFETY: `r` is a register of `c` (above), initialized and holding Null (owns
        // nothing), so writing over it leaks nothing.
        std::ptr::write(file.add(r as usize), v);
    };
    let slots = (*f).localsplus(n).as_mut_ptr();
    for (i, &r) in point.params[..n].iter().enumerate() {
        // SAFETY: `i < n`, the frame's slots in use.
        let o = std::mem::replace(&mut *slots.add(i), std::ptr::null_mut());
        put(r, Value::from_owned(o).unwrap_or(Value::Null));
    }
    let sent = match (exc, stepped, arg.is_null()) {
        (true, _, _) => Value::Null,
        (false, true, _) => Value::from_borrowed(super::delegate::stepped()),
        (false, false, true) => Value::from_borrowed(ffi::Py_None()),
        (false, false, false) => Value::from_borrowed(arg),
    };
    put(point.params[point.params.len() - 1], sent);
    let ts = th.ts;
    enter_linked(ts, gen, exc);
    let func = (*f).f_func as *mut ffi::PyFunctionObject;
    let ctx = Ctx {
        compiled: c,
        func,
        globals: (*f).f_globals,
        builtins: (*f).f_builtins,
        tuning: crate::runtime::config(),
        ran_native: Cell::new(false),
        tstate: ts,
        stack_limit: th.stack_limit,
        frame: f,
        regs: regs.as_mut_ptr(),
    };
    let running = footer(gen).1;
    *running = &ctx as *const Ctx as usize;
    let r = run(&ctx, regs, point.resume as usize);
    bump(&c.resumes[0]);
    if ctx.ran_native.get() {
        bump(&c.resumes[1]);
    }
    leave_linked(ts, gen);
    if h.gi_frame_state == g::FRAME_SUSPENDED {
        *running = 0;
        // Only constants are left (`suspend`), for the next step (`registers`).
        return match r {
            Ok(v) => {
                *presult = v.into_ptr();
                g::PYGEN_NEXT
            }
            Err(Raised) => g::PYGEN_ERROR,
        };
    }
    let (status, result) = finished(gen, r.map(|v| v.into_ptr()), arg);
    // A frame object that outlives the generator keeps its final locals (as a returning
    // function's does: `activation::sync_at_pop`, which finds this activation by the
    // footer), then takes the frame over.
    let fo = (*f).frame_obj;
    if !fo.is_null() && ffi::Py_REFCNT(fo) > 1 {
        crate::activation::sync_at_pop(f);
    }
    *running = 0;
    crate::runtime::release(c, regs, status == g::PYGEN_ERROR);
    clear(gen);
    *presult = result;
    status
}

/// `resume` on a fresh segment of stack (`stack::grow`), for a step that found this one
/// nearly exhausted: everything it runs there takes the segment's stack limit. Where no
/// segment can be had, RecursionError, the generator left as it was.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn resume_grown(
    th: Thread,
    gen: *mut ffi::PyObject,
    c: &Compiled,
    point: &Suspension,
    arg: *mut ffi::PyObject,
    stepped: bool,
    exc: bool,
    regs: &mut [Value],
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    let grown = crate::stack::grow(|| {
        let th = Thread {
            ts: th.ts,
            stack_limit: crate::stack::limit_for(th.ts),
        };
        resume(th, gen, c, point, arg, stepped, exc, &mut *regs, presult)
    });
    grown.unwrap_or_else(|| {
        crate::stack::raise_exhausted();
        g::PYGEN_ERROR
    })
}

/// One step of `gen` in CPython's own loop, from its frame (`gen_send_ex2` around
/// `_PyEval_EvalFrame`): where a trace or profile function is set, or where the frame
/// stopped at no suspension of ours (CPython ran part of it, or `throw()` finished a
/// delegation by jumping past it). Our tiers take the next step back. (Out of line: the
/// hot step's callees stay inlined.)
#[inline(never)]
unsafe fn cpython_step(
    ts: ThreadState,
    gen: *mut ffi::PyObject,
    c: &Compiled,
    arg: *mut ffi::PyObject,
    exc: bool,
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    // CPython's loop reads the frame: values held in registers go there first.
    if super::held::fill(gen).is_err() {
        return g::PYGEN_ERROR;
    }
    bump(&c.resumes[2]);
    let h = g::head(gen);
    let f = g::iframe(gen);
    let v = if arg.is_null() { ffi::Py_None() } else { arg };
    ffi::Py_INCREF(v);
    let n = (*f).stacktop.max(0) as usize;
    (*f).localsplus(n + 1)[n] = v;
    (*f).stacktop = n as c_int + 1;
    (*f).previous = (*ts.cframe()).current_frame;
    enter(ts, gen, exc);
    let result = g::eval_frame(ts, f, exc);
    leave(ts, gen);
    if !result.is_null() && h.gi_frame_state == g::FRAME_SUSPENDED {
        *presult = result;
        return g::PYGEN_NEXT;
    }
    let (status, result) = finished(
        gen,
        (!result.is_null()).then_some(result).ok_or(Raised),
        arg,
    );
    clear(gen);
    *presult = result;
    status
}

/// A step our tiers run starts: the generator's frame the thread's innermost (CPython's
/// loop links it itself: `cpython_step`), then `enter`.
pub(super) unsafe fn enter_linked(ts: ThreadState, gen: *mut ffi::PyObject, exc: bool) {
    let f = g::iframe(gen);
    let cf = ts.cframe();
    (*f).previous = (*cf).current_frame;
    (*cf).current_frame = f;
    enter(ts, gen, exc);
}

/// The step `enter_linked` started is over: the frame unlinked, then `leave`.
pub(super) unsafe fn leave_linked(ts: ThreadState, gen: *mut ffi::PyObject) {
    (*ts.cframe()).current_frame = (*g::iframe(gen)).previous;
    leave(ts, gen);
}

/// The generator starts running: its exception level on top of the thread's (with the
/// exception thrown in, `exc`, chained to what it was handling).
unsafe fn enter(ts: ThreadState, gen: *mut ffi::PyObject, exc: bool) {
    let h = g::head(gen);
    h.gi_exc_state.previous_item = ts.exc_info();
    ts.set_exc_info(&mut h.gi_exc_state);
    if exc {
        _PyErr_ChainStackItem(std::ptr::null_mut());
    }
    h.gi_frame_state = g::FRAME_EXECUTING;
}

/// The step is over: the generator's level off the thread's chain, its frame unlinked, and
/// finished if it did not yield.
unsafe fn leave(ts: ThreadState, gen: *mut ffi::PyObject) {
    let h = g::head(gen);
    if h.gi_frame_state == g::FRAME_EXECUTING {
        h.gi_frame_state = g::FRAME_COMPLETED;
    }
    ts.set_exc_info(h.gi_exc_state.previous_item);
    h.gi_exc_state.previous_item = std::ptr::null_mut();
    (*g::iframe(gen)).previous = std::ptr::null_mut();
}

/// The outcome of a step that finished the generator (`r`: what the body returned, or
/// Raised): a return (none at all from `next()` for None, except from an async generator),
/// or the exception, PEP 479's RuntimeError for a StopIteration (and an async generator's
/// StopAsyncIteration) leaving the body.
unsafe fn finished(
    gen: *mut ffi::PyObject,
    r: PyResult<*mut ffi::PyObject>,
    arg: *mut ffi::PyObject,
) -> (c_int, *mut ffi::PyObject) {
    let kind = Kind::of(gen);
    match r {
        Ok(v) if v == ffi::Py_None() && kind != Kind::AsyncGenerator && arg.is_null() => {
            ffi::Py_DECREF(v);
            (g::PYGEN_RETURN, std::ptr::null_mut())
        }
        Ok(v) => (g::PYGEN_RETURN, v),
        Err(Raised) => {
            let msg = if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) != 0 {
                Some(format!("{} raised StopIteration\0", kind.name()))
            } else if kind == Kind::AsyncGenerator
                && ffi::PyErr_ExceptionMatches(ffi::PyExc_StopAsyncIteration) != 0
            {
                Some("async generator raised StopAsyncIteration\0".to_string())
            } else {
                None
            };
            if let Some(msg) = msg {
                _PyErr_FormatFromCause(
                    ffi::PyExc_RuntimeError,
                    c"%s".as_ptr(),
                    msg.as_ptr() as *const std::os::raw::c_char,
                );
            }
            (g::PYGEN_ERROR, std::ptr::null_mut())
        }
    }
}

/// A finished generator lets go of its frame (`gen_send_ex2`, then `_PyFrame_Clear`).
unsafe fn clear(gen: *mut ffi::PyObject) {
    let h = g::head(gen);
    let exc = std::mem::replace(&mut h.gi_exc_state.exc_value, std::ptr::null_mut());
    ffi::Py_XDECREF(exc);
    h.gi_frame_state = g::FRAME_CLEARED;
    frame::clear_owned(g::iframe(gen));
}

/// Runs the body from `start`: native code when the function is hot, else tier 1.
#[inline(always)]
unsafe fn run(ctx: &Ctx, regs: &mut [Value], start: usize) -> PyResult<Value> {
    let ts = ctx.tstate;
    // (`resume` checked the stack.)
    if !ts.enter_recursive_call() {
        return Err(Raised);
    }
    let c = ctx.compiled;
    let r = match c.native_for_call(ctx) {
        Some(native) => match interp::run_native(ctx, native, regs, start) {
            interp::NativeExit::Done(r) if ts.tracing() => crate::tracing::function_exit(ts, r),
            interp::NativeExit::Done(r) => r,
            interp::NativeExit::Resume(pc) => interp::run(ctx, regs, pc),
        },
        None => interp::run(ctx, regs, start),
    };
    ts.leave_recursive_call();
    r
}
