//! Generators in our tiers.
//!
//! A tiered generator function returns a generator of our own type, a subtype of
//! CPython's (`isinstance(g, types.GeneratorType)`, `inspect.isgenerator`), laid out
//! exactly as CPython's: the same head and the same embedded `_PyInterpreterFrame`. Only
//! resumption differs: `next()`, `send()`, `for`, `yield from` and `await` (the iternext
//! and am_send slots, and `send`) run the body in tier 1 or native code.
//!
//! At every suspension (`LKind::Suspend`: RETURN_GENERATOR, YIELD_VALUE) the frame gets
//! the locals and the value stack in CPython's own layout, with `prev_instr` at the yield;
//! a resumption moves them back into registers (`Suspension::params`) and enters the code
//! at the instruction after the yield. Nothing else survives a suspension in registers
//! (resume blocks' parameters are never pruned, and constants are loaded again), so the
//! frame alone is the generator's state, as in CPython. That is what makes everything
//! else CPython's own and exact: `gi_frame` (its locals and line), `gi_running`,
//! `gi_yieldfrom`, `throw()`, `close()` and finalization (which run that step in
//! CPython's loop from the frame), and a generator resumed with a trace or profile
//! function set (CPython's loop too, which gives the events); the next resumption after
//! any of those continues in our tiers from wherever CPython left the frame.

use crate::cpy::frame::{self, InterpreterFrame};
use crate::cpy::gen as g;
use crate::cpy::ThreadState;
use crate::interp::{self, Ctx};
use crate::lower::{LKind, NO_VALUE};
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
    fn _PyGen_SetStopIterationValue(value: *mut ffi::PyObject) -> c_int;
    fn _PyErr_ChainStackItem(exc_info: *mut g::ErrStackItem);
}

/// Our generator and coroutine types, and the coroutine's `__await__` iterator type (made
/// once, at import, by `install`).
static mut GEN_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
static mut CORO_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
static mut WRAPPER_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
/// CPython's `am_send` for generators and coroutines (the same function: a resumption our
/// tiers leave to CPython).
static mut BASE_SEND: Option<ffi::sendfunc> = None;

/// Words after CPython's slots in a generator of ours: the `Compiled` it runs, then the
/// running activation's `Ctx` (0 while not running), which `activation` finds it by.
const FOOTER: usize = 2;

/// Makes our types: copies of CPython's generator and coroutine types whose iternext and
/// am_send slots and `send` method resume in our tiers (and a coroutine's `__await__`
/// iterator, whose `__next__` and `send` do); everything else (dealloc, finalizer and its
/// "never awaited" warning, traversal, attributes, `throw`, `close`, repr) is inherited.
///
/// # Safety
/// GIL held; once, at import.
pub unsafe fn install() -> PyResult<()> {
    if !GEN_TYPE.is_null() {
        return Ok(());
    }
    if !g::layout_holds() {
        ffi::PyErr_SetString(
            ffi::PyExc_ImportError,
            c"tiered: generators are not laid out as CPython 3.11's".as_ptr(),
        );
        return Err(Raised);
    }
    let gen_base = std::ptr::addr_of_mut!(ffi::PyGen_Type);
    let coro_base = std::ptr::addr_of_mut!(ffi::PyCoro_Type);
    let asyncs = (*gen_base).tp_as_async;
    if asyncs.is_null() || (*asyncs).am_send.is_none() {
        ffi::PyErr_SetString(
            ffi::PyExc_ImportError,
            c"tiered: generators have no am_send".as_ptr(),
        );
        return Err(Raised);
    }
    BASE_SEND = (*asyncs).am_send;
    let send = ffi::PyMethodDef {
        ml_name: c"send".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: send_method,
        },
        ml_flags: ffi::METH_O,
        ml_doc: c"send(arg) -> send 'arg' into generator,\nreturn next yielded value or raise StopIteration.".as_ptr(),
    };
    let throw = ffi::PyMethodDef {
        ml_name: c"throw".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: throw_method,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"throw(value)\nthrow(type[,value[,tb]])\n\nRaise exception in generator, return next yielded value or raise\nStopIteration.".as_ptr(),
    };
    let close = ffi::PyMethodDef {
        ml_name: c"close".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: close_method,
        },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: c"close() -> raise GeneratorExit inside generator.".as_ptr(),
    };
    for (i, b) in [gen_base, coro_base].into_iter().enumerate() {
        for (j, name) in [c"throw", c"close"].into_iter().enumerate() {
            let m = ffi::PyObject_GetAttrString(b as *mut ffi::PyObject, name.as_ptr());
            if m.is_null() {
                return Err(Raised);
            }
            // Kept for the process's life.
            BASE_METHODS[i][j] = m;
        }
    }
    let t = subtype(gen_base, &[send, throw, close])?;
    (*t).tp_iternext = Some(iternext);
    (*(*t).tp_as_async).am_send = Some(am_send);
    ready(t)?;
    let c = subtype(coro_base, &[send, throw, close])?;
    (*(*c).tp_as_async).am_send = Some(am_send);
    (*(*c).tp_as_async).am_await = Some(coro_await);
    ready(c)?;
    let w = subtype(
        std::ptr::addr_of_mut!(_PyCoroWrapper_Type),
        &[ffi::PyMethodDef {
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: wrapper_send,
            },
            ..send
        }],
    )?;
    (*w).tp_iternext = Some(wrapper_iternext);
    ready(w)?;
    GEN_TYPE = t;
    CORO_TYPE = c;
    WRAPPER_TYPE = w;
    Ok(())
}

extern "C" {
    /// The type of `coroutine.__await__()`'s iterator: `{PyObject_HEAD; coroutine}`.
    static mut _PyCoroWrapper_Type: ffi::PyTypeObject;
}

/// A static copy of type `base`, to be its subtype, with `methods` of its own (attributes
/// and the other methods come from the base through the MRO) and its own copy of the
/// async slots; leaked, as types live for the process.
unsafe fn subtype(
    base: *mut ffi::PyTypeObject,
    methods: &[ffi::PyMethodDef],
) -> PyResult<*mut ffi::PyTypeObject> {
    let t: *mut ffi::PyTypeObject = Box::leak(Box::new(std::ptr::read(base)));
    (*t).ob_base.ob_base.ob_refcnt = 1;
    (*t).tp_flags &= !(ffi::Py_TPFLAGS_READY | ffi::Py_TPFLAGS_READYING);
    (*t).tp_base = base;
    (*t).tp_dict = std::ptr::null_mut();
    (*t).tp_bases = std::ptr::null_mut();
    (*t).tp_mro = std::ptr::null_mut();
    (*t).tp_cache = std::ptr::null_mut();
    (*t).tp_subclasses = std::ptr::null_mut();
    (*t).tp_weaklist = std::ptr::null_mut();
    (*t).tp_version_tag = 0;
    let mut table = methods.to_vec();
    table.push(ffi::PyMethodDef::zeroed());
    (*t).tp_methods = Box::leak(table.into_boxed_slice()).as_mut_ptr();
    (*t).tp_members = std::ptr::null_mut();
    (*t).tp_getset = std::ptr::null_mut();
    let asyncs = (*base).tp_as_async;
    if !asyncs.is_null() {
        (*t).tp_as_async = Box::leak(Box::new(std::ptr::read(asyncs)));
    }
    Ok(t)
}

unsafe fn ready(t: *mut ffi::PyTypeObject) -> PyResult<()> {
    if ffi::PyType_Ready(t) < 0 {
        return Err(Raised);
    }
    Ok(())
}

/// Whether `o` is a generator or coroutine of ours.
#[inline]
pub(crate) fn is_ours(o: *mut ffi::PyObject) -> bool {
    // SAFETY: reading an object's type pointer; the types are written once at import.
    unsafe {
        let t = ffi::Py_TYPE(o);
        !GEN_TYPE.is_null() && (t == GEN_TYPE || t == CORO_TYPE)
    }
}

/// Whether `o` is a coroutine of ours.
#[inline]
pub(crate) fn is_our_coroutine(o: *mut ffi::PyObject) -> bool {
    // SAFETY: as `is_ours`.
    unsafe { !CORO_TYPE.is_null() && ffi::Py_TYPE(o) == CORO_TYPE }
}

/// Whether coroutine `o` (CPython's or ours) is suspended in an `await` of its own
/// (CPython's `_PyGen_yf`, not exported: the instruction after the one its frame stopped
/// at is a RESUME after an `await` or `yield from`).
///
/// # Safety
/// GIL held; `o` a live coroutine.
pub(crate) unsafe fn awaiting(o: *mut ffi::PyObject) -> bool {
    let h = g::head(o);
    if h.gi_frame_state != g::FRAME_SUSPENDED {
        return false;
    }
    let next = *(*g::iframe(o)).prev_instr.add(1);
    let (opcode, arg) = ((next & 0xff) as u8, next >> 8);
    tiered_frontend::opcodes::DEOPT[opcode as usize] == tiered_frontend::opcodes::op::RESUME
        && arg >= 2
}

/// The footer words of a generator of ours: (its `Compiled`, the running `Ctx`).
unsafe fn footer(gen: *mut ffi::PyObject) -> (*mut usize, *mut usize) {
    let first = g::past_slots(gen);
    (first, first.add(1))
}

/// The running activation of a generator frame `f`, if it is one of ours running now
/// (for `activation`'s syncs).
///
/// # Safety
/// GIL held; `f` is a live frame owned by a generator.
pub unsafe fn running_ctx(f: *mut InterpreterFrame) -> usize {
    let gen = g::of_frame(f);
    if !is_ours(gen) {
        return 0;
    }
    *footer(gen).1
}

/// LKind::Suspend at instruction `pc`, for tier 1 and native code: moves the operands into
/// the generator's frame (a new generator's, at RETURN_GENERATOR, which is the result;
/// else the running one's, and the yielded value is the result), and empties their
/// registers (nothing is released: the frame holds every live value); only constants
/// stay in registers.
///
/// # Safety
/// GIL held; `regs` is the running activation's register file.
pub unsafe fn suspend(ctx: &Ctx, regs: &mut [Value], pc: usize) -> PyResult<Value> {
    let c = ctx.compiled;
    let lin = &c.linear;
    let inst = &lin.insts[pc];
    let LKind::Suspend { value, index } = inst.kind else {
        return Err(crate::ops::raise(
            ffi::PyExc_SystemError,
            "tiered: not a suspension",
        ));
    };
    let running = (*ctx.frame).owner == g::OWNED_BY_GENERATOR;
    // Hand-made code may yield outside a generator or make one twice.
    if running == (value == NO_VALUE) {
        return Err(crate::ops::raise(
            ffi::PyExc_SystemError,
            if running {
                "tiered: RETURN_GENERATOR in a running generator"
            } else {
                "tiered: YIELD_VALUE outside a generator"
            },
        ));
    }
    let slots = &lin.operands[inst.args as usize..(inst.args + inst.nargs) as usize];
    // Objects first (boxing may fail), so a failure leaves nothing half moved.
    for &r in slots.iter().chain((value != NO_VALUE).then_some(&value)) {
        regs[r as usize].box_in_place()?;
    }
    // CPython's RERAISE reads an int where a handler's lasti is (the suspension's own
    // index stands in for the raising instruction's: only a traceback's later line
    // would show it).
    let lasti_slots = &lin.suspensions[index as usize].lasti;
    let lasti = match lasti_slots.is_empty() {
        true => None,
        false => Some(crate::value::Owned::new(ffi::PyLong_FromLong(
            inst.offset as std::os::raw::c_long,
        ))?),
    };
    let (gen, f) = if running {
        let f = ctx.frame;
        // Locals synced into it meanwhile (`activation`): replaced below.
        release_slots(f);
        (g::of_frame(f), f)
    } else {
        let gen = new_generator(ctx)?;
        (gen, g::iframe(gen))
    };
    let dst = (*f).localsplus(slots.len());
    for (i, (slot, &r)) in dst.iter_mut().zip(slots).enumerate() {
        let o = match &lasti {
            Some(l) if lasti_slots.contains(&(i as u32)) => l.ptr(),
            _ => regs[r as usize].as_ptr(),
        };
        ffi::Py_XINCREF(o);
        *slot = o;
    }
    (*f).stacktop = slots.len() as c_int;
    (*f).prev_instr = c.code_unit(inst.offset);
    let result = if running {
        g::head(gen).gi_frame_state = g::FRAME_SUSPENDED;
        std::mem::take(&mut regs[value as usize])
    } else {
        ffi::PyObject_GC_Track(gen as *mut std::ffi::c_void);
        Value::from_owned(gen)?
    };
    for &r in &lin.suspensions[index as usize].release {
        drop(std::mem::take(&mut regs[r as usize]));
    }
    Ok(result)
}

/// A new generator of ours for the activation `ctx` (at its RETURN_GENERATOR), its frame
/// set up as CPython's `make_gen` and RETURN_GENERATOR leave it (the slots are the
/// caller's to fill); not yet tracked by the GC.
unsafe fn new_generator(ctx: &Ctx) -> PyResult<*mut ffi::PyObject> {
    let c = ctx.compiled;
    let n = c.nlocalsplus + frame::stacksize_of(c.objects.code.ptr()) + FOOTER;
    let coroutine = c.info.flags & tiered_frontend::code::flags::COROUTINE != 0;
    // A coroutine's `cr_origin`, when `sys.set_coroutine_origin_tracking_depth` asks.
    let depth = if coroutine {
        ctx.tstate.coroutine_origin_tracking_depth()
    } else {
        0
    };
    let origin = if depth > 0 {
        coroutine_origin(depth, (*ctx.frame).previous)?
    } else {
        std::ptr::null_mut()
    };
    let t = if coroutine { CORO_TYPE } else { GEN_TYPE };
    let gen: *mut ffi::PyObject = ffi::PyObject_GC_NewVar(t, n as ffi::Py_ssize_t);
    if gen.is_null() {
        ffi::Py_XDECREF(origin);
        return Err(Raised);
    }
    let func = ctx.func as *mut ffi::PyObject;
    let code = c.objects.code.ptr();
    let h = g::head(gen);
    h.gi_origin_or_finalizer = origin;
    h.gi_code = code;
    ffi::Py_INCREF(code);
    h.gi_weakreflist = std::ptr::null_mut();
    h.gi_name = (*ctx.func).func_name;
    ffi::Py_INCREF(h.gi_name);
    h.gi_qualname = (*ctx.func).func_qualname;
    ffi::Py_INCREF(h.gi_qualname);
    h.gi_exc_state.exc_value = std::ptr::null_mut();
    h.gi_exc_state.previous_item = std::ptr::null_mut();

    h.gi_hooks_inited = 0;
    h.gi_closed = 0;
    h.gi_running_async = 0;
    h.gi_frame_state = g::FRAME_CREATED;
    ffi::Py_INCREF(func);
    ffi::Py_INCREF(code);
    g::iframe(gen).write(InterpreterFrame {
        f_func: func,
        f_globals: ctx.globals,
        f_builtins: ctx.builtins,
        f_locals: std::ptr::null_mut(),
        f_code: code,
        frame_obj: std::ptr::null_mut(),
        previous: std::ptr::null_mut(),
        prev_instr: std::ptr::null_mut(),
        stacktop: 0,
        is_entry: false,
        owner: g::OWNED_BY_GENERATOR,
    });
    let (compiled, running) = footer(gen);
    *compiled = c as *const Compiled as usize;
    *running = 0;
    Ok(gen)
}

/// CPython's `compute_cr_origin`: `(filename, line, function)` of up to `depth` frames from
/// `f` outwards, innermost first.
unsafe fn coroutine_origin(depth: i32, f: *mut InterpreterFrame) -> PyResult<*mut ffi::PyObject> {
    let mut frames = Vec::new();
    let mut at = f;
    while !at.is_null() && (frames.len() as i32) < depth {
        frames.push(at);
        at = (*at).previous;
    }
    let out = crate::value::Owned::new(ffi::PyTuple_New(frames.len() as ffi::Py_ssize_t))?;
    for (i, &fr) in frames.iter().enumerate() {
        let code = (*fr).f_code;
        let lasti = (*fr).prev_instr as isize - frame::code_unit(code, 0) as isize;
        let line = ffi::PyCode_Addr2Line(code as *mut ffi::PyCodeObject, lasti as c_int);
        let file =
            crate::value::Owned::new(ffi::PyObject_GetAttrString(code, c"co_filename".as_ptr()))?;
        let name =
            crate::value::Owned::new(ffi::PyObject_GetAttrString(code, c"co_name".as_ptr()))?;
        let item = ffi::Py_BuildValue(c"OiO".as_ptr(), file.ptr(), line, name.ptr());
        if item.is_null() {
            return Err(Raised);
        }
        ffi::PyTuple_SET_ITEM(out.ptr(), i as ffi::Py_ssize_t, item);
    }
    Ok(out.into_value().into_ptr())
}

/// `coroutine.__await__()`: an iterator over the coroutine that resumes it in our tiers.
unsafe extern "C" fn coro_await(coro: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || coro_await_body(coro))
}

unsafe fn coro_await_body(coro: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let w: *mut ffi::PyObject = ffi::PyObject_GC_New(WRAPPER_TYPE);
    if w.is_null() {
        return w;
    }
    ffi::Py_INCREF(coro);
    *wrapped(w) = coro;
    ffi::PyObject_GC_Track(w as *mut std::ffi::c_void);
    w
}

/// The coroutine an `__await__` iterator drives (`cw_coroutine`, after the header).
unsafe fn wrapped(w: *mut ffi::PyObject) -> *mut *mut ffi::PyObject {
    (w as usize + std::mem::size_of::<ffi::PyObject>()) as *mut *mut ffi::PyObject
}

/// `next()` of an `__await__` iterator.
unsafe extern "C" fn wrapper_iternext(w: *mut ffi::PyObject) -> *mut ffi::PyObject {
    iternext(*wrapped(w))
}

/// `send()` of an `__await__` iterator.
unsafe extern "C" fn wrapper_send(
    w: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    send_method(*wrapped(w), arg)
}

/// Releases what frame `f`'s slots hold (`stacktop` of them) and empties them.
unsafe fn release_slots(f: *mut InterpreterFrame) {
    let n = (*f).stacktop.max(0) as usize;
    (*f).stacktop = 0;
    for slot in (*f).localsplus(n) {
        let o = std::mem::replace(slot, std::ptr::null_mut());
        ffi::Py_XDECREF(o);
    }
}

/// `tp_iternext`: `next(gen)`.
unsafe extern "C" fn iternext(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || iternext_body(gen))
}

unsafe fn iternext_body(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let mut result = std::ptr::null_mut();
    let status = send_ex(gen, std::ptr::null_mut(), &mut result);
    returned(status, result, false)
}

/// What `next()` (`explicit` false), `send()` and `throw()` return for a step's outcome:
/// a yielded value as it is; a return value as StopIteration (`gen_send_ex`: none at all
/// from `next()` for None, a bare one from the others).
unsafe fn returned(
    status: c_int,
    result: *mut ffi::PyObject,
    explicit: bool,
) -> *mut ffi::PyObject {
    if status != g::PYGEN_RETURN {
        return result;
    }
    if result != ffi::Py_None() {
        _PyGen_SetStopIterationValue(result);
    } else if explicit {
        ffi::PyErr_SetNone(ffi::PyExc_StopIteration);
    }
    ffi::Py_XDECREF(result);
    std::ptr::null_mut()
}

/// `am_send`: `yield from gen`, `await`, `PyIter_Send`.
unsafe extern "C" fn am_send(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    guarded(ffi::PySendResult::PYGEN_ERROR, || {
        am_send_body(gen, arg, result)
    })
}

unsafe fn am_send_body(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    match send_ex(gen, arg, result) {
        g::PYGEN_RETURN => ffi::PySendResult::PYGEN_RETURN,
        g::PYGEN_NEXT => ffi::PySendResult::PYGEN_NEXT,
        _ => ffi::PySendResult::PYGEN_ERROR,
    }
}

/// `gen.send(arg)`.
unsafe extern "C" fn send_method(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || send_method_body(gen, arg))
}

unsafe fn send_method_body(gen: *mut ffi::PyObject, arg: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let mut result = std::ptr::null_mut();
    let status = send_ex(gen, arg, &mut result);
    returned(status, result, true)
}

/// CPython's `gen_send_ex2` for a generator of ours (`arg` NULL for `next()`): its checks,
/// then the body resumed in our tiers, or in CPython's loop when a trace or profile
/// function is set or the frame stopped where our code has no resume point.
pub(crate) unsafe fn send_ex(
    gen: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    *presult = std::ptr::null_mut();
    let h = g::head(gen);
    let state = h.gi_frame_state;
    let coroutine = is_our_coroutine(gen);
    if state == g::FRAME_CREATED && !arg.is_null() && arg != ffi::Py_None() {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            if coroutine {
                c"can't send non-None value to a just-started coroutine"
            } else {
                c"can't send non-None value to a just-started generator"
            }
            .as_ptr(),
        );
        return g::PYGEN_ERROR;
    }
    if state == g::FRAME_EXECUTING {
        ffi::PyErr_SetString(
            ffi::PyExc_ValueError,
            if coroutine {
                c"coroutine already executing"
            } else {
                c"generator already executing"
            }
            .as_ptr(),
        );
        return g::PYGEN_ERROR;
    }
    if state >= g::FRAME_COMPLETED {
        if coroutine {
            ffi::PyErr_SetString(
                ffi::PyExc_RuntimeError,
                c"cannot reuse already awaited coroutine".as_ptr(),
            );
            return g::PYGEN_ERROR;
        }
        if !arg.is_null() {
            ffi::Py_INCREF(ffi::Py_None());
            *presult = ffi::Py_None();
            return g::PYGEN_RETURN;
        }
        return g::PYGEN_ERROR;
    }
    let ts = ThreadState::current();
    let c = &*(*footer(gen).0 as *const Compiled);
    let f = g::iframe(gen);
    let at = c.offset_of_unit((*f).prev_instr);
    let point = c.linear.suspension_at(at);
    let Some(point) = point.filter(|_| !ts.tracing()) else {
        bump(&c.resumes[2]);
        return match BASE_SEND {
            Some(base) => base(gen, arg, presult) as c_int,
            None => g::PYGEN_ERROR,
        };
    };
    crate::runtime::with_registers(c.linear.nregs as usize, |regs| {
        resume(ts, gen, c, point, Some(arg), regs, presult)
    })
}

/// The suspension a generator of ours can be resumed at in our tiers with an exception
/// thrown in (`throw()`, `close()`): it was created or is suspended at a yield of ours,
/// and no trace or profile function is set (else CPython's own methods do it).
unsafe fn resumable(
    gen: *mut ffi::PyObject,
) -> Option<(&'static Compiled, &'static crate::lower::Suspension)> {
    let state = g::head(gen).gi_frame_state;
    if !(state == g::FRAME_CREATED || state == g::FRAME_SUSPENDED)
        || ThreadState::current().tracing()
    {
        return None;
    }
    // SAFETY: the footer names the generator's `Compiled`, which the registry keeps.
    let c = &*(*footer(gen).0 as *const Compiled);
    let at = c.offset_of_unit((*g::iframe(gen)).prev_instr);
    c.linear.suspension_at(at).map(|p| (c, p))
}

/// Resumes `gen` (see `resumable`) with the exception set raised at its yield.
unsafe fn throw_in(
    gen: *mut ffi::PyObject,
    (c, point): (&'static Compiled, &'static crate::lower::Suspension),
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    *presult = std::ptr::null_mut();
    let ts = ThreadState::current();
    crate::runtime::with_registers(c.linear.nregs as usize, |regs| {
        resume(ts, gen, c, point, None, regs, presult)
    })
}

/// The iterator a suspended generator or coroutine delegates to (`yield from`, `await`),
/// borrowed from the top of its frame's stack; NULL if none (CPython's `_PyGen_yf`).
///
/// # Safety
/// GIL held; `gen` a live generator or coroutine.
pub(crate) unsafe fn yield_from(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    if !awaiting(gen) {
        return std::ptr::null_mut();
    }
    let f = g::iframe(gen);
    match (*f).stacktop {
        n if n > 0 => (*f).localsplus(n as usize)[n as usize - 1],
        _ => std::ptr::null_mut(),
    }
}

/// CPython's own `throw` and `close` methods: of generators, then of coroutines.
static mut BASE_METHODS: [[*mut ffi::PyObject; 2]; 2] = [[std::ptr::null_mut(); 2]; 2];

/// CPython's own `throw` (0) or `close` (1) for `gen`'s kind.
unsafe fn base(gen: *mut ffi::PyObject, which: usize) -> *mut ffi::PyObject {
    BASE_METHODS[usize::from(is_our_coroutine(gen))][which]
}

/// Calls CPython's own method `m` of `gen` with `args`.
unsafe fn base_method(
    m: *mut ffi::PyObject,
    gen: *mut ffi::PyObject,
    args: &[*mut ffi::PyObject],
) -> *mut ffi::PyObject {
    // A step CPython's loop may run (counted as a resumption there).
    if matches!(
        g::head(gen).gi_frame_state,
        g::FRAME_CREATED | g::FRAME_SUSPENDED
    ) {
        bump(&(*(*footer(gen).0 as *const Compiled)).resumes[2]);
    }
    let mut all = Vec::with_capacity(args.len() + 1);
    all.push(gen);
    all.extend_from_slice(args);
    ffi::PyObject_Vectorcall(m, all.as_ptr(), all.len(), std::ptr::null_mut())
}

/// `gen.throw(typ[, val[, tb]])`: raised at the yield in our tiers, unless the generator
/// delegates to another (`yield from`, `await`: CPython's `throw` passes it on there, and
/// finishes the step in its loop) or cannot be resumed here (`resumable`).
unsafe extern "C" fn throw_method(
    gen: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || throw_method_body(gen, args, nargs))
}

unsafe fn throw_method_body(
    gen: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let all = std::slice::from_raw_parts(args, nargs.max(0) as usize);
    if !(1..=3).contains(&nargs) {
        let msg = if nargs < 1 {
            format!("throw expected at least 1 argument, got {nargs}")
        } else {
            format!("throw expected at most 3 arguments, got {nargs}")
        };
        crate::ops::raise(ffi::PyExc_TypeError, &msg);
        return std::ptr::null_mut();
    }
    let Some(here) = resumable(gen).filter(|_| yield_from(gen).is_null()) else {
        return base_method(base(gen, 0), gen, all);
    };
    let typ = all[0];
    let val = all.get(1).copied().unwrap_or(std::ptr::null_mut());
    let tb = all.get(2).copied().unwrap_or(std::ptr::null_mut());
    if !raise_thrown(typ, val, tb) {
        return std::ptr::null_mut();
    }
    let mut result = std::ptr::null_mut();
    let status = throw_in(gen, here, &mut result);
    returned(status, result, true)
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

/// `gen.close()`: GeneratorExit raised at the yield in our tiers, unless the generator
/// delegates to another (CPython's `close` closes that first, and finishes the step in
/// its loop) or cannot be resumed here (`resumable`).
unsafe extern "C" fn close_method(
    gen: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || close_method_body(gen))
}

unsafe fn close_method_body(gen: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let Some(here) = resumable(gen).filter(|_| yield_from(gen).is_null()) else {
        return base_method(base(gen, 1), gen, &[]);
    };
    ffi::PyErr_SetNone(ffi::PyExc_GeneratorExit);
    let mut result = std::ptr::null_mut();
    match throw_in(gen, here, &mut result) {
        g::PYGEN_NEXT => {
            ffi::Py_DECREF(result);
            crate::ops::raise(
                ffi::PyExc_RuntimeError,
                if is_our_coroutine(gen) {
                    "coroutine ignored GeneratorExit"
                } else {
                    "generator ignored GeneratorExit"
                },
            );
            std::ptr::null_mut()
        }
        g::PYGEN_RETURN => {
            ffi::Py_XDECREF(result);
            ffi::Py_INCREF(ffi::Py_None());
            ffi::Py_None()
        }
        _ => {
            if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) != 0
                || ffi::PyErr_ExceptionMatches(ffi::PyExc_GeneratorExit) != 0
            {
                ffi::PyErr_Clear();
                ffi::Py_INCREF(ffi::Py_None());
                return ffi::Py_None();
            }
            std::ptr::null_mut()
        }
    }
}

/// Runs generator `gen` from suspension `point` in register file `regs` (all empty), as
/// `gen_send_ex2` runs a frame: pushes the value sent in, links the frame and the
/// generator's exception level, and finishes the generator if it did not yield.
unsafe fn resume(
    ts: ThreadState,
    gen: *mut ffi::PyObject,
    c: &Compiled,
    point: &crate::lower::Suspension,
    arg: Option<*mut ffi::PyObject>,
    regs: &mut [Value],
    presult: *mut *mut ffi::PyObject,
) -> c_int {
    let h = g::head(gen);
    let f = g::iframe(gen);
    // The value sent in (None for `next()`), or NULL for an exception thrown in (set).
    let sent = match arg {
        Some(a) if a.is_null() => ffi::Py_None(),
        Some(a) => a,
        None => std::ptr::null_mut(),
    };
    let arg = arg.unwrap_or(ffi::Py_None());
    // The frame's slots (and the value sent in, on top of its stack) move into the resume
    // block's parameters.
    let n = (*f).stacktop.max(0) as usize;
    if n + 1 != point.params.len() {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tiered: a generator's frame does not match its resume point".as_ptr(),
        );
        return g::PYGEN_ERROR;
    }
    (*f).stacktop = 0;
    for (slot, &r) in (*f).localsplus(n).iter_mut().zip(&point.params) {
        let o = std::mem::replace(slot, std::ptr::null_mut());
        regs[r as usize] = Value::from_owned(o).unwrap_or(Value::Null);
    }
    regs[point.params[n] as usize] = Value::from_borrowed(sent);
    let cf = ts.cframe();
    (*f).previous = (*cf).current_frame;
    (*cf).current_frame = f;
    h.gi_exc_state.previous_item = ts.exc_info();
    ts.set_exc_info(&mut h.gi_exc_state);
    if sent.is_null() {
        // The thrown exception's context: what the generator was handling.
        _PyErr_ChainStackItem(std::ptr::null_mut());
    }
    h.gi_frame_state = g::FRAME_EXECUTING;
    let func = (*f).f_func as *mut ffi::PyFunctionObject;
    let stack_limit = crate::stack::limit_for(ts);
    let ctx = Ctx {
        compiled: c,
        func,
        globals: (*f).f_globals,
        builtins: (*f).f_builtins,
        tuning: crate::runtime::config(),
        ran_native: Cell::new(false),
        tstate: ts,
        stack_limit,
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
    (*cf).current_frame = (*f).previous;
    if h.gi_frame_state == g::FRAME_EXECUTING {
        h.gi_frame_state = g::FRAME_COMPLETED;
    }
    ts.set_exc_info(h.gi_exc_state.previous_item);
    h.gi_exc_state.previous_item = std::ptr::null_mut();
    (*f).previous = std::ptr::null_mut();
    if h.gi_frame_state == g::FRAME_SUSPENDED {
        *running = 0;
        // Only constants are left (`suspend`).
        for &pc in &c.linear.prologue {
            drop(std::mem::take(
                &mut regs[c.linear.insts[pc as usize].dst as usize],
            ));
        }
        return match r {
            Ok(v) => {
                *presult = v.into_ptr();
                g::PYGEN_NEXT
            }
            Err(Raised) => g::PYGEN_ERROR,
        };
    }
    // Finished: as `gen_send_ex2` then `_PyFrame_Clear`.
    let (status, result) = match r {
        // `next()` reports a plain return by NULL without an exception.
        Ok(v) if v.as_ptr() == ffi::Py_None() && arg.is_null() => {
            (g::PYGEN_RETURN, std::ptr::null_mut())
        }
        Ok(v) => (g::PYGEN_RETURN, v.into_ptr()),
        Err(Raised) => {
            // PEP 479.
            if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) != 0 {
                _PyErr_FormatFromCause(
                    ffi::PyExc_RuntimeError,
                    c"%s".as_ptr(),
                    if is_our_coroutine(gen) {
                        c"coroutine raised StopIteration"
                    } else {
                        c"generator raised StopIteration"
                    }
                    .as_ptr(),
                );
            }
            (g::PYGEN_ERROR, std::ptr::null_mut())
        }
    };
    let exc = std::mem::replace(&mut h.gi_exc_state.exc_value, std::ptr::null_mut());
    ffi::Py_XDECREF(exc);
    h.gi_frame_state = g::FRAME_CLEARED;
    // A frame object that outlives the generator keeps its final locals (as a returning
    // function's does: `activation::sync_at_pop`, which finds this activation by the
    // footer), then takes the frame over.
    let fo = (*f).frame_obj;
    if !fo.is_null() && ffi::Py_REFCNT(fo) > 1 {
        crate::activation::sync_at_pop(f);
    }
    *running = 0;
    crate::runtime::release(c, regs, status == g::PYGEN_ERROR);
    frame::clear_owned(f);
    *presult = result;
    status
}

/// Runs the body from `start`: native code when the function is hot, else tier 1.
unsafe fn run(ctx: &Ctx, regs: &mut [Value], start: usize) -> PyResult<Value> {
    let ts = ctx.tstate;
    if crate::stack::nearly_exhausted(ctx.stack_limit) {
        ffi::PyErr_SetString(
            ffi::PyExc_RecursionError,
            c"maximum recursion depth exceeded".as_ptr(),
        );
        return Err(Raised);
    }
    if !ts.enter_recursive_call() {
        return Err(Raised);
    }
    let c = ctx.compiled;
    // Constants first: every block after the entry reads their registers.
    for &pc in &c.linear.prologue {
        let inst = &c.linear.insts[pc as usize];
        if let LKind::Op(tiered_ir::Op::Const { index }) = inst.kind {
            match crate::ops::values::load_const(ctx, index) {
                Ok(v) => regs[inst.dst as usize] = v,
                Err(Raised) => {
                    ts.leave_recursive_call();
                    return Err(Raised);
                }
            }
        }
    }
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

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}
