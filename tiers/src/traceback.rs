//! Exceptions leaving or crossing tiered code: a traceback line for the function (as
//! CPython's eval loop adds one per frame), and the normalized exception for handlers.

use crate::interp::Ctx;
use crate::value::Value;
use pyo3_ffi as ffi;

/// Adds a traceback entry for the running function at `offset`'s line, as CPython does when
/// an error first passes through a frame. Keeps the current exception.
///
/// # Safety
/// GIL held and an exception set.
pub unsafe fn add_frame(ctx: &Ctx, offset: u32) {
    let c = ctx.compiled;
    let line = c
        .lines
        .line_at(offset)
        .map(|l| l as i32)
        .unwrap_or(c.objects.firstlineno);
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // PyFrame_New must not run with an exception set: park it.
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    let tstate = ffi::PyThreadState_Get();
    let frame = match c.tb_code(line) {
        Ok(code) => ffi::PyFrame_New(
            tstate,
            code as *mut ffi::PyCodeObject,
            ctx.globals,
            std::ptr::null_mut(),
        ),
        Err(_) => std::ptr::null_mut(),
    };
    if frame.is_null() {
        // Out of memory while building a traceback: keep the original exception.
        ffi::PyErr_Clear();
        ffi::PyErr_Restore(t, v, tb);
        return;
    }
    // SAFETY: frame is a fresh 3.11 PyFrameObject, whose head `FrameHead` mirrors.
    (*(frame as *mut crate::cpy::FrameHead)).f_lineno = line;
    ffi::PyErr_Restore(t, v, tb);
    ffi::PyTraceBack_Here(frame);
    ffi::Py_DECREF(frame as *mut ffi::PyObject);
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
