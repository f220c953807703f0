//! Trace and profile functions switched on while a tiered activation runs.
//!
//! A call that starts while `sys.settrace`/`sys.setprofile` is active runs in CPython
//! (`Entry::call`, `enter_checked`). One already running in our tiers when a hook is
//! installed (by itself, a callee, `cProfile.Profile.enable()`, a signal handler) gives
//! the events CPython's eval loop would give from then on: CPython 3.11 checks
//! `cframe.use_tracing` at CALL and RETURN_VALUE, so tier 1 checks the hooks at the same
//! two points (`interp`): builtin calls report `c_call` and `c_return`/`c_exception`
//! (`call_c`), and the activation's exit reports `return` (`function_exit`). Native code
//! has no such checks; it leaves for tier 1 instead:
//!
//! - installing a hook (`sys.settrace`, `sys.setprofile`, also from C: cProfile's
//!   `enable()`, coverage's tracer) sets the thread's `cframe->use_tracing`, which
//!   CPython's eval loops pass outward as they return; native code's eval breaker checks
//!   read it with the breaker (`ops::events::emit_eval_breaker`), so the next check of
//!   the running code takes its slow path, which leaves native code for tier 1 when a hook
//!   is on (`Emit::slow_path`). (An audit hook on "sys.settrace" would see every install
//!   too, but once any audit hook is added, CPython builds every audit event's arguments
//!   and calls the hooks, for good: `id()`, `sys._getframe()`, `open()`... in the whole
//!   program. Merely importing tiered made `copy.deepcopy` 25% slower that way.)
//! - a tiered activation that exits while a hook is on adds another, so its caller (if
//!   ours) notices at its own next check; a native caller that called it directly learns
//!   it from the callee having left for tier 1, or, for a callee emitted inline, from the
//!   inline exit (`inline_exit`), and leaves too.
//!
//! Once an activation saw a hook come on, tier 1 also gives `line` events (`Lines`) and
//! `exception` events (`exception`) to the trace function, which passes them to the
//! frame's own `f_trace` if a debugger set one (pdb's `set_trace` marks its callers), as
//! CPython's `maybe_call_line_trace` and `call_exc_trace` do.
//!
//! CPython runs pending calls on the main thread only (3.11), so on other threads an
//! exit's pending call does not set the breaker; their checks see `use_tracing` all the
//! same.

use crate::cpy::ThreadState;
use crate::value::{PyResult, Raised, Value};
use pyo3_ffi as ffi;
use std::os::raw::{c_int, c_void};

/// `Py_tracefunc`.
type TraceFunc = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut ffi::PyFrameObject,
    c_int,
    *mut ffi::PyObject,
) -> c_int;

/// Sets the eval breaker (main thread) through a no-op pending call.
unsafe fn trip() {
    extern "C" fn nothing(_: *mut c_void) -> c_int {
        0
    }
    // A full queue (-1) has the breaker set already.
    let _ = ffi::Py_AddPendingCall(Some(nothing), std::ptr::null_mut());
}

/// CPython's `call_trace`: calls hook `(func, obj)` with event `what` for the innermost
/// frame (ours), unless a hook is running already on this thread.
unsafe fn call_trace(
    ts: ThreadState,
    (func, obj): (*mut c_void, *mut ffi::PyObject),
    what: c_int,
    arg: *mut ffi::PyObject,
) -> PyResult<()> {
    if func.is_null() || ts.in_hook() {
        return Ok(());
    }
    let f = crate::cpy::frame::current_frame_object();
    if f.is_null() {
        return Err(Raised);
    }
    let tsp = ts.as_ptr();
    ffi::PyThreadState_EnterTracing(tsp);
    // SAFETY: a non-NULL hook is a `Py_tracefunc` (PyEval_SetProfile/SetTrace store it).
    let func: TraceFunc = std::mem::transmute::<*mut c_void, TraceFunc>(func);
    let r = func(obj, f as *mut ffi::PyFrameObject, what, arg);
    ffi::PyThreadState_LeaveTracing(tsp);
    if r == 0 {
        Ok(())
    } else {
        Err(Raised)
    }
}

/// CPython's `call_trace_protected`: `call_trace` keeping the current exception, unless
/// the hook raised.
unsafe fn call_trace_protected(
    ts: ThreadState,
    hook: (*mut c_void, *mut ffi::PyObject),
    what: c_int,
    arg: *mut ffi::PyObject,
) -> PyResult<()> {
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    match call_trace(ts, hook, what, arg) {
        Ok(()) => {
            ffi::PyErr_Restore(t, v, tb);
            Ok(())
        }
        Err(Raised) => {
            ffi::Py_XDECREF(t);
            ffi::Py_XDECREF(v);
            ffi::Py_XDECREF(tb);
            Err(Raised)
        }
    }
}

/// CPython's `trace_function_exit`: the `return` event (`retval` NULL when an exception
/// leaves) to the trace function, then the profile function.
unsafe fn trace_function_exit(ts: ThreadState, retval: *mut ffi::PyObject) -> PyResult<()> {
    call_trace_protected(ts, ts.trace_hook(), ffi::PyTrace_RETURN, retval)?;
    call_trace_protected(ts, ts.profile_hook(), ffi::PyTrace_RETURN, retval)
}

/// The exit of a tier-1 activation whose frame is still the innermost, with a hook on:
/// its `return` event (as RETURN_VALUE's TRACE_FUNCTION_EXIT, or the unwind's, whose
/// failure is ignored), and the caller's eval breaker tripped.
///
/// # Safety
/// GIL held; `ts` is this thread's state and `tracing()`.
#[cold]
pub unsafe fn function_exit(ts: ThreadState, result: PyResult<Value>) -> PyResult<Value> {
    let r = match result {
        Ok(mut v) => match v.box_in_place() {
            Ok(()) => trace_function_exit(ts, v.as_ptr()).map(|()| v),
            Err(Raised) => Err(Raised),
        },
        Err(Raised) => {
            let _ = trace_function_exit(ts, std::ptr::null_mut());
            Err(Raised)
        }
    };
    // Tripped after the event: the hook's own Python code runs in CPython's loop, whose
    // eval breaker checks would take the pending call (and a caller that called through
    // a helper would miss that the hook is on: its `c_call` events went missing).
    trip();
    r
}

/// The exit of a callee emitted inline (its frame the innermost, `out` its result when
/// `status` is 0): as `function_exit`. Returns whether a hook is on (then the caller
/// leaves for tier 1 after the call), with 2 added if the event raised.
///
/// # Safety
/// GIL held; called from native code before the callee's frame is popped.
pub unsafe extern "C" fn inline_exit(out: *mut Value, status: i64) -> i64 {
    let ts = ThreadState::current();
    if !ts.tracing() {
        return 0;
    }
    let r = if status == 0 {
        function_exit(ts, Ok(std::mem::take(&mut *out))).map(|v| *out = v)
    } else {
        function_exit(ts, Err(Raised)).map(|_| ())
    };
    match r {
        Ok(()) => 1,
        Err(Raised) if status == 0 => 3,
        Err(Raised) => 1,
    }
}

/// A call of a C function from tier 1 with a hook on (CPython's `trace_call_function` and
/// `C_TRACE`): `c_call`, then the call, then `c_return` or `c_exception`, each to the
/// profile function, naming the builtin (a method descriptor is bound to its `self`
/// first). Anything else is called plainly. Returns a new reference or NULL.
///
/// # Safety
/// GIL held; the arguments as for `PyObject_Vectorcall`, with
/// PY_VECTORCALL_ARGUMENTS_OFFSET set.
pub unsafe fn call_c(
    ts: ThreadState,
    func: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let nargs = ffi::PyVectorcall_NARGS(nargsf) as usize;
    let t = ffi::Py_TYPE(func);
    let cfunc = t == std::ptr::addr_of_mut!(ffi::PyCFunction_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyCMethod_Type);
    if cfunc {
        return c_trace(ts, func, func, args, nargsf, kwnames);
    }
    if t == std::ptr::addr_of_mut!(ffi::PyMethodDescr_Type) && nargs > 0 {
        let slf = *args;
        let Some(get) = (*t).tp_descr_get else {
            return ffi::PyObject_Vectorcall(func, args, nargsf, kwnames);
        };
        let bound = get(func, slf, ffi::Py_TYPE(slf) as *mut ffi::PyObject);
        if bound.is_null() {
            return std::ptr::null_mut();
        }
        let r = c_trace(ts, bound, bound, args.add(1), nargs - 1, kwnames);
        ffi::Py_DECREF(bound);
        return r;
    }
    ffi::PyObject_Vectorcall(func, args, nargsf, kwnames)
}

/// `C_TRACE`: calls `callee` with the events naming `func`.
unsafe fn c_trace(
    ts: ThreadState,
    func: *mut ffi::PyObject,
    callee: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let prof = ts.profile_hook();
    if prof.0.is_null() {
        return ffi::PyObject_Vectorcall(callee, args, nargsf, kwnames);
    }
    if call_trace(ts, prof, ffi::PyTrace_C_CALL, func).is_err() {
        return std::ptr::null_mut();
    }
    let x = ffi::PyObject_Vectorcall(callee, args, nargsf, kwnames);
    let prof = ts.profile_hook();
    if prof.0.is_null() {
        return x;
    }
    if x.is_null() {
        let _ = call_trace_protected(ts, prof, ffi::PyTrace_C_EXCEPTION, func);
        return x;
    }
    if call_trace(ts, prof, ffi::PyTrace_C_RETURN, func).is_err() {
        ffi::Py_DECREF(x);
        return std::ptr::null_mut();
    }
    x
}

/// Line tracing of a tier-1 activation that saw a hook come on: the offset of the last
/// instruction run (CPython's `instr_prev`), and the offsets that have ops, sorted.
pub struct Lines {
    last_offset: u32,
    op_offsets: Vec<u32>,
}

impl Lines {
    /// From instruction offset `offset` (the one that ran when the hook came on) of `c`.
    pub fn new(c: &crate::runtime::Compiled, offset: u32) -> Lines {
        let mut op_offsets: Vec<u32> = c.linear.insts.iter().map(|i| i.offset).collect();
        op_offsets.sort_unstable();
        op_offsets.dedup();
        Lines {
            last_offset: offset,
            op_offsets,
        }
    }

    /// Before the op at `offset` runs (its frame current): a `line` event if it starts a
    /// new line or is reached by a backward jump (`maybe_call_line_trace`), when the frame
    /// has a trace function that wants lines. Bytecode between the last op and this one
    /// that became no op (a `try:` line's NOP) ran too when nothing between has an op
    /// (CPython fell through it rather than jumping over code): each new line there gets
    /// its event, with the frame marked there (`mark`). `sync` makes the locals current.
    ///
    /// # Safety
    /// GIL held; `ts` this thread's state; the activation's frame is the innermost.
    pub unsafe fn before(
        &mut self,
        ts: ThreadState,
        code: *mut ffi::PyObject,
        offset: u32,
        sync: impl Fn() -> PyResult<()>,
        mark: impl Fn(u32),
    ) -> PyResult<()> {
        let prev = self.last_offset;
        if offset == prev {
            return Ok(());
        }
        self.last_offset = offset;
        if !wants_lines(ts) {
            return Ok(());
        }
        let mut last_line = line_of(code, prev);
        let after_prev = self.op_offsets.partition_point(|&o| o <= prev);
        let fell_through = offset > prev && self.op_offsets.get(after_prev) == Some(&offset);
        if fell_through {
            for unit in prev + 1..offset {
                let l = line_of(code, unit);
                if l != -1 && l != last_line {
                    last_line = l;
                    sync()?;
                    mark(unit);
                    let r = call_trace(ts, ts.trace_hook(), ffi::PyTrace_LINE, ffi::Py_None());
                    mark(offset);
                    r?;
                }
            }
        }
        let line = line_of(code, offset);
        if line == -1 || (line == last_line && offset > prev) {
            return Ok(());
        }
        sync()?;
        call_trace(ts, ts.trace_hook(), ffi::PyTrace_LINE, ffi::Py_None())
    }
}

/// Whether the trace function is on and the innermost frame (ours) has its own trace
/// function taking line events (else the hook, `trace_trampoline`, would drop them).
unsafe fn wants_lines(ts: ThreadState) -> bool {
    if ts.trace_hook().0.is_null() || ts.in_hook() {
        return false;
    }
    let f = (*(*ts.cframe()).current_frame).frame_obj as *mut crate::cpy::frame::FrameObject;
    !f.is_null() && !(*f).f_trace.is_null() && (*f).f_trace_lines != 0
}

/// The line of code unit `offset` of `code`, or -1.
unsafe fn line_of(code: *mut ffi::PyObject, offset: u32) -> c_int {
    ffi::PyCode_Addr2Line(code as *mut ffi::PyCodeObject, (offset * 2) as c_int)
}

/// CPython's `call_exc_trace`: a new exception in a tier-1 activation, with a trace
/// function on, is reported to it as `(type, value, traceback)`; if the trace function
/// raises, its exception replaces the original.
///
/// # Safety
/// GIL held; an exception set; the activation's frame is the innermost.
#[cold]
pub unsafe fn exception(ts: ThreadState) {
    let hook = ts.trace_hook();
    if hook.0.is_null() {
        return;
    }
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    if v.is_null() {
        v = ffi::Py_None();
        ffi::Py_INCREF(v);
    }
    ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
    let shown = if tb.is_null() { ffi::Py_None() } else { tb };
    let arg = ffi::PyTuple_Pack(3, t, v, shown);
    if arg.is_null() {
        ffi::PyErr_Restore(t, v, tb);
        return;
    }
    let r = call_trace(ts, hook, ffi::PyTrace_EXCEPTION, arg);
    ffi::Py_DECREF(arg);
    match r {
        Ok(()) => ffi::PyErr_Restore(t, v, tb),
        Err(Raised) => {
            ffi::Py_XDECREF(t);
            ffi::Py_XDECREF(v);
            ffi::Py_XDECREF(tb);
        }
    }
}
