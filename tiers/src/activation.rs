//! Tiered activations as CPython sees them: their frames (`cpy::frame`), and their locals,
//! synced into those frames whenever something may read them.
//!
//! Locals live in registers; CPython's view of them (a frame's `localsplus`, read by
//! `locals()`, `f_locals`, `super()`, debuggers) is written on demand only:
//!
//! - before a builtin that reads the calling frame is called (`ops::calls::reads_frame`:
//!   `locals`, `vars`, `dir`, `eval`, `exec`, `super`, `breakpoint`), the running
//!   activation's own locals;
//! - whenever any code reads a frame object's `f_locals` (sys._getframe(1).f_locals,
//!   inspect, pdb, a signal handler, numexpr-style libraries reading their caller): the
//!   descriptor's getter is wrapped (`install_f_locals_hook`), and syncs the frame first
//!   if it is one of ours. An activation suspended in a call keeps its registers as they
//!   are, so syncing it when it is read is as good as syncing it when it was suspended;
//! - as a frame is popped while a frame object outlives it (a traceback's): the object
//!   keeps the locals the frame ended with (`sync_at_pop`).
//!
//! Each activation's frame is preceded by one word holding its `Ctx`'s address, which is
//! how a frame is recognized as ours (it lies on this thread's native stack, where CPython
//! never puts one, and its `Ctx` points back at it) and how its registers are found.

use crate::interp::Ctx;
use crate::value::{PyResult, Raised};
use pyo3_ffi as ffi;
use std::os::raw::c_void;

/// Bytes reserved before each activation's frame for its `Ctx`'s address.
pub const BACK_POINTER: usize = 8;

/// Links activation `ctx`'s CPython frame `frame` as thread `ts`'s innermost: the word
/// before it pointing back at `ctx` (see the module doc), then `cpy::frame::push` with
/// function `func`'s code and dicts.
///
/// # Safety
/// As `cpy::frame::push`, with `frame` preceded by its back-pointer word; `ctx` stays at
/// its address until the frame is popped.
pub unsafe fn link_frame(
    ctx: *const Ctx,
    ts: crate::cpy::ThreadState,
    frame: *mut crate::cpy::frame::InterpreterFrame,
    func: *mut ffi::PyObject,
    nlocalsplus: usize,
) {
    *((frame as usize - BACK_POINTER) as *mut usize) = ctx as usize;
    let f = func as *mut ffi::PyFunctionObject;
    crate::cpy::frame::push(
        ts,
        frame,
        func,
        (*f).func_code,
        (*f).func_globals,
        (*f).func_builtins,
        nlocalsplus,
    );
}

/// The activation whose frame is `f`, if `f` is one of ours.
///
/// Every frame has a readable word before it (ours: the back pointer; CPython's: the
/// previous frame's last slot or its data-stack chunk's header; a frame object's or a
/// generator's: their own fields), and only ours holds the address of a context on this
/// thread's stack that names `f` as its frame. (Frames may be on the heap: `run_bound`
/// puts large ones there.) Another thread's activations are not found, so not synced.
///
/// # Safety
/// GIL held; `f` is a live frame.
unsafe fn activation_of<'a>(f: *mut crate::cpy::frame::InterpreterFrame) -> Option<&'a Ctx<'a>> {
    // A generator's frame is inside the generator: one of ours keeps its running
    // activation's context in a word of its own (`generator`).
    let ctx = if (*f).owner == crate::cpy::gen::OWNED_BY_GENERATOR {
        crate::generator::running_ctx(f)
    } else {
        *((f as usize - BACK_POINTER) as *const usize)
    };
    if !ctx.is_multiple_of(std::mem::align_of::<Ctx>()) || !crate::stack::on_this_stack(ctx) {
        return None;
    }
    let ctx = &*(ctx as *const Ctx);
    (ctx.frame == f).then_some(ctx)
}

/// Writes the locals of frame state `state` of activation `ctx` into its frame's slots, as
/// owned references (unboxed numbers boxed in place, so there is still one object per
/// value), and marks the slots as ours to release (`stacktop`).
///
/// # Safety
/// GIL held; `ctx` is a live activation of this thread, its frame linked.
unsafe fn sync_locals(ctx: &Ctx, state: u32) -> PyResult<()> {
    let c = ctx.compiled;
    let n = c.nlocalsplus;
    let frame = ctx.frame;
    let regs = std::slice::from_raw_parts_mut(ctx.regs, c.linear.nregs as usize);
    let slots = (*frame).localsplus(n);
    for (slot, &r) in slots.iter_mut().zip(&c.linear.states[state as usize]) {
        let reg = &mut regs[r as usize];
        reg.box_in_place()?;
        let o = reg.as_ptr();
        ffi::Py_XINCREF(o);
        let old = std::mem::replace(slot, o);
        ffi::Py_XDECREF(old);
    }
    (*frame).stacktop = n as std::os::raw::c_int;
    Ok(())
}

/// Syncs the running activation `ctx` at instruction `pc`: before a builtin reads its
/// frame.
///
/// # Safety
/// GIL held; `ctx` is the thread's innermost frame's activation.
pub unsafe fn sync_own(ctx: &Ctx, pc: usize) -> PyResult<()> {
    let state = ctx.compiled.linear.insts[pc].state;
    if state != crate::lower::NO_STATE {
        sync_locals(ctx, state)?;
    }
    Ok(())
}

/// Syncs frame `f`'s activation as its frame is popped, when a frame object outlives it
/// (a traceback, `sys._getframe` kept it): the object then keeps the locals the frame ends
/// with, as CPython's does. Nothing is synced before that for a traceback entry: slots
/// synced then would keep the values of that moment alive until the function's end, where
/// CPython releases a local at its next rebinding (and the frame object reads its live
/// activation's locals through `f_locals` anyway). Any exception set is kept; an error
/// while syncing (out of memory boxing a number) leaves those slots empty.
///
/// # Safety
/// GIL held; `f` was just unlinked, its activation (if ours) not yet returned from.
pub unsafe fn sync_at_pop(f: *mut crate::cpy::frame::InterpreterFrame) {
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    if sync_frame(f).is_err() {
        ffi::PyErr_Clear();
    }
    ffi::PyErr_Restore(t, v, tb);
}

/// Syncs frame `f`'s activation, if it is a live one of ours, at the instruction its frame
/// says is running.
///
/// # Safety
/// GIL held; `f` is live.
unsafe fn sync_frame(f: *mut crate::cpy::frame::InterpreterFrame) -> PyResult<()> {
    if let Some(ctx) = activation_of(f) {
        let offset = ctx.compiled.offset_of_unit((*f).prev_instr);
        if let Some(state) = ctx.compiled.state_at(offset) {
            sync_locals(ctx, state)?;
        }
    }
    Ok(())
}

type Getter = unsafe extern "C" fn(*mut ffi::PyObject, *mut c_void) -> *mut ffi::PyObject;

/// The frame type's own `f_locals` getter, once wrapped.
static ORIGINAL_F_LOCALS: std::sync::OnceLock<Getter> = std::sync::OnceLock::new();

/// `frame.f_locals`, for every frame: an activation of ours is synced, then CPython's
/// getter runs as it always does.
unsafe extern "C" fn f_locals(o: *mut ffi::PyObject, closure: *mut c_void) -> *mut ffi::PyObject {
    let Some(original) = ORIGINAL_F_LOCALS.get() else {
        ffi::PyErr_SetString(ffi::PyExc_SystemError, c"tiered: f_locals hook".as_ptr());
        return std::ptr::null_mut();
    };
    // SAFETY (of the cast): the descriptor only hands its getter frame objects.
    let f = (*(o as *mut crate::cpy::frame::FrameObject)).f_frame;
    if sync_frame(f).is_err() {
        return std::ptr::null_mut();
    }
    original(o, closure)
}

/// Wraps the frame type's `f_locals` getter (at import, once): the descriptor object stays
/// the same, its `PyGetSetDef` is replaced by a copy whose getter is `f_locals`.
///
/// # Safety
/// GIL held.
pub unsafe fn install_f_locals_hook() -> PyResult<()> {
    if ORIGINAL_F_LOCALS.get().is_some() {
        return Ok(());
    }
    let t = std::ptr::addr_of_mut!(ffi::PyFrame_Type);
    let descr = crate::cpy::type_attr(t, c"f_locals")?;
    let def = crate::cpy::getset_def_of(descr)?;
    let Some(get) = (*def).get else {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tiered: f_locals has no getter".as_ptr(),
        );
        return Err(Raised);
    };
    let _ = ORIGINAL_F_LOCALS.set(get);
    // Leaked: the descriptor refers to it for the life of the process.
    let ours = Box::leak(Box::new(ffi::PyGetSetDef {
        name: (*def).name,
        get: Some(f_locals),
        set: (*def).set,
        doc: (*def).doc,
        closure: (*def).closure,
    }));
    crate::cpy::set_getset_def(descr, ours);
    Ok(())
}
