//! A step of a generator of ours suspended in a `yield from` or an `await` of its own (a
//! suspension that `delegates`): what CPython's loop runs there is SEND, then YIELD_VALUE
//! when the delegate (the frame's top slot) yielded. So the delegate takes its step first,
//! with the generator's frame linked at its SEND exactly as CPython links it (thread's
//! frame chain, the generator's exception level, one recursion level, `gi_running`), and
//! when it yields, the generator yields the same value without its code running: no
//! registers loaded from the frame and stored back, no entry into its code. A chain of
//! `yield from`s (a recursive generator, a stack of coroutines awaiting a future) then
//! costs each level about what it costs CPython.
//!
//! When the delegate returned or raised (or a trace function came on meanwhile), the
//! generator's code resumes as usual, and the Send it resumes at (the next op: nothing
//! runs between) finds the step already taken: the value sent in is then `STEPPED`, a
//! marker no Python code ever sees, and the outcome waits under the receiver's address
//! (`take`, from `ops::generators::send_raw`). So the delegate's return value, its
//! release and an exception's traceback entry happen at the Send, in our tiers, as CPython
//! has them at its SEND.

use super::bump;
use super::step::{enter_linked, leave_linked, Thread};
use crate::cpy::gen as g;
use crate::lower::Suspension;
use crate::runtime::{Compiled, GilCell};
use crate::value::{PyResult, Raised};
use pyo3_ffi as ffi;
use std::os::raw::c_int;

/// The value a generator's code is resumed with once its delegate took the step (NULL
/// before `install`).
static mut STEPPED: *mut ffi::PyObject = std::ptr::null_mut();

/// How a delegate's step ended, waiting for the Send it belongs to.
enum Outcome {
    /// It yielded this (a new reference), and a trace function came on meanwhile: the
    /// generator's code yields it, so the trace function sees that.
    Yielded(*mut ffi::PyObject),
    /// It returned this (a new reference).
    Returned(*mut ffi::PyObject),
    /// It raised this (`PyErr_Fetch`'s three, owned).
    Raised([*mut ffi::PyObject; 3]),
}

/// Outcomes waiting for their Send, by receiver address. Normally at most one, taken right
/// after it is put; a finalizer run meanwhile (by a collection while the generator's code
/// is compiled) may step another generator, whose outcome goes on top.
static WAITING: GilCell<Vec<(usize, Outcome)>> = GilCell::new(Vec::new());

/// Makes `STEPPED`.
///
/// # Safety
/// GIL held; once, at import.
pub(super) unsafe fn install() -> PyResult<()> {
    let o = ffi::PyObject_CallNoArgs(std::ptr::addr_of_mut!(ffi::PyBaseObject_Type).cast());
    if o.is_null() {
        return Err(Raised);
    }
    STEPPED = o;
    Ok(())
}

/// The value a generator is resumed with after `step`.
pub(crate) fn stepped() -> *mut ffi::PyObject {
    // SAFETY: written once, at import, before any generator of ours exists.
    unsafe { STEPPED }
}

/// What `step` did.
pub(super) enum Step {
    /// The whole step (the delegate yielded, so did the generator): this status, the value
    /// in `*presult`.
    Done(c_int),
    /// The delegate's step; the generator's code must now run, resumed with `stepped()`
    /// sent in, its outcome waiting for the Send.
    Taken,
    /// Nothing: the frame or the thread do not allow the step here (a frame not as the
    /// suspension has it, no stack or recursion level left). The usual resumption raises
    /// as CPython would.
    Declined,
}

/// One step of `gen`, suspended at `point` (which delegates: `Suspension::send`) on thread `th`, with `arg`
/// sent in (NULL from `next()`): the delegate's step, and the generator's when that is
/// all (`Step`).
///
/// # Safety
/// GIL held, on `th`'s thread; `gen` a suspended generator of ours at `point`, of code `c`;
/// no trace or profile function set.
pub(super) unsafe fn step(
    th: Thread,
    gen: *mut ffi::PyObject,
    c: &Compiled,
    point: &Suspension,
    arg: *mut ffi::PyObject,
    presult: *mut *mut ffi::PyObject,
) -> Step {
    let ts = th.ts;
    let f = g::iframe(gen);
    let n = (*f).stacktop;
    let Some(send) = point.send else {
        return Step::Declined;
    };
    if n < 1
        || n as usize + 1 != point.params.len()
        || crate::stack::nearly_exhausted(th.stack_limit)
        || !ts.try_enter_recursive_call()
    {
        return Step::Declined;
    }
    let receiver = (*f).localsplus(n as usize)[n as usize - 1];
    let sent = if arg.is_null() { ffi::Py_None() } else { arg };
    // As `gen_send_ex2` and the eval loop run the frame up to its SEND (`prev_instr` there
    // while the delegate runs: its line and `f_lasti`, and no `gi_yieldfrom`, as in
    // CPython).
    enter_linked(ts, gen, false);
    let at_yield = (*f).prev_instr;
    (*f).prev_instr = c.code_unit(send);
    let mut out = std::ptr::null_mut();
    let status = crate::ops::generators::send_raw(th, receiver, sent, &mut out);
    (*f).prev_instr = at_yield;
    ts.leave_recursive_call();
    // (Suspended again whatever the delegate did: `leave` would mark it finished.)
    g::head(gen).gi_frame_state = g::FRAME_SUSPENDED;
    leave_linked(ts, gen);
    if status == g::PYGEN_NEXT && !ts.tracing() {
        // A step in our tiers, which counts towards compiling the code as a resumption
        // does; where the code is native, a native one (it would only have called the
        // same Send).
        bump(&c.resumes[0]);
        if c.native_for_tuning(crate::runtime::config()).is_some() {
            bump(&c.resumes[1]);
        }
        *presult = out;
        return Step::Done(g::PYGEN_NEXT);
    }
    let outcome = match status {
        g::PYGEN_NEXT => Outcome::Yielded(out),
        g::PYGEN_RETURN => Outcome::Returned(out),
        _ => {
            let mut e = [std::ptr::null_mut(); 3];
            ffi::PyErr_Fetch(&mut e[0], &mut e[1], &mut e[2]);
            Outcome::Raised(e)
        }
    };
    WAITING.with(|w| w.push((receiver as usize, outcome)));
    Step::Taken
}

/// The Send of a generator resumed after `step`, on `receiver`: the delegate's outcome,
/// as `send_raw` returns one (PYGEN_NEXT or PYGEN_RETURN with the value in `*out`, or
/// PYGEN_ERROR with the exception set).
///
/// # Safety
/// GIL held; `receiver` the Send's receiver.
pub(crate) unsafe fn take(receiver: *mut ffi::PyObject, out: &mut *mut ffi::PyObject) -> c_int {
    let outcome = WAITING.with(|w| {
        let k = w.iter().rposition(|(r, _)| *r == receiver as usize)?;
        Some(w.remove(k).1)
    });
    match outcome {
        Some(Outcome::Yielded(v)) => {
            *out = v;
            g::PYGEN_NEXT
        }
        Some(Outcome::Returned(v)) => {
            *out = v;
            g::PYGEN_RETURN
        }
        Some(Outcome::Raised([t, v, tb])) => {
            ffi::PyErr_Restore(t, v, tb);
            g::PYGEN_ERROR
        }
        None => {
            crate::ops::raise(
                ffi::PyExc_SystemError,
                "tiered: a delegated step's outcome is missing",
            );
            g::PYGEN_ERROR
        }
    }
}
