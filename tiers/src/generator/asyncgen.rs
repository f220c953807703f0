//! Async generators in our tiers.
//!
//! An async generator of ours is a subtype of CPython's, laid out as its generators are
//! (`mod.rs`). CPython drives one through the awaitables its `__anext__()`, `asend()`,
//! `athrow()` and `aclose()` return, whose methods call the generator's step functions
//! directly, not through its type; so ours returns awaitables of our own (subtypes of
//! CPython's, laid out alike), which step it with `step::send_value` and
//! `throw::throw_into`: the body runs in our tiers. Their state machines are CPython's
//! (Objects/genobject.c), and so are the hooks of `sys.set_asyncgen_hooks` (firstiter at
//! the first step, the finalizer when an unfinished one is collected) and every message.

use super::step::{_PyGen_SetStopIterationValue, am_send, send_value};
use super::throw::{close, throw_args, throw_into};
use super::{ready, subtype};
use crate::cpy::gen::{self as g, AsyncGenAwaitable};
use crate::cpy::ThreadState;
use crate::native::helpers::guarded;
use crate::runtime::GilCell;
use crate::value::PyResult;
use pyo3_ffi as ffi;
use std::os::raw::c_int;

/// Our async generator type and its awaitables' (made once, at import, by `install`).
pub(super) static mut TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
static mut ASEND_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
static mut ATHROW_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();

/// Makes the types.
///
/// # Safety
/// GIL held; once, at import (from `generator::install`).
pub(super) unsafe fn install() -> PyResult<()> {
    let agen = subtype(
        std::ptr::addr_of_mut!(ffi::PyAsyncGen_Type),
        &[
            method(
                c"asend",
                ffi::METH_O,
                asend,
                c"asend(v) -> send 'v' in generator.",
            ),
            method(
                c"athrow",
                ffi::METH_VARARGS,
                athrow,
                c"athrow(typ[,val[,tb]]) -> raise exception in generator.",
            ),
            method(
                c"aclose",
                ffi::METH_NOARGS,
                aclose,
                c"aclose() -> raise GeneratorExit inside generator.",
            ),
        ],
    )?;
    (*(*agen).tp_as_async).am_anext = Some(anext);
    (*(*agen).tp_as_async).am_send = Some(am_send);
    (*agen).tp_finalize = Some(finalize);
    (*agen).tp_dealloc = Some(super::dealloc);
    ready(agen)?;
    let awaitable_methods = |send: MethO, throw, close: MethO| {
        [
            method(c"send", ffi::METH_O, send, c"send(arg) -> send 'arg' into generator,\nreturn next yielded value or raise StopIteration."),
            ffi::PyMethodDef {
                ml_name: c"throw".as_ptr(),
                ml_meth: ffi::PyMethodDefPointer {
                    PyCFunctionFast: throw,
                },
                ml_flags: ffi::METH_FASTCALL,
                ml_doc: c"throw(value)\nthrow(type[,value[,tb]])\n\nRaise exception in generator, return next yielded value or raise\nStopIteration.".as_ptr(),
            },
            method(c"close", ffi::METH_NOARGS, close, c"close() -> raise GeneratorExit inside generator."),
        ]
    };
    let asend_type = subtype(
        std::ptr::addr_of_mut!(g::_PyAsyncGenASend_Type),
        &awaitable_methods(asend_send, asend_throw, awaitable_close),
    )?;
    (*asend_type).tp_iternext = Some(asend_iternext);
    // CPython's puts the object on a free list that CPython's `asend()` reuses.
    (*asend_type).tp_dealloc = Some(awaitable_dealloc);
    ready(asend_type)?;
    let athrow_type = subtype(
        std::ptr::addr_of_mut!(g::_PyAsyncGenAThrow_Type),
        &awaitable_methods(athrow_send, athrow_throw, awaitable_close),
    )?;
    (*athrow_type).tp_iternext = Some(athrow_iternext);
    (*athrow_type).tp_dealloc = Some(awaitable_dealloc);
    ready(athrow_type)?;
    TYPE = agen;
    ASEND_TYPE = asend_type;
    ATHROW_TYPE = athrow_type;
    Ok(())
}

type MethO = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;

fn method(
    name: &'static std::ffi::CStr,
    flags: std::os::raw::c_int,
    f: MethO,
    doc: &'static std::ffi::CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: f },
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }
}

/// Whether `o` is an async generator of ours.
#[inline]
pub(crate) fn is_our_async_generator(o: *mut ffi::PyObject) -> bool {
    // SAFETY: reading an object's type pointer; the type is written once at import.
    unsafe { !TYPE.is_null() && ffi::Py_TYPE(o) == TYPE }
}

/// Our async generator type with its `__anext__` slot, and the type of the awaitable
/// `__anext__()` and `asend()` return (None before `install`), for native code's
/// templates (GetAnext for `async for`, GetAwaitable for `await agen.__anext__()`).
pub(crate) fn native_entries() -> Option<(*mut ffi::PyTypeObject, usize, *mut ffi::PyTypeObject)> {
    // SAFETY: written once, at import, before any code is compiled.
    unsafe {
        (!TYPE.is_null() && !ASEND_TYPE.is_null()).then_some((
            TYPE,
            anext as unsafe extern "C" fn(*mut ffi::PyObject) -> *mut ffi::PyObject as usize,
            ASEND_TYPE,
        ))
    }
}

/// `async_gen_init_hooks`: at the first `__anext__()`, `asend()`, `athrow()` or
/// `aclose()`, the thread's finalizer is kept and its firstiter hook called.
unsafe fn init_hooks(gen: *mut ffi::PyObject) -> bool {
    let h = g::head(gen);
    if h.gi_hooks_inited != 0 {
        return true;
    }
    h.gi_hooks_inited = 1;
    let Ok([firstiter, finalizer]) = ThreadState::current().asyncgen_hooks() else {
        return false;
    };
    if !finalizer.is_null() {
        h.gi_origin_or_finalizer = finalizer;
    }
    if firstiter.is_null() {
        return true;
    }
    let r = ffi::PyObject_CallOneArg(firstiter, gen);
    ffi::Py_DECREF(firstiter);
    if r.is_null() {
        return false;
    }
    ffi::Py_DECREF(r);
    true
}

/// Released `__anext__()`/`asend()` awaitables kept for the next ones, as CPython keeps its
/// own (`ag_asend_freelist`, up to 80): every step of an `async for` makes one, and
/// allocating and freeing it (a GC object) cost async_generators more than a tenth of
/// its time.
static FREE_ASEND: GilCell<Vec<*mut AsyncGenAwaitable>> = GilCell::new(Vec::new());

/// How many released awaitables `FREE_ASEND` keeps (CPython's `_PyAsyncGen_MAXFREELIST`).
const MAX_FREE_ASEND: usize = 80;

/// A new awaitable of type `t` driving `gen` with `arg`.
unsafe fn awaitable(
    t: *mut ffi::PyTypeObject,
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if !init_hooks(gen) {
        return std::ptr::null_mut();
    }
    let reused = match t == ASEND_TYPE {
        true => FREE_ASEND.with(|f| f.pop()),
        false => None,
    };
    let o: *mut AsyncGenAwaitable = match reused {
        Some(o) => {
            g::revive(o as *mut ffi::PyObject);
            o
        }
        None => ffi::PyObject_GC_New(t),
    };
    if o.is_null() {
        return std::ptr::null_mut();
    }
    ffi::Py_INCREF(gen);
    ffi::Py_XINCREF(arg);
    (*o).gen = gen;
    (*o).arg = arg;
    (*o).state = g::AWAITABLE_INIT;
    ffi::PyObject_GC_Track(o as *mut std::ffi::c_void);
    o as *mut ffi::PyObject
}

/// `am_anext`: `gen.__anext__()`.
unsafe extern "C" fn anext(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        awaitable(ASEND_TYPE, gen, std::ptr::null_mut())
    })
}

/// `gen.asend(v)`.
unsafe extern "C" fn asend(gen: *mut ffi::PyObject, v: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || awaitable(ASEND_TYPE, gen, v))
}

/// `gen.athrow(typ[, val[, tb]])`.
unsafe extern "C" fn athrow(
    gen: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || awaitable(ATHROW_TYPE, gen, args))
}

/// `gen.aclose()`.
unsafe extern "C" fn aclose(gen: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        awaitable(ATHROW_TYPE, gen, std::ptr::null_mut())
    })
}

/// The awaitable's fields.
unsafe fn fields<'a>(o: *mut ffi::PyObject) -> &'a mut AsyncGenAwaitable {
    &mut *(o as *mut AsyncGenAwaitable)
}

/// `async_gen_unwrap_value`: a step's outcome as the awaitable reports it. A wrapped
/// yield ends the awaitable with StopIteration(value); the end of the generator (or
/// GeneratorExit) marks it closed; anything else passes through (what its `await`s
/// yield).
unsafe fn unwrap(gen: *mut ffi::PyObject, result: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let mut out = std::ptr::null_mut();
    reported(unwrap_step(gen, result, &mut out), out)
}

/// `unwrap` as a step's status: PYGEN_RETURN with the value of a wrapped yield in `*out`
/// (the awaitable's result), PYGEN_NEXT with anything else the step yielded, or
/// PYGEN_ERROR with the exception set.
unsafe fn unwrap_step(
    gen: *mut ffi::PyObject,
    result: *mut ffi::PyObject,
    out: &mut *mut ffi::PyObject,
) -> c_int {
    let h = g::head(gen);
    if result.is_null() {
        if ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_SetNone(ffi::PyExc_StopAsyncIteration);
        }
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopAsyncIteration) != 0
            || ffi::PyErr_ExceptionMatches(ffi::PyExc_GeneratorExit) != 0
        {
            h.gi_closed = 1;
        }
        h.gi_running_async = 0;
        return g::PYGEN_ERROR;
    }
    if let Some(v) = g::wrapped_value(result) {
        ffi::Py_INCREF(v);
        g::release_wrapped(result);
        h.gi_running_async = 0;
        *out = v;
        return g::PYGEN_RETURN;
    }
    *out = result;
    g::PYGEN_NEXT
}

/// A step's status and value as an awaitable's `send()` reports them: what the step
/// yielded, or NULL with StopIteration(value) set for its result (or its exception).
unsafe fn reported(status: c_int, out: *mut ffi::PyObject) -> *mut ffi::PyObject {
    match status {
        g::PYGEN_NEXT => out,
        g::PYGEN_RETURN => {
            _PyGen_SetStopIterationValue(out);
            ffi::Py_DECREF(out);
            std::ptr::null_mut()
        }
        _ => std::ptr::null_mut(),
    }
}

/// `raise RuntimeError(msg)`, NULL.
unsafe fn runtime_error(msg: &str) -> *mut ffi::PyObject {
    crate::ops::raise(ffi::PyExc_RuntimeError, msg);
    std::ptr::null_mut()
}

/// `asend.send(arg)` (and `__next__`, `arg` NULL): one step with `arg` (the first with
/// `asend()`'s value).
unsafe extern "C" fn asend_send(
    o: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let mut out = std::ptr::null_mut();
        reported(asend_step(o, arg, &mut out), out)
    })
}

/// Whether `o` is an `__anext__()`/`asend()` awaitable of ours.
#[inline]
pub(crate) fn is_our_asend(o: *mut ffi::PyObject) -> bool {
    // SAFETY: reading an object's type pointer; the type is written once at import.
    unsafe { !ASEND_TYPE.is_null() && ffi::Py_TYPE(o) == ASEND_TYPE }
}

/// `asend_send` as a step's status (`unwrap_step`): what `yield from` on one of our
/// awaitables takes (`ops::generators::send_raw`) without the StopIteration that
/// `send()` raises for its result and PyIter_Send fetches back. Making, raising and
/// fetching that exception was a third of async_generators' instructions, CPython's
/// included (its own awaitables report their results only so).
///
/// # Safety
/// GIL held; `o` an awaitable of ours (`is_our_asend`), `arg` NULL or live.
pub(crate) unsafe fn asend_step(
    o: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    out: &mut *mut ffi::PyObject,
) -> c_int {
    let a = fields(o);
    let gen = a.gen;
    if a.state == g::AWAITABLE_CLOSED {
        runtime_error("cannot reuse already awaited __anext__()/asend()");
        return g::PYGEN_ERROR;
    }
    let mut arg = arg;
    if a.state == g::AWAITABLE_INIT {
        if g::head(gen).gi_running_async != 0 {
            runtime_error("anext(): asynchronous generator is already running");
            return g::PYGEN_ERROR;
        }
        if arg.is_null() || arg == ffi::Py_None() {
            arg = a.arg;
        }
        a.state = g::AWAITABLE_ITER;
    }
    g::head(gen).gi_running_async = 1;
    let status = unwrap_step(gen, send_value(gen, arg, false, false), out);
    if status != g::PYGEN_NEXT {
        a.state = g::AWAITABLE_CLOSED;
    }
    status
}

unsafe extern "C" fn asend_iternext(o: *mut ffi::PyObject) -> *mut ffi::PyObject {
    asend_send(o, std::ptr::null_mut())
}

/// `asend.throw(...)`: thrown into the generator as its `throw()` would.
unsafe extern "C" fn asend_throw(
    o: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let a = fields(o);
        let Some(r) = thrown_in(a, args, nargs, "__anext__()/asend()") else {
            return std::ptr::null_mut();
        };
        let r = unwrap(a.gen, r);
        if r.is_null() {
            a.state = g::AWAITABLE_CLOSED;
        }
        r
    })
}

/// An awaitable's `throw()`: thrown into its generator as the generator's `throw()`
/// would (what that step gave), unless the awaitable is done (None, with the error that
/// names it, `what`, set).
unsafe fn thrown_in(
    a: &mut AsyncGenAwaitable,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    what: &str,
) -> Option<*mut ffi::PyObject> {
    if a.state == g::AWAITABLE_CLOSED {
        runtime_error(&format!("cannot reuse already awaited {what}"));
        return None;
    }
    let all = std::slice::from_raw_parts(args, nargs.max(0) as usize);
    Some(throw_args(a.gen, all, true))
}

/// `asend.close()` and `athrow.close()`: the awaitable is done.
unsafe extern "C" fn awaitable_close(
    o: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    fields(o).state = g::AWAITABLE_CLOSED;
    ffi::Py_INCREF(ffi::Py_None());
    ffi::Py_None()
}

/// `athrow.send(arg)` (and `__next__`, `arg` None): `async_gen_athrow_send`. The first
/// step throws `athrow()`'s exception (GeneratorExit for `aclose()`) in at the yield;
/// later ones send into the generator's own awaits. `aclose()` ends with StopIteration
/// once the generator finished, and a RuntimeError if it yields again.
unsafe extern "C" fn athrow_send(
    o: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || athrow_step(o, arg))
}

unsafe fn athrow_step(o: *mut ffi::PyObject, arg: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let a = fields(o);
    let gen = a.gen;
    let h = g::head(gen);
    let closing = a.arg.is_null();
    if a.state == g::AWAITABLE_CLOSED {
        return runtime_error("cannot reuse already awaited aclose()/athrow()");
    }
    if h.gi_frame_state >= g::FRAME_COMPLETED {
        a.state = g::AWAITABLE_CLOSED;
        ffi::PyErr_SetNone(ffi::PyExc_StopIteration);
        return std::ptr::null_mut();
    }
    let retval = if a.state == g::AWAITABLE_INIT {
        if h.gi_running_async != 0 {
            a.state = g::AWAITABLE_CLOSED;
            return runtime_error(match closing {
                true => "aclose(): asynchronous generator is already running",
                false => "athrow(): asynchronous generator is already running",
            });
        }
        if h.gi_closed != 0 {
            a.state = g::AWAITABLE_CLOSED;
            ffi::PyErr_SetNone(ffi::PyExc_StopAsyncIteration);
            return std::ptr::null_mut();
        }
        if arg != ffi::Py_None() {
            return runtime_error("can't send non-None value to a just-started coroutine");
        }
        a.state = g::AWAITABLE_ITER;
        h.gi_running_async = 1;
        if closing {
            h.gi_closed = 1;
            // An async generator is not closed at once: its awaits may run on.
            throw_into(
                gen,
                false,
                ffi::PyExc_GeneratorExit,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        } else {
            let mut typ = std::ptr::null_mut();
            let mut val = std::ptr::null_mut();
            let mut tb = std::ptr::null_mut();
            if ffi::PyArg_UnpackTuple(a.arg, c"athrow".as_ptr(), 1, 3, &mut typ, &mut val, &mut tb)
                == 0
            {
                return std::ptr::null_mut();
            }
            return checked(a, unwrap(gen, throw_into(gen, false, typ, val, tb)));
        }
    } else {
        let r = send_value(gen, arg, false, false);
        if !closing {
            return unwrap(gen, r);
        }
        r
    };
    // aclose(): a wrapped yield is ignoring GeneratorExit; an await's value passes.
    if !retval.is_null() {
        if g::wrapped_value(retval).is_some() {
            ffi::Py_DECREF(retval);
            h.gi_running_async = 0;
            a.state = g::AWAITABLE_CLOSED;
            return runtime_error("async generator ignored GeneratorExit");
        }
        return retval;
    }
    checked(a, retval)
}

/// `athrow_send`'s `check_error`: a step that ended the awaitable. `aclose()` reports a
/// generator that finished (StopAsyncIteration, GeneratorExit) as StopIteration.
unsafe fn checked(a: &mut AsyncGenAwaitable, retval: *mut ffi::PyObject) -> *mut ffi::PyObject {
    if !retval.is_null() {
        return retval;
    }
    g::head(a.gen).gi_running_async = 0;
    a.state = g::AWAITABLE_CLOSED;
    if a.arg.is_null()
        && (ffi::PyErr_ExceptionMatches(ffi::PyExc_StopAsyncIteration) != 0
            || ffi::PyErr_ExceptionMatches(ffi::PyExc_GeneratorExit) != 0)
    {
        ffi::PyErr_Clear();
        ffi::PyErr_SetNone(ffi::PyExc_StopIteration);
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn athrow_iternext(o: *mut ffi::PyObject) -> *mut ffi::PyObject {
    athrow_send(o, ffi::Py_None())
}

/// `athrow.throw(...)`: thrown into the generator as its `throw()` would.
unsafe extern "C" fn athrow_throw(
    o: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let a = fields(o);
        let Some(r) = thrown_in(a, args, nargs, "aclose()/athrow()") else {
            return std::ptr::null_mut();
        };
        if !a.arg.is_null() {
            return unwrap(a.gen, r);
        }
        // aclose()
        if !r.is_null() && g::wrapped_value(r).is_some() {
            g::head(a.gen).gi_running_async = 0;
            a.state = g::AWAITABLE_CLOSED;
            ffi::Py_DECREF(r);
            return runtime_error("async generator ignored GeneratorExit");
        }
        if r.is_null()
            && (ffi::PyErr_ExceptionMatches(ffi::PyExc_StopAsyncIteration) != 0
                || ffi::PyErr_ExceptionMatches(ffi::PyExc_GeneratorExit) != 0)
        {
            ffi::PyErr_Clear();
            ffi::PyErr_SetNone(ffi::PyExc_StopIteration);
        }
        r
    })
}

/// An awaitable's `tp_dealloc` (CPython's own would put ours on its free list): an
/// `asend()` one goes on ours (`FREE_ASEND`) while it has room.
unsafe extern "C" fn awaitable_dealloc(o: *mut ffi::PyObject) {
    ffi::PyObject_GC_UnTrack(o as *mut std::ffi::c_void);
    let a = fields(o);
    let (gen, arg) = (a.gen, a.arg);
    a.gen = std::ptr::null_mut();
    a.arg = std::ptr::null_mut();
    ffi::Py_XDECREF(gen);
    ffi::Py_XDECREF(arg);
    let kept = ffi::Py_TYPE(o) == ASEND_TYPE
        && FREE_ASEND.with(|f| {
            let room = f.len() < MAX_FREE_ASEND;
            if room {
                f.push(o as *mut AsyncGenAwaitable);
            }
            room
        });
    if !kept {
        ffi::PyObject_GC_Del(o as *mut std::ffi::c_void);
    }
}

/// `tp_finalize` (`_PyGen_Finalize` for an async generator): an unfinished one goes to
/// the finalizer hook (asyncio schedules its `aclose()`), else it is closed here.
unsafe extern "C" fn finalize(gen: *mut ffi::PyObject) {
    guarded((), || {
        let h = g::head(gen);
        if h.gi_frame_state >= g::FRAME_COMPLETED {
            return;
        }
        let (mut t, mut v, mut tb) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
        let finalizer = h.gi_origin_or_finalizer;
        let r = if !finalizer.is_null() && h.gi_closed == 0 {
            ffi::PyObject_CallOneArg(finalizer, gen)
        } else {
            close(gen)
        };
        if r.is_null() {
            if !ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_WriteUnraisable(gen);
            }
        } else {
            ffi::Py_DECREF(r);
        }
        ffi::PyErr_Restore(t, v, tb);
    })
}
