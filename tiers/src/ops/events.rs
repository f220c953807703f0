//! Interpreter events: the eval breaker check (EvalBreaker), made where CPython 3.11's eval
//! loop makes it, in tier 1 and as a native template.

use crate::native::emit::{mem, Emit};
use crate::runtime::GilCell;
use crate::value::{PyResult, Raised};
use cranelift_codegen::ir::{types, InstBuilder};
use pyo3_ffi as ffi;

static NOOP: GilCell<*mut ffi::PyObject> = GilCell::new(std::ptr::null_mut());

/// Makes the no-op `handle_eval_breaker` calls (at import: made later, making it would run
/// the pending work itself, outside the no-op). Call once, with the GIL held.
///
/// # Safety
/// GIL held.
pub unsafe fn init() -> PyResult<()> {
    let f = make_noop();
    if f.is_null() {
        return Err(Raised);
    }
    NOOP.with(|n| *n = f);
    Ok(())
}

/// What CPython's eval loop does when it finds the eval breaker set, done by CPython
/// itself: a Python no-op is called, whose RESUME finds the breaker set and handles
/// everything (`eval_frame_handle_pending`: signal handlers, pending calls, a GIL drop
/// request, another thread's exception), exactly as at any of CPython's own checks.
/// Any exception raised there is set on return, without the no-op's traceback entry.
///
/// # Safety
/// GIL held; `init` ran.
#[cold]
#[inline(never)]
pub(crate) unsafe fn handle_eval_breaker() -> PyResult<()> {
    let f = NOOP.with(|f| *f);
    // With a trace or profile hook on, the no-op itself is not reported to it (as while a
    // hook runs: `tracing`).
    let ts = crate::cpy::ThreadState::current();
    let hooked = ts.tracing();
    if hooked {
        ffi::PyThreadState_EnterTracing(ts.as_ptr());
    }
    let r = ffi::PyObject_CallNoArgs(f);
    if hooked {
        ffi::PyThreadState_LeaveTracing(ts.as_ptr());
    }
    if !r.is_null() {
        ffi::Py_DECREF(r);
        return Ok(());
    }
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    // The first entry is the no-op's own frame (the exception came out of its RESUME); any
    // after it (a signal handler's frames) stay, as they would under CPython.
    if !tb.is_null() {
        let code = ffi::PyObject_GetAttrString(f, c"__code__".as_ptr());
        let frame = ffi::PyObject_GetAttrString(tb, c"tb_frame".as_ptr());
        let fcode = if frame.is_null() {
            std::ptr::null_mut()
        } else {
            ffi::PyObject_GetAttrString(frame, c"f_code".as_ptr())
        };
        if !code.is_null() && code == fcode {
            let next = ffi::PyObject_GetAttrString(tb, c"tb_next".as_ptr());
            ffi::Py_DECREF(tb);
            tb = if next.is_null() || next == ffi::Py_None() {
                ffi::Py_XDECREF(next);
                std::ptr::null_mut()
            } else {
                next
            };
        }
        ffi::Py_XDECREF(code);
        ffi::Py_XDECREF(frame);
        ffi::Py_XDECREF(fcode);
        ffi::PyErr_Clear();
    }
    ffi::PyErr_Restore(t, v, tb);
    Err(Raised)
}

/// `lambda: None`, compiled once: its RESUME is the eval breaker check.
unsafe fn make_noop() -> *mut ffi::PyObject {
    let code = ffi::Py_CompileString(
        c"lambda: None".as_ptr(),
        c"<tiered>".as_ptr(),
        ffi::Py_eval_input,
    );
    if code.is_null() {
        return std::ptr::null_mut();
    }
    let mut f = std::ptr::null_mut();
    let globals = ffi::PyDict_New();
    if !globals.is_null() {
        ffi::PyDict_SetItemString(globals, c"__builtins__".as_ptr(), ffi::PyEval_GetBuiltins());
        f = ffi::PyEval_EvalCode(code, globals, globals);
        ffi::Py_DECREF(globals);
    }
    ffi::Py_DECREF(code);
    f
}

/// The native template of EvalBreaker: the breaker and the thread's `use_tracing` (a trace
/// or profile hook came on: `tracing`) loaded and a branch; when either is set the op runs
/// in tier 1 (its slow path, which then leaves for tier 1 if a hook is on). Nothing is emitted right after a direct native call
/// of Python code (as in CPython, the callee checked at its entry), nor inside a
/// callee emitted inline: it is loop-free and short, so the caller's next check comes
/// within a few ops (measured: the check at an inlined callee's entry cost flat_rep(7)
/// 21 instructions per iteration, 12%, through register pressure in the loop).
pub(crate) fn emit_eval_breaker(e: &mut Emit, pc: usize) -> Option<&'static str> {
    let check = check_at(e.c, pc);
    if check != Check::None && !e.inlining() {
        let slow = e.slow_block();
        let addr =
            e.b.ins()
                .iconst(e.ptr, crate::cpy::eval_breaker_addr() as i64);
        let mut set = e.b.ins().load(types::I32, mem(), addr, 0);
        if check == Check::BreakerAndHooks {
            let cframe = e.cframe();
            let tracing = e.b.ins().uload8(
                types::I32,
                mem(),
                cframe,
                crate::cpy::frame::CFRAME_USE_TRACING,
            );
            set = e.b.ins().bor(set, tracing);
        }
        e.fail_if(set, slow);
    }
    Some("EvalBreaker")
}

/// What native code's EvalBreaker checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing, right after a direct native call of Python code: as in CPython, the
    /// callee checked at its entry (a callee run through a helper may have left a trace or
    /// profile hook on: `tracing`).
    None,
    /// The breaker, at a RESUME's (the function's start, a generator's resumption): a hook
    /// on then was seen by the entry, which runs the code in CPython or tier 1.
    Breaker,
    /// The breaker and the thread's `use_tracing`, at a loop's check or after a call: a
    /// hook may have come on since the code was entered.
    BreakerAndHooks,
}

/// What EvalBreaker `pc` of native code `c` checks.
pub(crate) fn check_at(c: &crate::runtime::Compiled, pc: usize) -> Check {
    use crate::lower::LKind;
    use tiered_ir::Op;
    let call = call_before(c, pc).filter(|&call| {
        matches!(
            c.linear.insts[call].kind,
            LKind::Op(Op::Call { .. } | Op::CallEx { .. })
        )
    });
    if let Some(call) = call {
        // SAFETY: compiling, with the GIL held.
        let direct = matches!(c.linear.insts[call].kind, LKind::Op(Op::Call { .. }))
            && !unsafe { crate::ops::calls::directs(c, call) }.is_empty();
        if direct {
            return Check::None;
        }
        return Check::BreakerAndHooks;
    }
    match c.linear.in_cycle[pc] {
        true => Check::BreakerAndHooks,
        false => Check::Breaker,
    }
}

/// The op before EvalBreaker `pc`, past the Drop releasing a call's operands.
fn call_before(c: &crate::runtime::Compiled, pc: usize) -> Option<usize> {
    match pc.checked_sub(1).map(|p| c.linear.insts[p].kind) {
        Some(crate::lower::LKind::Drop { .. }) => pc.checked_sub(2),
        _ => pc.checked_sub(1),
    }
}
