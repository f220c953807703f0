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
//!
//! The one exception: at a plain generator's in-place yields the values stay in its
//! register file, and the frame is filled before anything of CPython's could read it
//! (`held`), which keeps all of the above true.

use crate::cpy::frame::{self, InterpreterFrame};
use crate::cpy::gen as g;
use crate::interp::Ctx;
use crate::lower::{LKind, NO_VALUE};
use crate::native::helpers::guarded;
use crate::runtime::Compiled;
use crate::value::{PyResult, Raised, Value};
use pyo3_ffi as ffi;
use std::cell::Cell;
use std::os::raw::c_int;

mod asyncgen;
mod delegate;
pub(crate) mod files;
pub(crate) mod held;
pub(crate) mod start;
mod step;
mod throw;

pub(crate) use asyncgen::{
    asend_step, is_our_asend, is_our_async_generator, native_entries as async_generator_entries,
};
pub(crate) use delegate::{stepped, take as take_stepped};
pub(crate) use files::{registers, FilePool};
pub(crate) use step::{send_ex2, Thread};

/// Our generator and coroutine types, and the coroutine's `__await__` iterator type (made
/// once, at import, by `install`; the async generator's are `asyncgen`'s).
static mut GEN_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
static mut CORO_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
/// A generator-based coroutine's (`types.coroutine`): a generator that `await` accepts.
static mut ITER_CORO_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();
static mut WRAPPER_TYPE: *mut ffi::PyTypeObject = std::ptr::null_mut();

/// Words after CPython's slots in a generator of ours: the `Compiled` it runs, the
/// running activation's `Ctx` (0 while not running), which `activation` finds it by, and
/// its register file while it has one (`files`).
const FOOTER: usize = 3;

/// What a generator object of ours is (from its type), for the behaviour and messages
/// that differ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A generator (`def` with `yield`).
    Generator,
    /// A coroutine (`async def`).
    Coroutine,
    /// An async generator (`async def` with `yield`).
    AsyncGenerator,
}

impl Kind {
    /// The kind of `o`, a generator object of ours.
    pub(crate) fn of(o: *mut ffi::PyObject) -> Kind {
        if is_our_coroutine(o) {
            Kind::Coroutine
        } else if is_our_async_generator(o) {
            Kind::AsyncGenerator
        } else {
            Kind::Generator
        }
    }

    /// How CPython's messages name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Generator => "generator",
            Kind::Coroutine => "coroutine",
            Kind::AsyncGenerator => "async generator",
        }
    }
}

/// The methods our generator types share: `send`, `throw`, `close`.
fn methods() -> [ffi::PyMethodDef; 3] {
    [
        ffi::PyMethodDef {
            ml_name: c"send".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: step::send_method,
            },
            ml_flags: ffi::METH_O,
            ml_doc: c"send(arg) -> send 'arg' into generator,\nreturn next yielded value or raise StopIteration.".as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"throw".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFast: throw::throw_method,
            },
            ml_flags: ffi::METH_FASTCALL,
            ml_doc: c"throw(value)\nthrow(type[,value[,tb]])\n\nRaise exception in generator, return next yielded value or raise\nStopIteration.".as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"close".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: throw::close_method,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: c"close() -> raise GeneratorExit inside generator.".as_ptr(),
        },
    ]
}

/// Makes our types: copies of CPython's generator, coroutine and async generator types
/// whose slots and methods that resume (iternext, am_send, `send`, `throw`, `close`, an
/// async generator's `asend`, `athrow`, `aclose` and their awaitables) run the body in our
/// tiers, and a coroutine's `__await__` iterator, which does too; everything else
/// (dealloc, the coroutine's finalizer and its "never awaited" warning, traversal,
/// attributes, repr) is inherited.
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
    let [send, throw, close] = methods();
    BASE_DEALLOC = ffi::PyGen_Type.tp_dealloc;
    let t = subtype(std::ptr::addr_of_mut!(ffi::PyGen_Type), &methods())?;
    (*t).tp_dealloc = Some(dealloc);
    (*t).tp_iternext = Some(step::iternext);
    (*(*t).tp_as_async).am_send = Some(step::am_send);
    held::install(t)?;
    ready(t)?;
    // CPython accepts a generator-based coroutine in `await` only if its type is exactly
    // the generator type; ours is awaitable through `__await__` (returning itself).
    let ic = subtype(std::ptr::addr_of_mut!(ffi::PyGen_Type), &methods())?;
    (*ic).tp_dealloc = Some(dealloc);
    (*ic).tp_iternext = Some(step::iternext);
    (*(*ic).tp_as_async).am_send = Some(step::am_send);
    (*(*ic).tp_as_async).am_await = Some(ffi::PyObject_SelfIter);
    held::install(ic)?;
    ready(ic)?;
    let c = subtype(std::ptr::addr_of_mut!(ffi::PyCoro_Type), &methods())?;
    (*c).tp_dealloc = Some(dealloc);
    (*(*c).tp_as_async).am_send = Some(step::am_send);
    (*(*c).tp_as_async).am_await = Some(coro_await);
    ready(c)?;
    let w = subtype(
        std::ptr::addr_of_mut!(_PyCoroWrapper_Type),
        &[
            ffi::PyMethodDef {
                ml_meth: ffi::PyMethodDefPointer {
                    PyCFunction: wrapper_send,
                },
                ..send
            },
            ffi::PyMethodDef {
                ml_meth: ffi::PyMethodDefPointer {
                    PyCFunctionFast: wrapper_throw,
                },
                ..throw
            },
            ffi::PyMethodDef {
                ml_meth: ffi::PyMethodDefPointer {
                    PyCFunction: wrapper_close,
                },
                ..close
            },
        ],
    )?;
    (*w).tp_iternext = Some(wrapper_iternext);
    ready(w)?;
    asyncgen::install()?;
    delegate::install()?;
    GEN_TYPE = t;
    CORO_TYPE = c;
    ITER_CORO_TYPE = ic;
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
        !GEN_TYPE.is_null()
            && (t == GEN_TYPE || t == CORO_TYPE || t == ITER_CORO_TYPE || is_our_async_generator(o))
    }
}

/// Whether `o` is a coroutine of ours.
#[inline]
pub(crate) fn is_our_coroutine(o: *mut ffi::PyObject) -> bool {
    // SAFETY: as `is_ours`.
    unsafe { !CORO_TYPE.is_null() && ffi::Py_TYPE(o) == CORO_TYPE }
}

/// Our coroutine type (NULL before `install`), for native code's type guards.
pub(crate) fn coroutine_type() -> *mut ffi::PyTypeObject {
    // SAFETY: written once, at import, before any code is compiled.
    unsafe { CORO_TYPE }
}

/// Whether `o` is a generator-based coroutine of ours (`types.coroutine`).
#[inline]
pub(crate) fn is_our_iterable_coroutine(o: *mut ffi::PyObject) -> bool {
    // SAFETY: as `is_ours`.
    unsafe { !ITER_CORO_TYPE.is_null() && ffi::Py_TYPE(o) == ITER_CORO_TYPE }
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

/// The `Compiled` a generator of ours runs.
///
/// # Safety
/// GIL held; `gen` a live generator of ours.
unsafe fn compiled_of(gen: *mut ffi::PyObject) -> &'static Compiled {
    // SAFETY: the footer names the generator's `Compiled`, which the registry keeps for
    // the process's life.
    &*(*footer(gen).0 as *const Compiled)
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
    let point = &lin.suspensions[index as usize];
    if running && point.in_place && (*ctx.frame).stacktop == 0 && (*ctx.frame).frame_obj.is_null() {
        // The values stay in registers (`held`), boxed as the frame would hold them (the
        // garbage collector sees CPython's objects); only the yielded one leaves (a copy
        // if a slot or a constant keeps it).
        for &r in slots.iter().chain([&value]) {
            regs[r as usize].box_in_place()?;
        }
        let f = ctx.frame;
        (*f).prev_instr = c.code_unit(inst.offset);
        g::head(g::of_frame(f)).gi_frame_state = g::FRAME_SUSPENDED;
        let result = match point.keeps_value || slots.contains(&value) {
            true => regs[value as usize].clone(),
            false => std::mem::take(&mut regs[value as usize]),
        };
        // Each slot's value to its resume parameter's register (all taken out first: a
        // parameter's register may be another slot's).
        let moves = || slots.iter().zip(&point.params).filter(|(s, p)| s != p);
        let moved: Vec<Value> = moves()
            .map(|(&s, _)| std::mem::take(&mut regs[s as usize]))
            .collect();
        for ((_, &p), v) in moves().zip(moved) {
            regs[p as usize] = v;
        }
        return Ok(result);
    }
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
        let gen = new_generator(&Creator {
            c,
            func: ctx.func,
            globals: ctx.globals,
            builtins: ctx.builtins,
            ts: ctx.tstate,
            caller: (*ctx.frame).previous,
        })?;
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
        match lin.suspensions[index as usize].keeps_value {
            true => regs[value as usize].clone(),
            false => std::mem::take(&mut regs[value as usize]),
        }
    } else {
        ffi::PyObject_GC_Track(gen as *mut std::ffi::c_void);
        Value::from_owned(gen)?
    };
    for &r in &lin.suspensions[index as usize].release {
        drop(std::mem::take(&mut regs[r as usize]));
    }
    Ok(result)
}

/// What makes a generator: its code, its function and that function's dicts, the
/// thread, and the frame that called the function.
pub(crate) struct Creator<'c> {
    c: &'c Compiled,
    func: *mut ffi::PyFunctionObject,
    globals: *mut ffi::PyObject,
    builtins: *mut ffi::PyObject,
    ts: crate::cpy::ThreadState,
    /// The calling frame (where a coroutine's `cr_origin` starts).
    caller: *mut InterpreterFrame,
}

/// A new generator of ours for a call of `m.func` (at its code's RETURN_GENERATOR), its
/// frame set up as CPython's `make_gen` and RETURN_GENERATOR leave it (the slots are the
/// caller's to fill); not yet tracked by the GC.
unsafe fn new_generator(m: &Creator) -> PyResult<*mut ffi::PyObject> {
    let c = m.c;
    let n = c.nlocalsplus + frame::stacksize_of(c.objects.code.ptr()) + FOOTER;
    let coroutine = c.info.flags & tiered_frontend::code::flags::COROUTINE != 0;
    // A coroutine's `cr_origin`, when `sys.set_coroutine_origin_tracking_depth` asks.
    let depth = if coroutine {
        m.ts.coroutine_origin_tracking_depth()
    } else {
        0
    };
    let origin = if depth > 0 {
        coroutine_origin(depth, m.caller)?
    } else {
        std::ptr::null_mut()
    };
    let t = if coroutine {
        CORO_TYPE
    } else if c.info.flags & tiered_frontend::code::flags::ASYNC_GENERATOR != 0 {
        asyncgen::TYPE
    } else if c.info.flags & tiered_frontend::code::flags::ITERABLE_COROUTINE != 0 {
        ITER_CORO_TYPE
    } else {
        GEN_TYPE
    };
    let gen: *mut ffi::PyObject = ffi::PyObject_GC_NewVar(t, n as ffi::Py_ssize_t);
    if gen.is_null() {
        ffi::Py_XDECREF(origin);
        return Err(Raised);
    }
    let func = m.func as *mut ffi::PyObject;
    let code = c.objects.code.ptr();
    let h = g::head(gen);
    h.gi_origin_or_finalizer = origin;
    h.gi_code = code;
    ffi::Py_INCREF(code);
    h.gi_weakreflist = std::ptr::null_mut();
    h.gi_name = (*m.func).func_name;
    ffi::Py_INCREF(h.gi_name);
    h.gi_qualname = (*m.func).func_qualname;
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
        f_globals: m.globals,
        f_builtins: m.builtins,
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
    files::init(gen);
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
    step::iternext(*wrapped(w))
}

/// `send()` of an `__await__` iterator.
unsafe extern "C" fn wrapper_send(
    w: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    step::send_method(*wrapped(w), arg)
}

/// `throw()` of an `__await__` iterator.
unsafe extern "C" fn wrapper_throw(
    w: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    throw::throw_method(*wrapped(w), args, nargs)
}

/// `close()` of an `__await__` iterator.
unsafe extern "C" fn wrapper_close(
    w: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    throw::close_method(*wrapped(w), std::ptr::null_mut())
}

/// CPython's `gen_dealloc`, which our generators end in.
static mut BASE_DEALLOC: Option<ffi::destructor> = None;

/// `tp_dealloc` of our generator types: the finalizer first (it may close the generator,
/// in CPython's loop, or resurrect it), then what only ours hold: the register file
/// (with its constants), and the coroutine's origin or the async generator's finalizer
/// hook (CPython's `gen_dealloc` drops those only for its exact types); then
/// `gen_dealloc` frees the rest (it runs the finalizer no more: the GC marked it
/// finalized).
pub(super) unsafe extern "C" fn dealloc(gen: *mut ffi::PyObject) {
    // Nothing of ours to release (a finished generator, or one that never ran): CPython's
    // `gen_dealloc` alone. (Its finalizer closes an unfinished generator or coroutine in
    // CPython's loop, which never takes a register file; an async generator's is ours.)
    if !files::has_registers(gen)
        && g::head(gen).gi_origin_or_finalizer.is_null()
        && !is_our_async_generator(gen)
    {
        if let Some(base) = BASE_DEALLOC {
            base(gen);
        }
        return;
    }
    ffi::PyObject_GC_UnTrack(gen as *mut std::ffi::c_void);
    if !g::head(gen).gi_weakreflist.is_null() {
        ffi::PyObject_ClearWeakRefs(gen);
    }
    ffi::PyObject_GC_Track(gen as *mut std::ffi::c_void);
    if ffi::PyObject_CallFinalizerFromDealloc(gen) != 0 {
        return;
    }
    // Values still held in registers (the finalizer did not close it: it had run before),
    // then the file with its constants.
    held::release(gen);
    files::detach(gen);
    let f = std::mem::replace(
        &mut g::head(gen).gi_origin_or_finalizer,
        std::ptr::null_mut(),
    );
    ffi::Py_XDECREF(f);
    if let Some(base) = BASE_DEALLOC {
        base(gen);
    }
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

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}
