//! Exceptions leaving or crossing tiered code: a traceback line for the function (as
//! CPython's eval loop adds one per frame), and the normalized exception for handlers.

use crate::interp::Ctx;
use crate::value::Value;
use pyo3_ffi as ffi;

/// Adds a traceback entry for the running function's frame at instruction `pc`, as
/// CPython does when an error first passes through a frame: the real frame object, so
/// `tb_lineno`, `tb_lasti` (3.11's column carets) and `tb_frame.f_locals` are CPython's.
/// Keeps the current exception.
///
/// # Safety
/// GIL held, an exception set, `ctx`'s frame the thread's innermost.
pub unsafe fn add_frame(ctx: &Ctx, pc: usize) {
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // Making the frame object must not run with an exception set: park it.
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    ctx.at(pc);
    // The frame object only: its locals are read through `f_locals` while the
    // activation runs, and synced as it is popped (`activation::sync_at_pop`).
    let frame = crate::cpy::frame::current_frame_object();
    if frame.is_null() {
        // Out of memory while building a traceback: keep the original exception.
        ffi::PyErr_Clear();
        ffi::PyErr_Restore(t, v, tb);
        return;
    }
    ffi::PyErr_Restore(t, v, tb);
    ffi::PyTraceBack_Here(frame as *mut ffi::PyFrameObject);
}

/// Takes the current exception, normalized, with its traceback attached (what 3.11 pushes
/// for a handler).
///
/// # Safety
/// GIL held and an exception set.
pub unsafe fn fetch_normalized() -> Value {
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
    if !v.is_null() {
        ffi::PyException_SetTraceback(v, if tb.is_null() { ffi::Py_None() } else { tb });
    }
    ffi::Py_XDECREF(t);
    ffi::Py_XDECREF(tb);
    Value::from_owned(v).unwrap_or(Value::Null)
}
