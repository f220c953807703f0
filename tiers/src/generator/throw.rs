//! Exceptions thrown into a generator of ours: `throw()`, `close()` (CPython's
//! `_gen_throw`, `gen_close`), passed on to the iterator it delegates to (`yield from`,
//! `await`) first, as CPython does, else raised at its yield in our tiers.

use super::step::send_value;
use super::{awaiting, is_ours, Kind};
use crate::cpy::gen as g;
use crate::cpy::ThreadState;
use crate::native::helpers::guarded;
use pyo3_ffi as ffi;
use std::os::raw::c_int;

extern "C" {
    fn _PyGen_FetchStopIterationValue(pvalue: *mut *mut ffi::PyObject) -> c_int;
}

/// The iterator a suspended generator or coroutine delegates to (`yield from`, `await`),
/// borrowed from the top of its frame's stack; NULL if none (CPython's `_PyGen_yf`).
///
/// # Safety
/// GIL held; `gen` a live generator or coroutine.
pub(super) unsafe fn yield_from(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    if !awaiting(gen) {
        return std::ptr::null_mut();
    }
    let f = g::iframe(gen);
    match (*f).stacktop {
        n if n > 0 => (*f).localsplus(n as usize)[n as usize - 1],
        _ => std::ptr::null_mut(),
    }
}

/// `gen.throw(typ[, val[, tb]])`.
pub(super) unsafe extern "C" fn throw_method(
    gen: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let all = std::slice::from_raw_parts(args, nargs.max(0) as usize);
        throw_args(gen, all, true)
    })
}

/// `throw()`'s arguments checked (`gen_throw`), then thrown into `gen`.
pub(super) unsafe fn throw_args(
    gen: *mut ffi::PyObject,
    all: &[*mut ffi::PyObject],
    close_on_genexit: bool,
) -> *mut ffi::PyObject {
    let nargs = all.len();
    if !(1..=3).contains(&nargs) {
        let msg = if nargs < 1 {
            format!("throw expected at least 1 argument, got {nargs}")
        } else {
            format!("throw expected at most 3 arguments, got {nargs}")
        };
        crate::ops::raise(ffi::PyExc_TypeError, &msg);
        return std::ptr::null_mut();
    }
    let arg = |i: usize| all.get(i).copied().unwrap_or(std::ptr::null_mut());
    throw_into(gen, close_on_genexit, all[0], arg(1), arg(2))
}

/// CPython's `_gen_throw` for a generator of ours: the exception goes to the iterator it
/// delegates to, if any (a GeneratorExit closes that iterator instead when
/// `close_on_genexit`, as `throw()` asks and an async generator's `athrow()` does not);
/// else it is raised at the yield. What the step yields or returns, as `send_value`.
pub(crate) unsafe fn throw_into(
    gen: *mut ffi::PyObject,
    close_on_genexit: bool,
    typ: *mut ffi::PyObject,
    val: *mut ffi::PyObject,
    tb: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let yf = yield_from(gen);
    if yf.is_null() {
        return throw_here(gen, typ, val, tb);
    }
    ffi::Py_INCREF(yf);
    if close_on_genexit && ffi::PyErr_GivenExceptionMatches(typ, ffi::PyExc_GeneratorExit) != 0 {
        let closed = delegating(gen, || close_iter(yf));
        ffi::Py_DECREF(yf);
        return match closed {
            true => throw_here(gen, typ, val, tb),
            // The error closing it is thrown in instead.
            false => send_value(gen, ffi::Py_None(), true, false),
        };
    }
    let ret = if is_generator(yf) {
        // A traceback through the delegation shows this frame (CPython links it too).
        let cf = ThreadState::current().cframe();
        let f = g::iframe(gen);
        let prev = (*cf).current_frame;
        (*f).previous = prev;
        (*cf).current_frame = f;
        // CPython's own generators get their `throw` method (`_gen_throw` is not
        // exported), which closes on GeneratorExit: only `athrow()` asks otherwise, and
        // it reaches a delegate only if the generator runs asynchronously, which it
        // refuses first.
        let ret = delegating(gen, || match is_ours(yf) {
            true => throw_into(yf, close_on_genexit, typ, val, tb),
            false => call_with(yf, c"throw", &[typ, val, tb]),
        });
        (*cf).current_frame = prev;
        (*f).previous = std::ptr::null_mut();
        ret
    } else {
        let mut meth = std::ptr::null_mut();
        let name = ffi::PyUnicode_InternFromString(c"throw".as_ptr());
        let found = match name.is_null() {
            true => -1,
            false => crate::cpy::_PyObject_LookupAttr(yf, name, &mut meth),
        };
        ffi::Py_XDECREF(name);
        if found < 0 {
            ffi::Py_DECREF(yf);
            return std::ptr::null_mut();
        }
        if meth.is_null() {
            ffi::Py_DECREF(yf);
            return throw_here(gen, typ, val, tb);
        }
        let ret = delegating(gen, || call(meth, &[typ, val, tb]));
        ffi::Py_DECREF(meth);
        ret
    };
    ffi::Py_DECREF(yf);
    if !ret.is_null() {
        return ret;
    }
    // The delegate finished (or raised): it leaves the stack, and the frame goes on after
    // the `yield from` loop (SEND's target), with its return value or the exception.
    let f = g::iframe(gen);
    let n = (*f).stacktop;
    let send = *(*f).prev_instr.sub(1);
    if n < 1
        || tiered_frontend::opcodes::DEOPT[(send & 0xff) as usize]
            != tiered_frontend::opcodes::op::SEND
    {
        crate::ops::raise(
            ffi::PyExc_SystemError,
            "tiered: a delegating generator is not at its SEND",
        );
        return std::ptr::null_mut();
    }
    let top = std::mem::replace(
        &mut (*f).localsplus(n as usize)[n as usize - 1],
        std::ptr::null_mut(),
    );
    (*f).stacktop = n - 1;
    ffi::Py_XDECREF(top);
    (*f).prev_instr = (*f).prev_instr.add((send >> 8) as usize).sub(1);
    let mut v = std::ptr::null_mut();
    if _PyGen_FetchStopIterationValue(&mut v) == 0 {
        let r = send_value(gen, v, false, false);
        ffi::Py_DECREF(v);
        r
    } else {
        send_value(gen, ffi::Py_None(), true, false)
    }
}

/// Runs `body` with `gen` marked as executing (while it passes something on to its
/// delegate).
unsafe fn delegating<T>(gen: *mut ffi::PyObject, body: impl FnOnce() -> T) -> T {
    let h = g::head(gen);
    let state = h.gi_frame_state;
    h.gi_frame_state = g::FRAME_EXECUTING;
    let r = body();
    h.gi_frame_state = state;
    r
}

/// Whether `o` is a generator or coroutine, CPython's or ours (their `throw` and `close`
/// are called directly; anything else's are looked up).
unsafe fn is_generator(o: *mut ffi::PyObject) -> bool {
    let t = ffi::Py_TYPE(o);
    t == std::ptr::addr_of_mut!(ffi::PyGen_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyCoro_Type)
        || (is_ours(o) && Kind::of(o) != Kind::AsyncGenerator)
}

/// The exception raised at the yield: `throw()`'s arguments checked and normalized
/// (`_gen_throw`'s `throw_here`), then one step with it.
unsafe fn throw_here(
    gen: *mut ffi::PyObject,
    typ: *mut ffi::PyObject,
    val: *mut ffi::PyObject,
    tb: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if !raise_thrown(typ, val, tb) {
        return std::ptr::null_mut();
    }
    send_value(gen, ffi::Py_None(), true, false)
}

/// `o.name(*args)` with `args` up to the first NULL (`PyObject_CallMethodObjArgs`).
unsafe fn call_with(
    o: *mut ffi::PyObject,
    name: &std::ffi::CStr,
    args: &[*mut ffi::PyObject],
) -> *mut ffi::PyObject {
    let m = ffi::PyObject_GetAttrString(o, name.as_ptr());
    if m.is_null() {
        return m;
    }
    let r = call(m, args);
    ffi::Py_DECREF(m);
    r
}

/// `f(*args)` with `args` up to the first NULL (`PyObject_CallFunctionObjArgs`).
unsafe fn call(f: *mut ffi::PyObject, args: &[*mut ffi::PyObject]) -> *mut ffi::PyObject {
    let n = args.iter().position(|a| a.is_null()).unwrap_or(args.len());
    ffi::PyObject_Vectorcall(f, args.as_ptr(), n, std::ptr::null_mut())
}

/// `_gen_throw`'s checks and normalization of `throw()`'s arguments, then the exception
/// set; false (with a TypeError set) if they cannot be raised.
unsafe fn raise_thrown(
    mut typ: *mut ffi::PyObject,
    mut val: *mut ffi::PyObject,
    mut tb: *mut ffi::PyObject,
) -> bool {
    if tb == ffi::Py_None() {
        tb = std::ptr::null_mut();
    } else if !tb.is_null() && ffi::PyTraceBack_Check(tb) == 0 {
        crate::ops::raise(
            ffi::PyExc_TypeError,
            "throw() third argument must be a traceback object",
        );
        return false;
    }
    ffi::Py_INCREF(typ);
    ffi::Py_XINCREF(val);
    ffi::Py_XINCREF(tb);
    if ffi::PyExceptionClass_Check(typ) != 0 {
        ffi::PyErr_NormalizeException(&mut typ, &mut val, &mut tb);
    } else if ffi::PyExceptionInstance_Check(typ) != 0 {
        if !val.is_null() && val != ffi::Py_None() {
            crate::ops::raise(
                ffi::PyExc_TypeError,
                "instance exception may not have a separate value",
            );
            ffi::Py_DECREF(typ);
            ffi::Py_XDECREF(val);
            ffi::Py_XDECREF(tb);
            return false;
        }
        ffi::Py_XDECREF(val);
        val = typ;
        typ = ffi::Py_TYPE(val) as *mut ffi::PyObject;
        ffi::Py_INCREF(typ);
        if tb.is_null() {
            tb = ffi::PyException_GetTraceback(val);
        }
    } else {
        let msg = format!(
            "exceptions must be classes or instances deriving from BaseException, not {}",
            crate::ops::type_name(typ)
        );
        ffi::Py_DECREF(typ);
        ffi::Py_XDECREF(val);
        ffi::Py_XDECREF(tb);
        crate::ops::raise(ffi::PyExc_TypeError, &msg);
        return false;
    }
    ffi::PyErr_Restore(typ, val, tb);
    true
}

/// `gen.close()`.
pub(super) unsafe extern "C" fn close_method(
    gen: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || close(gen))
}

/// CPython's `gen_close`: closes the iterator it delegates to, then raises GeneratorExit
/// at the yield (or the error closing that raised); None once the generator is finished,
/// a RuntimeError if it yields instead.
pub(crate) unsafe fn close(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let yf = yield_from(gen);
    let mut closed = true;
    if !yf.is_null() {
        ffi::Py_INCREF(yf);
        closed = delegating(gen, || close_iter(yf));
        ffi::Py_DECREF(yf);
    }
    if closed {
        ffi::PyErr_SetNone(ffi::PyExc_GeneratorExit);
    }
    let r = send_value(gen, ffi::Py_None(), true, true);
    if !r.is_null() {
        ffi::Py_DECREF(r);
        let msg = format!("{} ignored GeneratorExit", Kind::of(gen).name());
        crate::ops::raise(ffi::PyExc_RuntimeError, &msg);
        return std::ptr::null_mut();
    }
    if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) != 0
        || ffi::PyErr_ExceptionMatches(ffi::PyExc_GeneratorExit) != 0
    {
        ffi::PyErr_Clear();
        ffi::Py_INCREF(ffi::Py_None());
        return ffi::Py_None();
    }
    std::ptr::null_mut()
}

/// CPython's `gen_close_iter`: `yf.close()` if it has one; false with its error set if
/// that raised.
unsafe fn close_iter(yf: *mut ffi::PyObject) -> bool {
    let r = if is_generator(yf) {
        match is_ours(yf) {
            true => close(yf),
            false => call_with(yf, c"close", &[]),
        }
    } else {
        let mut meth = std::ptr::null_mut();
        let name = ffi::PyUnicode_InternFromString(c"close".as_ptr());
        if name.is_null() || crate::cpy::_PyObject_LookupAttr(yf, name, &mut meth) < 0 {
            ffi::PyErr_WriteUnraisable(yf);
        }
        ffi::Py_XDECREF(name);
        if meth.is_null() {
            return true;
        }
        let r = call(meth, &[]);
        ffi::Py_DECREF(meth);
        r
    };
    if r.is_null() {
        return false;
    }
    ffi::Py_DECREF(r);
    true
}
