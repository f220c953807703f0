//! CPython 3.11 entry points and layouts that pyo3-ffi does not expose. Each is exported
//! by libpython 3.11 (PyAPI_FUNC in its headers); layouts mirror 3.11's headers and are
//! checked against the running interpreter by the pytest suite (tracebacks, tracing).

pub mod dict;
pub mod frame;
pub mod gen;

use pyo3_ffi as ffi;
use std::os::raw::{c_char, c_int, c_void};

extern "C" {
    /// Looks up a method without binding it; 1 = unbound method found (call with self).
    pub fn _PyObject_GetMethod(
        obj: *mut ffi::PyObject,
        name: *mut ffi::PyObject,
        method: *mut *mut ffi::PyObject,
    ) -> c_int;
    /// The MRO lookup generic attribute access starts with (borrowed result, no error);
    /// it also gives the type a version tag when it can have one.
    pub fn _PyType_Lookup(
        tp: *mut ffi::PyTypeObject,
        name: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    /// Special-method lookup on the type (what `with` uses).
    pub fn _PyObject_LookupSpecial(
        obj: *mut ffi::PyObject,
        name: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    /// getattr that returns 0 without raising when the attribute is missing.
    pub fn _PyObject_LookupAttr(
        obj: *mut ffi::PyObject,
        name: *mut ffi::PyObject,
        result: *mut *mut ffi::PyObject,
    ) -> c_int;
    /// `"f()"`-style description of a callable, for call error messages.
    pub fn _PyObject_FunctionStr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject;
    /// dict merge with duplicate detection (override=2 raises KeyError on a duplicate).
    pub fn _PyDict_MergeEx(a: *mut ffi::PyObject, b: *mut ffi::PyObject, override_: c_int)
        -> c_int;
    /// `list.extend`.
    pub fn _PyList_Extend(
        list: *mut ffi::PyObject,
        iterable: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    /// `set.update` with one iterable.
    pub fn _PySet_Update(set: *mut ffi::PyObject, iterable: *mut ffi::PyObject) -> c_int;
    /// Joins an array of str.
    pub fn _PyUnicode_JoinArray(
        sep: *mut ffi::PyObject,
        items: *const *mut ffi::PyObject,
        n: ffi::Py_ssize_t,
    ) -> *mut ffi::PyObject;
    /// An empty code object with a name, file and first line: the code of our traceback frames.
    pub fn PyCode_NewEmpty(
        filename: *const c_char,
        funcname: *const c_char,
        firstlineno: c_int,
    ) -> *mut ffi::PyObject;
    /// ImportError with name and path.
    pub fn PyErr_SetImportError(
        msg: *mut ffi::PyObject,
        name: *mut ffi::PyObject,
        path: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    /// `"()"` / `" object"` suffix used by call error messages.
    pub fn PyEval_GetFuncDesc(f: *mut ffi::PyObject) -> *const c_char;
    /// The name of a callable for error messages.
    pub fn PyEval_GetFuncName(f: *mut ffi::PyObject) -> *const c_char;
    /// Whether the interpreter is finalizing (3.11's name; 3.13 calls it `Py_IsFinalizing`).
    fn _Py_IsFinalizing() -> c_int;
}

/// Whether the interpreter is finalizing (then threads other than the finalizing one are
/// ended when they try to take the GIL).
///
/// # Safety
/// Any thread, GIL or not: it reads one runtime field.
pub unsafe fn is_finalizing() -> bool {
    _Py_IsFinalizing() != 0
}

/// The head of 3.11's `PyThreadState` (Include/cpython/pystate.h) up to `id`. The fields
/// past the trace hooks are only read once `ThreadState::id` has checked the layout
/// against libpython's own accessors.
#[repr(C)]
struct ThreadStateHead {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut c_void,
    _initialized: c_int,
    _static: c_int,
    recursion_remaining: c_int,
    recursion_limit: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    tracing_what: c_int,
    cframe: *mut c_void,
    c_profilefunc: *mut c_void,
    c_tracefunc: *mut c_void,
    c_profileobj: *mut c_void,
    c_traceobj: *mut c_void,
    curexc_type: *mut c_void,
    curexc_value: *mut c_void,
    curexc_traceback: *mut c_void,
    exc_info: *mut c_void,
    dict: *mut c_void,
    gilstate_counter: c_int,
    async_exc: *mut c_void,
    thread_id: std::ffi::c_ulong,
    native_thread_id: std::ffi::c_ulong,
    trash_delete_nesting: c_int,
    trash_delete_later: *mut c_void,
    on_delete: *mut c_void,
    on_delete_data: *mut c_void,
    coroutine_origin_tracking_depth: c_int,
    async_gen_firstiter: *mut c_void,
    async_gen_finalizer: *mut c_void,
    context: *mut c_void,
    context_ver: u64,
    id: u64,
}

/// The function a `staticmethod` or `classmethod` wraps (3.11's objects: the header,
/// then `sm_callable` / `cm_callable`); None if it has none yet.
///
/// # Safety
/// GIL held; `sm` is an exact staticmethod or classmethod.
pub unsafe fn staticmethod_callable(sm: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    let f = *((sm as *mut u8).add(std::mem::size_of::<ffi::PyObject>()) as *mut *mut ffi::PyObject);
    (!f.is_null()).then_some(f)
}

extern "C" {
    /// The type of bound methods of Python functions (`types.MethodType`).
    static mut PyMethod_Type: ffi::PyTypeObject;
}

/// Byte offset of a cell's content (`PyCellObject`: the header, then `ob_ref`), for
/// native code.
pub const CELL_CONTENTS: i32 = std::mem::size_of::<ffi::PyObject>() as i32;

/// Byte offsets of a bound method's function and `self` (`PyMethodObject`: the header,
/// then `im_func`, `im_self`), for native code.
pub const BOUND_METHOD_PARTS: (i32, i32) = (16, 24);

/// Byte offsets of a builtin function's method definition and `self` (`PyCFunctionObject`:
/// the header, then `m_ml`, `m_self`), for native code.
pub const CFUNCTION_PARTS: (i32, i32) = (
    std::mem::offset_of!(ffi::PyCFunctionObject, m_ml) as i32,
    std::mem::offset_of!(ffi::PyCFunctionObject, m_self) as i32,
);

/// The type of bound methods, for native code's guards.
pub fn bound_method_type() -> *mut ffi::PyTypeObject {
    // (Taking a static's address reads nothing.)
    std::ptr::addr_of_mut!(PyMethod_Type)
}

/// The function and `self` of a bound method (`BOUND_METHOD_PARTS`); None if `m` is no
/// bound method.
///
/// # Safety
/// GIL held; `m` a live object.
pub unsafe fn bound_method_parts(
    m: *mut ffi::PyObject,
) -> Option<(*mut ffi::PyObject, *mut ffi::PyObject)> {
    if ffi::Py_TYPE(m) != bound_method_type() {
        return None;
    }
    let at = |off: i32| *((m as *mut u8).add(off as usize) as *mut *mut ffi::PyObject);
    Some((at(BOUND_METHOD_PARTS.0), at(BOUND_METHOD_PARTS.1)))
}

/// Byte offset, in exact ints, lists, tuples and bytes (`ob_size`), dicts (`ma_used`) and
/// strs (`length`), of the word that is 0 exactly when the object is false (3.11's
/// layouts: the first word after the object header in each).
pub const SIZED_WORD: i32 = 16;

/// Whether `ThreadStateHead`'s `id` is where libpython keeps it: 0 not checked yet, 1 yes,
/// 2 no (then `PyThreadState_GetID` is called each time).
static ID_LAYOUT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

extern "C" {
    /// The calling thread's identifier (`threading.get_ident()`).
    fn PyThread_get_thread_ident() -> std::ffi::c_ulong;
    /// The current thread state, without `PyThreadState_Get`'s NULL check (3.11 exports
    /// it; with the GIL held it is never NULL).
    fn _PyThreadState_UncheckedGet() -> *mut ffi::PyThreadState;
}

/// Byte offsets in 3.11's thread state, for native code: the recursion counter and the
/// profile and trace hooks (non-NULL while set).
pub mod tstate_offset {
    /// `recursion_remaining` (a C int).
    pub const RECURSION_REMAINING: i32 =
        std::mem::offset_of!(super::ThreadStateHead, recursion_remaining) as i32;
    /// `c_profilefunc`.
    pub const PROFILEFUNC: i32 = std::mem::offset_of!(super::ThreadStateHead, c_profilefunc) as i32;
    /// `c_tracefunc`.
    pub const TRACEFUNC: i32 = std::mem::offset_of!(super::ThreadStateHead, c_tracefunc) as i32;
    /// `id` (read only once `id_layout_holds`).
    pub const ID: i32 = std::mem::offset_of!(super::ThreadStateHead, id) as i32;
    /// `cframe`: the innermost eval loop invocation's `_PyCFrame`.
    pub const CFRAME: i32 = std::mem::offset_of!(super::ThreadStateHead, cframe) as i32;
}

/// Whether `ThreadStateHead::id` was checked against libpython and holds, so native code
/// may read it at `tstate_offset::ID`.
pub fn id_layout_holds() -> bool {
    ID_LAYOUT.load(std::sync::atomic::Ordering::Relaxed) == 1
}

/// The address of libpython's `_PyThreadState_UncheckedGet`, for native code.
pub fn current_fn() -> usize {
    _PyThreadState_UncheckedGet as *const () as usize
}

/// The calling thread's state, read once per call from CPython and handed down (each
/// `PyThreadState_Get` is a call into libpython). Native code reads the same fields through
/// `tstate_offset`.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct ThreadState(*mut ThreadStateHead);

impl ThreadState {
    /// The current thread's state.
    ///
    /// # Safety
    /// GIL held (the state is then live and has 3.11's layout: this crate only builds for
    /// 3.11).
    #[inline]
    pub unsafe fn current() -> ThreadState {
        ThreadState(_PyThreadState_UncheckedGet() as *mut ThreadStateHead)
    }

    /// The state's address (identifies the thread while it runs).
    #[inline]
    pub fn addr(self) -> usize {
        self.0 as usize
    }

    /// The state's id, unique among the interpreter's thread states (never reused).
    ///
    /// # Safety
    /// GIL held.
    #[inline(always)]
    pub unsafe fn id(self) -> u64 {
        if ID_LAYOUT.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            return (*self.0).id;
        }
        self.id_checked()
    }

    /// `id` before the mirror's layout is known to hold (or when it does not).
    #[cold]
    #[inline(never)]
    unsafe fn id_checked(self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let real = ffi::PyThreadState_GetID(self.0 as *mut ffi::PyThreadState) as u64;
        if ID_LAYOUT.load(Relaxed) == 0 {
            // Read through the mirror only if it agrees with libpython on this state: its
            // id, and the thread id before it (this state is the calling thread's, which
            // created it).
            let ok = (*self.0).id == real && (*self.0).thread_id == PyThread_get_thread_ident();
            ID_LAYOUT.store(if ok { 1 } else { 2 }, Relaxed);
        }
        real
    }

    /// The innermost eval loop invocation's state, whose `current_frame` heads the
    /// thread's frame chain.
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn cframe(self) -> *mut frame::CFrame {
        (*self.0).cframe as *mut frame::CFrame
    }

    /// Whether `sys.settrace` or `sys.setprofile` is active on this thread: then calls run
    /// in CPython so debuggers, profilers and coverage see every line.
    #[inline]
    pub fn tracing(self) -> bool {
        // SAFETY: `current` only makes live states, used on their own thread.
        unsafe { !(*self.0).c_profilefunc.is_null() || !(*self.0).c_tracefunc.is_null() }
    }

    /// Whether a trace or profile function is running on this thread now (`tstate->tracing`:
    /// hooks are not called from inside one).
    #[inline]
    pub fn in_hook(self) -> bool {
        // SAFETY: `current` only makes live states, used on their own thread.
        unsafe { (*self.0).tracing != 0 }
    }

    /// The profile hook: `(c_profilefunc, c_profileobj)` (NULL when none).
    #[inline]
    pub fn profile_hook(self) -> (*mut c_void, *mut ffi::PyObject) {
        // SAFETY: as `in_hook`.
        unsafe {
            (
                (*self.0).c_profilefunc,
                (*self.0).c_profileobj as *mut ffi::PyObject,
            )
        }
    }

    /// The trace hook: `(c_tracefunc, c_traceobj)` (NULL when none).
    #[inline]
    pub fn trace_hook(self) -> (*mut c_void, *mut ffi::PyObject) {
        // SAFETY: as `in_hook`.
        unsafe {
            (
                (*self.0).c_tracefunc,
                (*self.0).c_traceobj as *mut ffi::PyObject,
            )
        }
    }

    /// The head of the thread's handled-exception chain (`exc_info`: a generator's level
    /// while one runs).
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn exc_info(self) -> *mut gen::ErrStackItem {
        (*self.0).exc_info as *mut gen::ErrStackItem
    }

    /// Makes `item` the head of the handled-exception chain.
    ///
    /// # Safety
    /// GIL held, on the state's own thread; `item` stays live while it is the head.
    #[inline]
    pub unsafe fn set_exc_info(self, item: *mut gen::ErrStackItem) {
        (*self.0).exc_info = item as *mut c_void;
    }

    /// `sys.get_asyncgen_hooks()`: (firstiter, finalizer), new references, NULL where
    /// unset.
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    pub unsafe fn asyncgen_hooks(self) -> crate::value::PyResult<[*mut ffi::PyObject; 2]> {
        // Past the trace hooks, as `coroutine_origin_tracking_depth`.
        self.id();
        if ID_LAYOUT.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            let hooks = [
                (*self.0).async_gen_firstiter as *mut ffi::PyObject,
                (*self.0).async_gen_finalizer as *mut ffi::PyObject,
            ];
            hooks.iter().for_each(|&h| ffi::Py_XINCREF(h));
            return Ok(hooks);
        }
        let get = ffi::PySys_GetObject(c"get_asyncgen_hooks".as_ptr());
        let r = match get.is_null() {
            true => std::ptr::null_mut(),
            false => ffi::PyObject_CallNoArgs(get),
        };
        if r.is_null() {
            if ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_SetString(
                    ffi::PyExc_RuntimeError,
                    c"tiered: no sys.get_asyncgen_hooks".as_ptr(),
                );
            }
            return Err(crate::value::Raised);
        }
        let mut hooks = [std::ptr::null_mut(); 2];
        for (i, h) in hooks.iter_mut().enumerate() {
            let o = ffi::PySequence_GetItem(r, i as ffi::Py_ssize_t);
            if o.is_null() {
                ffi::Py_DECREF(r);
                ffi::Py_XDECREF(hooks[0]);
                return Err(crate::value::Raised);
            }
            if o == ffi::Py_None() {
                ffi::Py_DECREF(o);
            } else {
                *h = o;
            }
        }
        ffi::Py_DECREF(r);
        Ok(hooks)
    }

    /// `sys.get_coroutine_origin_tracking_depth()` (0 when off).
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    pub unsafe fn coroutine_origin_tracking_depth(self) -> i32 {
        // The field is past the trace hooks: read through the mirror once `id` checked it.
        self.id();
        if ID_LAYOUT.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            return (*self.0).coroutine_origin_tracking_depth;
        }
        let sys = ffi::PySys_GetObject(c"get_coroutine_origin_tracking_depth".as_ptr());
        if sys.is_null() {
            return 0;
        }
        let r = ffi::PyObject_CallNoArgs(sys);
        if r.is_null() {
            ffi::PyErr_Clear();
            return 0;
        }
        let d = ffi::PyLong_AsLong(r) as i32;
        ffi::Py_DECREF(r);
        d
    }

    /// The state, for the C API.
    #[inline]
    pub fn as_ptr(self) -> *mut ffi::PyThreadState {
        self.0 as *mut ffi::PyThreadState
    }

    /// `Py_EnterRecursiveCall("")` without the call: 3.11's inline version decrements
    /// `recursion_remaining` and only calls into CPython (for the RecursionError) when it
    /// runs out. Returns false with RecursionError set.
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn enter_recursive_call(self) -> bool {
        if (*self.0).recursion_remaining > 0 {
            (*self.0).recursion_remaining -= 1;
            return true;
        }
        ffi::Py_EnterRecursiveCall(c"".as_ptr()) == 0
    }

    /// `enter_recursive_call` where a level is left, without raising where none is: for
    /// a step that takes another way when this fails (which then raises as CPython does).
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn try_enter_recursive_call(self) -> bool {
        if (*self.0).recursion_remaining > 0 {
            (*self.0).recursion_remaining -= 1;
            return true;
        }
        false
    }

    /// `Py_LeaveRecursiveCall()`, inline as in 3.11 (after a successful
    /// `enter_recursive_call`).
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn leave_recursive_call(self) {
        (*self.0).recursion_remaining += 1;
    }

    /// Whether no recursion level is left: the running frame is at the recursion limit
    /// (entering a frame takes a level and leaving gives it back, so within a frame's own
    /// ops this holds only for the frame entered with the last level; and
    /// `sys.setrecursionlimit` refuses a limit at or below the depth).
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn at_recursion_limit(self) -> bool {
        (*self.0).recursion_remaining <= 0
    }

    /// Whether a frame entered now would not be at the recursion limit (more than one
    /// level left): native code runs only such frames (`Compiled::native_for_call`).
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn below_recursion_limit_after_entry(self) -> bool {
        (*self.0).recursion_remaining > 1
    }

    /// Runs `f` with one more recursion level left than there is, and gives it back: for
    /// an op CPython runs without a check that the call `f` makes has.
    ///
    /// # Safety
    /// GIL held, on the state's own thread.
    #[inline]
    pub unsafe fn lending_a_level<R>(self, f: impl FnOnce() -> R) -> R {
        (*self.0).recursion_remaining += 1;
        let r = f();
        (*self.0).recursion_remaining -= 1;
        r
    }
}

/// Whether a trace or profile function is set on the current thread (see
/// `ThreadState::tracing`).
#[inline]
pub fn tracing_active() -> bool {
    // SAFETY: tiered code only runs with the GIL held.
    unsafe { ThreadState::current().tracing() }
}

/// The head of 3.11's `PyInterpreterState` (Include/internal/pycore_interp.h) up to its
/// `ceval` state's `eval_breaker`.
#[repr(C)]
struct InterpHead {
    next: *mut c_void,
    threads_next_unique_id: u64,
    threads_head: *mut c_void,
    threads_count: std::ffi::c_long,
    threads_stacksize: usize,
    runtime: *mut c_void,
    id: i64,
    id_refcount: i64,
    requires_idref: c_int,
    id_mutex: *mut c_void,
    _initialized: c_int,
    finalizing: c_int,
    _static: bool,
    ceval: CevalHead,
}

/// The head of 3.11's `struct _ceval_state` (pointer-aligned: it holds pointers further on).
#[repr(C, align(8))]
struct CevalHead {
    recursion_limit: c_int,
    /// Non-zero when the eval loop must stop at its next check (signals, pending calls, a
    /// GIL drop request, an exception from another thread).
    eval_breaker: c_int,
}

const _: () = assert!(std::mem::offset_of!(InterpHead, ceval) == 96);

/// The address of the (main) interpreter's eval breaker, once `check_layouts` found the
/// mirror right; 0 before.
static EVAL_BREAKER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The address of the interpreter's eval breaker: a C int that CPython's eval loop tests at
/// every call, back edge and function entry, and tiered code tests at the same points.
/// tiered only runs in the main interpreter (pyo3 refuses subinterpreters), whose state
/// never moves. Call `check_layouts` first.
#[inline]
pub fn eval_breaker_addr() -> usize {
    EVAL_BREAKER.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether the eval breaker is set (see `eval_breaker_addr`).
#[inline(always)]
pub fn eval_breaker_set() -> bool {
    // SAFETY: the address was checked by `check_layouts` (at import) to be the
    // interpreter's eval breaker; CPython writes it atomically, a relaxed read as its own
    // eval loop does.
    unsafe {
        (*(eval_breaker_addr() as *const std::sync::atomic::AtomicI32))
            .load(std::sync::atomic::Ordering::Relaxed)
            != 0
    }
}

/// Checks the interpreter-state mirror against the running interpreter (the field before
/// the eval breaker, in the same struct, is the interpreter's recursion limit, which must
/// be `sys.getrecursionlimit()`) and the dict layout (`dict::layout_holds`), then
/// publishes the eval breaker's address. Call once, at
/// import, with the GIL held. (The tests check the breaker itself: signals, pending calls
/// and exceptions from other threads reach tiered loops at once.)
///
/// # Safety
/// GIL held.
pub unsafe fn check_layouts() -> Result<(), String> {
    let ts = ffi::PyThreadState_Get() as *mut ThreadStateHead;
    let interp = (*ts).interp as *mut InterpHead;
    let limit = std::ptr::addr_of!((*interp).ceval.recursion_limit).read_volatile();
    if limit != ffi::Py_GetRecursionLimit() {
        return Err("the running CPython's interpreter state is not laid out as 3.11's".into());
    }
    if !dict::layout_holds() {
        return Err("the running CPython's dicts are not laid out as 3.11's".into());
    }
    let breaker = std::ptr::addr_of!((*interp).ceval.eval_breaker);
    EVAL_BREAKER.store(breaker as usize, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The head of 3.11's `PyFrameObject` (Include/internal/pycore_frame.h) up to `f_lineno`.
#[repr(C)]
pub struct FrameHead {
    ob_base: ffi::PyObject,
    f_back: *mut c_void,
    f_frame: *mut c_void,
    f_trace: *mut ffi::PyObject,
    /// The line the traceback shows when non-zero.
    pub f_lineno: c_int,
}

/// 3.11's `PyBaseExceptionGroupObject` (Include/cpython/pyerrors.h): the exception head,
/// then the message and the tuple of sub-exceptions (read to walk a group's leaves).
#[repr(C)]
pub struct BaseExceptionGroupObject {
    /// The common exception fields.
    pub base: ffi::PyBaseExceptionObject,
    /// The message (a str).
    pub msg: *mut ffi::PyObject,
    /// The sub-exceptions (a non-empty tuple).
    pub excs: *mut ffi::PyObject,
}

extern "C" {
    /// Gives a new object its first reference (and tells tracemalloc). 3.11 exports it;
    /// `PyLong_FromLongLong` calls it for every int it allocates.
    pub fn _Py_NewReference(op: *mut ffi::PyObject);
}

/// Size of a one-digit `PyLongObject` in 3.11 (head, one 30-bit digit, padding).
pub const ONE_DIGIT_INT_SIZE: usize = 32;

/// The largest magnitude one 30-bit digit holds.
pub const DIGIT_MASK: i64 = (1 << 30) - 1;

/// The address of 3.11's preallocated small int -5, when the ints -5..=256 are laid out
/// one after the other, `ONE_DIGIT_INT_SIZE` bytes apart (checked once against
/// `PyLong_FromLong`), so native code can hand them out without a call.
///
/// # Safety
/// GIL held.
pub unsafe fn small_ints() -> Option<usize> {
    static TABLE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *TABLE.get_or_init(|| {
        let at = |v: i64| {
            let p = ffi::PyLong_FromLongLong(v);
            if p.is_null() {
                ffi::PyErr_Clear();
                return 0;
            }
            // The cache holds its own reference: the address stays valid.
            ffi::Py_DECREF(p);
            p as usize
        };
        let base = at(-5);
        let laid_out =
            base != 0 && (-5..=256).all(|v| at(v) == base + (v + 5) as usize * ONE_DIGIT_INT_SIZE);
        laid_out.then_some(base)
    })
}

/// 3.11's `PyGetSetDescrObject` (Include/descrobject.h): the common descriptor head, then
/// the `PyGetSetDef` it calls.
#[repr(C)]
struct GetSetDescr {
    ob_base: ffi::PyObject,
    d_type: *mut ffi::PyTypeObject,
    d_name: *mut ffi::PyObject,
    d_qualname: *mut ffi::PyObject,
    d_getset: *mut ffi::PyGetSetDef,
}

/// Sets a SystemError saying `what`, for `Err(Raised)`.
///
/// # Safety
/// GIL held.
unsafe fn system_error(what: &std::ffi::CStr) -> crate::value::Raised {
    ffi::PyErr_SetString(ffi::PyExc_SystemError, what.as_ptr());
    crate::value::Raised
}

/// Attribute `name` of type `t`, from its MRO (borrowed).
///
/// # Safety
/// GIL held; `t` ready.
pub unsafe fn type_attr(
    t: *mut ffi::PyTypeObject,
    name: &std::ffi::CStr,
) -> crate::value::PyResult<*mut ffi::PyObject> {
    let n = ffi::PyUnicode_InternFromString(name.as_ptr());
    if n.is_null() {
        return Err(crate::value::Raised);
    }
    let d = _PyType_Lookup(t, n);
    ffi::Py_DECREF(n);
    if d.is_null() {
        return Err(system_error(
            c"tiered: a type attribute it wraps is missing",
        ));
    }
    Ok(d)
}

/// The `PyGetSetDef` of getset descriptor `d`.
///
/// # Safety
/// GIL held; `d` live.
pub unsafe fn getset_def_of(
    d: *mut ffi::PyObject,
) -> crate::value::PyResult<*mut ffi::PyGetSetDef> {
    if ffi::Py_TYPE(d) != std::ptr::addr_of_mut!(ffi::PyGetSetDescr_Type) {
        return Err(system_error(c"tiered: expected a getset descriptor"));
    }
    Ok((*(d as *mut GetSetDescr)).d_getset)
}

/// Points getset descriptor `d` (checked by `getset_def_of`) at `def`.
///
/// # Safety
/// GIL held; `def` outlives `d`.
pub unsafe fn set_getset_def(d: *mut ffi::PyObject, def: *mut ffi::PyGetSetDef) {
    (*(d as *mut GetSetDescr)).d_getset = def;
}

/// Bytes from an object back to its collector links (3.11's `PyGC_Head`, `_gc_next` first,
/// right before the object for every type without a managed dict: dicts, for one).
const GC_HEAD: usize = 16;

/// Whether a GC object (one without a managed dict) is tracked by the collector
/// (3.11's `_PyObject_GC_IS_TRACKED`).
///
/// # Safety
/// `o` is a live object of a GC type without a managed dict.
#[inline]
pub unsafe fn gc_is_tracked(o: *mut ffi::PyObject) -> bool {
    *((o as usize - GC_HEAD) as *const usize) != 0
}

/// Whether `o` may hold references the collector must see (3.11's
/// `_PyObject_GC_MAY_BE_TRACKED`): GC objects, but for tuples only the tracked ones.
///
/// # Safety
/// GIL held; `o` is live.
#[inline]
pub unsafe fn gc_may_be_tracked(o: *mut ffi::PyObject) -> bool {
    if ffi::PyObject_IS_GC(o) == 0 {
        return false;
    }
    ffi::PyTuple_CheckExact(o) == 0 || gc_is_tracked(o)
}
