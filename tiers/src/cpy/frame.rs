//! CPython 3.11 frames for tiered activations (Include/internal/pycore_frame.h).
//!
//! Every activation of tiered code is a real `_PyInterpreterFrame`, linked into the
//! thread's frame chain (`tstate->cframe->current_frame`), so everything that looks at the
//! stack sees it as CPython's own: `sys._getframe`, `f_back`, tracebacks (with 3.11's column
//! carets, read from the real code object), `warnings`' stacklevel, logging's caller,
//! `exec`/`eval`'s future flags, `super()`, profilers and py-spy.
//!
//! The frame lives in its activation's own memory (the Rust or native stack, beside the
//! register file), not in the thread's data stack: a push is a few stores. What CPython
//! itself does when popping a frame (`_PyFrame_Clear`, `take_ownership`: not exported) is
//! done here in `pop`. Locals reach `localsplus` at sync points (`Frame::sync_locals`'s
//! callers), as owned references, exactly as CPython keeps them.

use super::ThreadState;
use pyo3_ffi as ffi;
use std::os::raw::{c_char, c_int};

/// 3.11's `_PyInterpreterFrame` header; `localsplus` (one slot per local, cell and free
/// variable) follows it.
#[repr(C)]
pub struct InterpreterFrame {
    /// The function (a strong reference in CPython; here borrowed from the caller, made
    /// strong when a frame object takes the frame over).
    pub f_func: *mut ffi::PyObject,
    /// Its globals (borrowed).
    pub f_globals: *mut ffi::PyObject,
    /// Its builtins (borrowed).
    pub f_builtins: *mut ffi::PyObject,
    /// The locals dict `locals()` and `f_locals` made (strong, may be NULL).
    pub f_locals: *mut ffi::PyObject,
    /// The code object (as `f_func`).
    pub f_code: *mut ffi::PyObject,
    /// The frame object, once something asked for one (strong, may be NULL).
    pub frame_obj: *mut ffi::PyObject,
    /// The calling frame.
    pub previous: *mut InterpreterFrame,
    /// The code unit of the instruction running (`f_lasti`, `f_lineno`, tracebacks).
    pub prev_instr: *mut u16,
    /// Slots of `localsplus` in use.
    pub stacktop: c_int,
    /// Whether an eval loop invocation started at this frame (never, for ours).
    pub is_entry: bool,
    /// Who owns the frame (`OWNED_BY_THREAD` while it runs).
    pub owner: c_char,
}

/// `FRAME_OWNED_BY_THREAD`.
pub const OWNED_BY_THREAD: c_char = 0;
/// `FRAME_OWNED_BY_FRAME_OBJECT`.
pub const OWNED_BY_FRAME_OBJECT: c_char = 2;

const _: () = assert!(std::mem::size_of::<InterpreterFrame>() == 72);

/// Byte offsets in a frame, for native code.
pub mod offset {
    use super::InterpreterFrame;
    /// `f_func`.
    pub const FUNC: i32 = std::mem::offset_of!(InterpreterFrame, f_func) as i32;
    /// `f_globals`.
    pub const GLOBALS: i32 = std::mem::offset_of!(InterpreterFrame, f_globals) as i32;
    /// `f_builtins`.
    pub const BUILTINS: i32 = std::mem::offset_of!(InterpreterFrame, f_builtins) as i32;
    /// `f_locals`.
    pub const LOCALS: i32 = std::mem::offset_of!(InterpreterFrame, f_locals) as i32;
    /// `f_code`.
    pub const CODE: i32 = std::mem::offset_of!(InterpreterFrame, f_code) as i32;
    /// `frame_obj`.
    pub const FRAME_OBJ: i32 = std::mem::offset_of!(InterpreterFrame, frame_obj) as i32;
    /// `previous`.
    pub const PREVIOUS: i32 = std::mem::offset_of!(InterpreterFrame, previous) as i32;
    /// `prev_instr`.
    pub const PREV_INSTR: i32 = std::mem::offset_of!(InterpreterFrame, prev_instr) as i32;
    /// The 8 bytes of `stacktop`, `is_entry` and `owner`, stored as one word.
    pub const TAIL: i32 = std::mem::offset_of!(InterpreterFrame, stacktop) as i32;
    /// The first `localsplus` slot.
    pub const LOCALSPLUS: i32 = std::mem::size_of::<InterpreterFrame>() as i32;
}

/// The word at `offset::TAIL` of a frame just pushed: `stacktop` 0 (no slot holds a
/// reference of ours yet: `sync_locals` sets it), `is_entry` false, owned by the thread
/// (little-endian: stacktop in the low 4 bytes, then is_entry, then owner). While it is 0,
/// and the frame has no frame object and no locals dict, popping it is an unlink only.
pub const fn tail_word() -> i64 {
    (OWNED_BY_THREAD as i64) << 40
}

/// The slots of `code`'s frames (`co_nlocalsplus`).
///
/// # Safety
/// `code` is a live 3.11 code object.
pub unsafe fn nlocalsplus_of(code: *mut ffi::PyObject) -> usize {
    *((code as usize + code_offset::NLOCALSPLUS) as *const c_int) as usize
}

/// `code`'s `co_flags`.
///
/// # Safety
/// `code` is a live 3.11 code object.
pub unsafe fn code_flags(code: *mut ffi::PyObject) -> u32 {
    *((code as usize + code_offset::FLAGS) as *const c_int) as u32
}

/// The value stack's size of `code`'s frames (`co_stacksize`).
///
/// # Safety
/// `code` is a live 3.11 code object.
pub unsafe fn stacksize_of(code: *mut ffi::PyObject) -> usize {
    *((code as usize + code_offset::STACKSIZE) as *const c_int) as usize
}

/// Bytes of a frame of `nlocalsplus` slots.
pub fn frame_size(nlocalsplus: usize) -> usize {
    std::mem::size_of::<InterpreterFrame>() + 8 * nlocalsplus
}

/// 3.11's `_PyCFrame`: the eval loop invocation's state, whose `current_frame` is the
/// thread's innermost frame.
#[repr(C)]
pub struct CFrame {
    /// 255 while a trace or profile function is set (0 while one runs): set at its start,
    /// by `_PyThreadState_UpdateTracingState` on the thread's innermost one when a hook is
    /// installed, and passed outward as eval loops return.
    pub use_tracing: u8,
    /// The innermost frame.
    pub current_frame: *mut InterpreterFrame,
    /// The enclosing invocation's.
    pub previous: *mut CFrame,
}

/// Byte offset of `use_tracing` in `CFrame`, for native code.
pub const CFRAME_USE_TRACING: i32 = std::mem::offset_of!(CFrame, use_tracing) as i32;

/// Byte offset of `current_frame` in `CFrame`, for native code.
pub const CFRAME_CURRENT: i32 = std::mem::offset_of!(CFrame, current_frame) as i32;

/// The head of 3.11's `PyFrameObject`, up to the frame data it holds once it owns its frame.
#[repr(C)]
pub struct FrameObject {
    ob_base: ffi::PyObject,
    /// The caller's frame object, once this one owns its frame.
    pub f_back: *mut ffi::PyObject,
    /// The frame: a running activation's, or `frame_data` once it owns it.
    pub f_frame: *mut InterpreterFrame,
    /// The frame's own trace function (a debugger's), or NULL.
    pub f_trace: *mut ffi::PyObject,
    /// The line, when non-zero (else computed from `f_frame`).
    pub f_lineno: c_int,
    /// Whether `line` events go to `f_trace` (default 1).
    pub f_trace_lines: c_char,
    f_trace_opcodes: c_char,
    f_fast_as_locals: c_char,
    /// Room for the frame (the code's locals plus value stack).
    pub frame_data: [*mut ffi::PyObject; 1],
}

/// Byte offsets in 3.11's `PyCodeObject` (Include/cpython/code.h) of what frames need:
/// checked at import (`check_code_layout`) against the code object's own attributes.
pub mod code_offset {
    /// `co_flags` (int).
    pub const FLAGS: usize = 48;
    /// `co_stacksize` (int).
    pub const STACKSIZE: usize = 68;
    /// `co_nlocalsplus` (int).
    pub const NLOCALSPLUS: usize = 76;
    /// `_co_firsttraceable` (int): the first instruction a frame is visible at.
    pub const FIRSTTRACEABLE: usize = 168;
    /// `co_code_adaptive`: the code units.
    pub const CODE_ADAPTIVE: usize = 184;
}

/// The address of code unit `offset` of code object `code`: what `prev_instr` holds while
/// the instruction at `offset` runs.
#[inline]
pub fn code_unit(code: *mut ffi::PyObject, offset: u32) -> *mut u16 {
    (code as usize + code_offset::CODE_ADAPTIVE + 2 * offset as usize) as *mut u16
}

/// The first code unit a frame of `code` is visible at (`_co_firsttraceable`): a frame
/// whose `prev_instr` is before it is "incomplete" and skipped by `sys._getframe`.
///
/// # Safety
/// `code` is a live 3.11 code object.
pub unsafe fn first_traceable(code: *mut ffi::PyObject) -> *mut u16 {
    let i = *((code as usize + code_offset::FIRSTTRACEABLE) as *const c_int);
    code_unit(code, i as u32)
}

/// Checks `code_offset` against a code object: its locals-plus count, flags and stack size, and its first
/// traceable instruction (RESUME, after any MAKE_CELL/COPY_FREE_VARS), must be what the
/// code's attributes say.
///
/// # Safety
/// GIL held; `code` a live code object with `nlocalsplus` slots, a value stack of
/// `stacksize` and `flags`, whose first RESUME is at `resume_at` (code units).
pub unsafe fn check_code_layout(
    code: *mut ffi::PyObject,
    nlocalsplus: usize,
    stacksize: usize,
    flags: u32,
    resume_at: u32,
) -> bool {
    let n = *((code as usize + code_offset::NLOCALSPLUS) as *const c_int);
    n as usize == nlocalsplus
        && code_flags(code) == flags
        && stacksize_of(code) == stacksize
        && first_traceable(code) == code_unit(code, resume_at)
}

impl InterpreterFrame {
    /// The `localsplus` slots.
    ///
    /// # Safety
    /// The frame has `n` slots.
    #[inline]
    pub unsafe fn localsplus(&mut self, n: usize) -> &mut [*mut ffi::PyObject] {
        let base = (self as *mut InterpreterFrame).add(1) as *mut *mut ffi::PyObject;
        std::slice::from_raw_parts_mut(base, n)
    }
}

/// Fills in the frame at `f` (room for `nlocalsplus` slots) for a call of `func` (code
/// `code`, its globals and builtins), its slots NULL, visible from its first traceable
/// instruction, and links it as the thread's innermost frame.
///
/// # Safety
/// GIL held, on `ts`'s thread; `f` is writable for `frame_size(nlocalsplus)` bytes and stays
/// put until `pop`; `func` and `code` stay alive until `pop`.
#[inline]
pub unsafe fn push(
    ts: ThreadState,
    f: *mut InterpreterFrame,
    func: *mut ffi::PyObject,
    code: *mut ffi::PyObject,
    globals: *mut ffi::PyObject,
    builtins: *mut ffi::PyObject,
    nlocalsplus: usize,
) {
    let cf = ts.cframe();
    f.write(InterpreterFrame {
        f_func: func,
        f_globals: globals,
        f_builtins: builtins,
        f_locals: std::ptr::null_mut(),
        f_code: code,
        frame_obj: std::ptr::null_mut(),
        previous: (*cf).current_frame,
        prev_instr: first_traceable(code),
        stacktop: 0,
        is_entry: false,
        owner: OWNED_BY_THREAD,
    });
    (*f).localsplus(nlocalsplus).fill(std::ptr::null_mut());
    (*cf).current_frame = f;
}

/// Unlinks frame `f` (the thread's innermost) and releases what it holds, as CPython's
/// `_PyFrame_Clear` does: a frame object that outlives the call (a traceback, `sys._getframe`
/// kept it) takes the frame over, with owned references; otherwise the locals synced into
/// it and its locals dict are released.
///
/// # Safety
/// GIL held; `f` was pushed by `push` on this thread and is the innermost frame.
pub unsafe fn pop(ts: ThreadState, f: *mut InterpreterFrame) {
    let cf = ts.cframe();
    (*cf).current_frame = (*f).previous;
    if !(*f).frame_obj.is_null() || !(*f).f_locals.is_null() || (*f).stacktop != 0 {
        finish_pop(f);
    }
}

/// The rest of `pop` once the frame is unlinked, for a frame something looked at (it has a
/// frame object or a locals dict; only then were locals synced into it).
///
/// # Safety
/// GIL held; `f` was pushed by `push` (or native code's equivalent) and just unlinked.
pub unsafe fn finish_pop(f: *mut InterpreterFrame) {
    let fo = (*f).frame_obj;
    if !fo.is_null() {
        (*f).frame_obj = std::ptr::null_mut();
        if ffi::Py_REFCNT(fo) > 1 {
            crate::activation::sync_at_pop(f);
            take_ownership(fo, f);
            ffi::Py_DECREF(fo);
            return;
        }
        ffi::Py_DECREF(fo);
    }
    release(f, (*f).stacktop.max(0) as usize);
}

/// CPython's `_PyFrame_Clear` for a frame owned by a generator (whose function and code
/// are strong references), unlinked: a frame object that outlives it takes it over,
/// otherwise its slots, locals dict, function and code are released.
///
/// # Safety
/// GIL held; `f` is a finished generator's frame, not linked.
pub unsafe fn clear_owned(f: *mut InterpreterFrame) {
    let fo = (*f).frame_obj;
    let (func, code) = ((*f).f_func, (*f).f_code);
    if !fo.is_null() {
        (*f).frame_obj = std::ptr::null_mut();
        if ffi::Py_REFCNT(fo) > 1 {
            // It takes references of its own to the function and code.
            take_ownership(fo, f);
            ffi::Py_DECREF(fo);
            ffi::Py_DECREF(func);
            ffi::Py_DECREF(code);
            return;
        }
        ffi::Py_DECREF(fo);
    }
    release(f, (*f).stacktop.max(0) as usize);
    ffi::Py_DECREF(func);
    ffi::Py_DECREF(code);
}

/// Releases the locals synced into `f` and its locals dict.
#[inline]
unsafe fn release(f: *mut InterpreterFrame, n: usize) {
    for slot in (*f).localsplus(n) {
        let o = std::mem::replace(slot, std::ptr::null_mut());
        ffi::Py_XDECREF(o);
    }
    let d = std::mem::replace(&mut (*f).f_locals, std::ptr::null_mut());
    ffi::Py_XDECREF(d);
}

/// CPython's `take_ownership`: copies the frame into frame object `fo`, which from then on
/// owns it (function, code, locals dict and every slot as strong references: the slots
/// never synced are NULL), links `f_back` to the caller's frame object and lets the GC see
/// it.
unsafe fn take_ownership(fo: *mut ffi::PyObject, f: *mut InterpreterFrame) {
    let o = fo as *mut FrameObject;
    let n = nlocalsplus_of((*f).f_code);
    let data = std::ptr::addr_of_mut!((*o).frame_data) as *mut InterpreterFrame;
    std::ptr::copy_nonoverlapping(f as *const u8, data as *mut u8, frame_size(n));
    (*o).f_frame = data;
    (*data).owner = OWNED_BY_FRAME_OBJECT;
    (*data).stacktop = n as c_int;
    // Ours were borrowed: the frame object's are strong (frame_dealloc releases them).
    ffi::Py_INCREF((*data).f_func);
    ffi::Py_INCREF((*data).f_code);
    (*data).frame_obj = std::ptr::null_mut();
    (*data).previous = std::ptr::null_mut();
    // The caller's frame object (made if it has none), now that `f` is unlinked.
    if (*o).f_back.is_null() {
        let back = ffi::PyEval_GetFrame();
        if !back.is_null() {
            ffi::Py_INCREF(back as *mut ffi::PyObject);
            (*o).f_back = back as *mut ffi::PyObject;
        }
    }
    if ffi::PyObject_GC_IsTracked(fo) == 0 {
        ffi::PyObject_GC_Track(fo as *mut std::ffi::c_void);
    }
    // The slots and dict moved with the copy.
    (*f).localsplus(n).fill(std::ptr::null_mut());
    (*f).stacktop = 0;
    (*f).f_locals = std::ptr::null_mut();
}

/// The frame object of the thread's innermost frame, made if it has none (borrowed).
///
/// # Safety
/// GIL held.
pub unsafe fn current_frame_object() -> *mut ffi::PyObject {
    ffi::PyEval_GetFrame() as *mut ffi::PyObject
}
