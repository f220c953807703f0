//! CPython 3.11's generator objects (Include/cpython/genobject.h, Objects/genobject.c):
//! the layout a generator of ours shares with CPython's, so that CPython's own methods,
//! attributes and eval loop work on it unchanged.

use super::frame::InterpreterFrame;
use pyo3_ffi as ffi;
use std::os::raw::{c_char, c_int};

/// `_PyErr_StackItem`: one handled-exception level (a generator keeps its own).
#[repr(C)]
pub struct ErrStackItem {
    /// The exception being handled at this level (strong, may be NULL).
    pub exc_value: *mut ffi::PyObject,
    /// The level below (the thread's chain while the generator runs).
    pub previous_item: *mut ErrStackItem,
}

/// `_PyGenObject_HEAD(gi)`: the fields before the embedded frame.
#[repr(C)]
pub struct GenHead {
    /// The object header (allocated as a variable-size object, `co_nlocalsplus +
    /// co_stacksize` slots after the frame header, but with no `ob_size` of its own:
    /// `gi_code` overwrites it).
    pub ob_base: ffi::PyObject,
    /// The code object (strong).
    pub gi_code: *mut ffi::PyObject,
    /// Weak references to it.
    pub gi_weakreflist: *mut ffi::PyObject,
    /// `__name__` (strong).
    pub gi_name: *mut ffi::PyObject,
    /// `__qualname__` (strong).
    pub gi_qualname: *mut ffi::PyObject,
    /// Its handled-exception level, linked into the thread's while it runs.
    pub gi_exc_state: ErrStackItem,
    /// A coroutine's origin or an async generator's finalizer (NULL for generators).
    pub gi_origin_or_finalizer: *mut ffi::PyObject,
    /// Async generators only.
    pub gi_hooks_inited: c_char,
    /// Async generators only.
    pub gi_closed: c_char,
    /// Async generators only.
    pub gi_running_async: c_char,
    /// `FRAME_CREATED` ... `FRAME_CLEARED`.
    pub gi_frame_state: i8,
}

/// Where the embedded `_PyInterpreterFrame` (`gi_iframe`) starts.
pub const IFRAME: usize = std::mem::size_of::<GenHead>();
const _: () = assert!(IFRAME == 80);

/// `tp_basicsize` of 3.11's generator type: up to the frame's `localsplus`.
pub const BASICSIZE: usize = IFRAME + std::mem::size_of::<InterpreterFrame>();

/// `gi_frame_state` values (`PyFrameState`).
pub const FRAME_CREATED: i8 = -2;
/// Suspended at a yield.
pub const FRAME_SUSPENDED: i8 = -1;
/// Running.
pub const FRAME_EXECUTING: i8 = 0;
/// Returned or raised (the frame about to be cleared).
pub const FRAME_COMPLETED: i8 = 1;
/// Finished; the frame released.
pub const FRAME_CLEARED: i8 = 4;

/// `FRAME_OWNED_BY_GENERATOR`: the frame lives in a generator (`f_func`, `f_code` strong).
pub const OWNED_BY_GENERATOR: c_char = 1;

/// `PySendResult`.
pub const PYGEN_RETURN: std::os::raw::c_int = 0;
/// The receiver yielded.
pub const PYGEN_NEXT: std::os::raw::c_int = 1;
/// An exception is set.
pub const PYGEN_ERROR: std::os::raw::c_int = -1;

/// The generator's head.
///
/// # Safety
/// `gen` is a live generator.
#[inline]
pub unsafe fn head<'a>(gen: *mut ffi::PyObject) -> &'a mut GenHead {
    &mut *(gen as *mut GenHead)
}

/// The generator's frame.
#[inline]
pub fn iframe(gen: *mut ffi::PyObject) -> *mut InterpreterFrame {
    (gen as usize + IFRAME) as *mut InterpreterFrame
}

/// The generator whose frame is `f` (owned by a generator).
#[inline]
pub fn of_frame(f: *mut InterpreterFrame) -> *mut ffi::PyObject {
    (f as usize - IFRAME) as *mut ffi::PyObject
}

/// The address of the first word after the frame's `co_nlocalsplus + co_stacksize` slots
/// (a generator of ours keeps words of its own there).
///
/// # Safety
/// `gen` is a live generator, allocated with room past its code's slots.
#[inline]
pub unsafe fn past_slots(gen: *mut ffi::PyObject) -> *mut usize {
    let code = head(gen).gi_code;
    let n = super::frame::nlocalsplus_of(code) + super::frame::stacksize_of(code);
    (gen as usize + BASICSIZE + 8 * n) as *mut usize
}

/// `PyAsyncGenASend` and `PyAsyncGenAThrow`: the awaitables an async generator's
/// `__anext__()`/`asend()` and `athrow()`/`aclose()` return, laid out alike.
#[repr(C)]
pub struct AsyncGenAwaitable {
    /// The object header.
    pub ob_base: ffi::PyObject,
    /// The async generator it drives (strong).
    pub gen: *mut ffi::PyObject,
    /// `asend()`'s value (NULL for `__anext__()`), or `athrow()`'s arguments tuple (NULL
    /// for `aclose()`); strong.
    pub arg: *mut ffi::PyObject,
    /// `AWAITABLE_STATE_INIT`, `_ITER` or `_CLOSED`.
    pub state: c_int,
}

/// `AwaitableState`: not iterated yet.
pub const AWAITABLE_INIT: c_int = 0;
/// Being iterated.
pub const AWAITABLE_ITER: c_int = 1;
/// Done: awaiting it again is an error.
pub const AWAITABLE_CLOSED: c_int = 2;

/// `_PyAsyncGenWrappedValue`: what an async generator's `yield` hands its awaitable
/// (ASYNC_GEN_WRAP), told apart from what its `await`s pass through.
#[repr(C)]
pub struct WrappedValue {
    /// The object header.
    pub ob_base: ffi::PyObject,
    /// The value yielded (strong).
    pub value: *mut ffi::PyObject,
}

extern "C" {
    /// The async generator awaitables' and wrapped value's types.
    pub static mut _PyAsyncGenASend_Type: ffi::PyTypeObject;
    /// `athrow()`'s and `aclose()`'s awaitable.
    pub static mut _PyAsyncGenAThrow_Type: ffi::PyTypeObject;
    /// A value an async generator yields, wrapped.
    pub static mut _PyAsyncGenWrappedValue_Type: ffi::PyTypeObject;
    fn _PyEval_EvalFrameDefault(
        tstate: *mut ffi::PyThreadState,
        frame: *mut InterpreterFrame,
        throwflag: c_int,
    ) -> *mut ffi::PyObject;
    /// Makes a released object's memory a live object again (refcount 1), as CPython's
    /// free lists do.
    fn _Py_NewReference(o: *mut ffi::PyObject);
}

/// An object taken from one of our free lists: live again, with one reference (it keeps
/// its type, which the free list's owner checked).
///
/// # Safety
/// GIL held; `o` is memory of a released object of a GC type, untracked, that only its
/// free list refers to.
pub unsafe fn revive(o: *mut ffi::PyObject) {
    _Py_NewReference(o);
}

/// Runs frame `f` in CPython's own loop (`_PyEval_EvalFrame`; no PEP 523 hook is
/// installed by us), `exc` with the exception set thrown in.
///
/// # Safety
/// GIL held; `f` a generator's frame set up to run as `gen_send_ex2` leaves it.
pub unsafe fn eval_frame(
    ts: super::ThreadState,
    f: *mut InterpreterFrame,
    exc: bool,
) -> *mut ffi::PyObject {
    _PyEval_EvalFrameDefault(ts.as_ptr(), f, c_int::from(exc))
}

/// `val` wrapped as an async generator's `yield` wraps it (`_PyAsyncGenValueWrapperNew`,
/// which libpython does not export); NULL with an error set if out of memory. The
/// wrapper comes from `FREE_WRAPPED` when it has one.
///
/// # Safety
/// GIL held; `val` live.
pub unsafe fn wrap_value(val: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let o: *mut WrappedValue = match FREE_WRAPPED.with(|f| f.pop()) {
        Some(o) => {
            revive(o as *mut ffi::PyObject);
            o
        }
        None => ffi::PyObject_GC_New(std::ptr::addr_of_mut!(_PyAsyncGenWrappedValue_Type)),
    };
    if o.is_null() {
        return std::ptr::null_mut();
    }
    ffi::Py_INCREF(val);
    (*o).value = val;
    ffi::PyObject_GC_Track(o as *mut std::ffi::c_void);
    o as *mut ffi::PyObject
}

/// Wrappers of yielded values released by the awaitables of our async generators
/// (`release_wrapped`), kept for the next `wrap_value`, as CPython keeps its own
/// (`value_freelist`, up to 80). Every step of an `async for` over one of ours makes one;
/// CPython's free list is private to `genobject.c`, so ours went to it and came back from
/// the allocator: about 50 instructions a step in async_generators.
static FREE_WRAPPED: crate::runtime::GilCell<Vec<*mut WrappedValue>> =
    crate::runtime::GilCell::new(Vec::new());

/// How many released wrappers `FREE_WRAPPED` keeps (CPython's `_PyAsyncGen_MAXFREELIST`).
const MAX_FREE_WRAPPED: usize = 80;

/// Releases `o`, a wrapped yield (`wrapped_value`) the caller owns: onto `FREE_WRAPPED`
/// when that was its only reference and the list has room, else as any object.
///
/// # Safety
/// GIL held; `o` a live wrapped value whose reference the caller gives up.
pub unsafe fn release_wrapped(o: *mut ffi::PyObject) {
    if ffi::Py_REFCNT(o) != 1 || FREE_WRAPPED.with(|f| f.len() >= MAX_FREE_WRAPPED) {
        ffi::Py_DECREF(o);
        return;
    }
    // What CPython's dealloc does before its own free list: untracked, the value let go
    // once the wrapper is on the list (releasing it may run any code, wrapping included).
    ffi::PyObject_GC_UnTrack(o as *mut std::ffi::c_void);
    let w = o as *mut WrappedValue;
    let val = std::mem::replace(&mut (*w).value, std::ptr::null_mut());
    FREE_WRAPPED.with(|f| f.push(w));
    ffi::Py_XDECREF(val);
}

/// The value `o` wraps, if it is an async generator's wrapped yield.
///
/// # Safety
/// GIL held; `o` live.
pub unsafe fn wrapped_value(o: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    (ffi::Py_TYPE(o) == std::ptr::addr_of_mut!(_PyAsyncGenWrappedValue_Type))
        .then(|| (*(o as *mut WrappedValue)).value)
}

/// Checks the layout against the running CPython's generator types.
///
/// # Safety
/// GIL held.
pub unsafe fn layout_holds() -> bool {
    let t = std::ptr::addr_of!(ffi::PyGen_Type);
    let a = std::ptr::addr_of!(ffi::PyAsyncGen_Type);
    let size = |t: *const ffi::PyTypeObject| (*t).tp_basicsize as usize;
    (*t).tp_basicsize as usize == BASICSIZE
        && (*t).tp_itemsize as usize == 8
        && (*t).tp_weaklistoffset as usize == std::mem::offset_of!(GenHead, gi_weakreflist)
        && size(a) == BASICSIZE
        && size(std::ptr::addr_of!(_PyAsyncGenASend_Type))
            == std::mem::size_of::<AsyncGenAwaitable>()
        && size(std::ptr::addr_of!(_PyAsyncGenAThrow_Type))
            == std::mem::size_of::<AsyncGenAwaitable>()
        && size(std::ptr::addr_of!(_PyAsyncGenWrappedValue_Type))
            == std::mem::size_of::<WrappedValue>()
}
