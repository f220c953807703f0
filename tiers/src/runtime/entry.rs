//! One `@tiered` function: its wrapper's entry, counters and tier-up, the wrapper type's
//! layout, and the fallback to CPython.

use super::*;

/// Counters of one `@tiered` wrapper.
#[derive(Default)]
pub struct FuncStats {
    /// Every call.
    pub calls: Cell<u64>,
    /// Calls that ran in CPython.
    pub fallback_calls: Cell<u64>,
    /// Calls that ran in tier 1.
    pub interp_calls: Cell<u64>,
    /// Calls that ran native code (tier 2), entirely or after a loop tiered up.
    pub native_calls: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1)
}

/// One `@tiered` function.
pub struct Entry {
    /// The wrapped function.
    pub func: Owned,
    /// Raise `UnsupportedError` instead of falling back.
    pub strict: bool,
    /// How this function tiers up.
    pub tuning: Tuning,
    /// Counters.
    pub stats: FuncStats,
    /// The compiled form of the function's current code.
    compiled: RefCell<Option<Rc<Compiled>>>,
    /// Why the last fallback happened.
    pub last_fallback: RefCell<Option<String>>,
    /// The last specialization used, by argument types (the common case is one). The
    /// registry keeps every specialization for the process's life.
    last_specialization: Cell<Option<(TypeKey, *const Compiled)>>,
}

impl Entry {
    /// Byte offset of `func` (a transparent `Owned`: the function pointer), for native code.
    pub const FUNC_OFFSET: i32 = std::mem::offset_of!(Entry, func) as i32;
    /// Byte offset of `tuning`.
    pub const TUNING_OFFSET: i32 = std::mem::offset_of!(Entry, tuning) as i32;
    /// Byte offsets of the `calls` and `native_calls` counters (transparent `Cell<u64>`s).
    pub const CALLS_OFFSET: i32 = std::mem::offset_of!(Entry, stats.calls) as i32;
    /// See `CALLS_OFFSET`.
    pub const NATIVE_CALLS_OFFSET: i32 = std::mem::offset_of!(Entry, stats.native_calls) as i32;

    /// Wraps a Python function (the caller checked it is one).
    pub fn new(func: Owned, strict: bool, tuning: Tuning) -> Entry {
        Entry {
            func,
            strict,
            tuning,
            stats: FuncStats::default(),
            compiled: RefCell::new(None),
            last_fallback: RefCell::new(None),
            last_specialization: Cell::new(None),
        }
    }

    /// The compiled form of the function's current `__code__` (it may be reassigned).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn compiled(&self) -> PyResult<Rc<Compiled>> {
        let code = (*(self.func.ptr() as *mut ffi::PyFunctionObject)).func_code;
        if let Some(c) = self.compiled.borrow().as_ref() {
            if c.objects.code.ptr() == code {
                return Ok(c.clone());
            }
        }
        let c = compiled_for(code)?;
        *self.compiled.borrow_mut() = Some(c.clone());
        Ok(c)
    }

    /// The vectorcall entry of the wrapper. Inlined into it: a call whose code and argument
    /// types match the last call's goes straight to the native trampoline, and from then
    /// on the wrapper's vectorcall `slot` points at the trampoline's slot form, so further
    /// calls from CPython skip this function altogether (see `native::trampoline`).
    ///
    /// # Safety
    /// GIL held; vectorcall's argument contract; `callable` is the wrapper holding `self`.
    #[inline]
    pub unsafe fn call(
        &self,
        callable: *mut ffi::PyObject,
        ts: ThreadState,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        bump(&self.stats.calls);
        if ts.tracing() {
            return self.fallback(args, nargsf, kwnames, "a trace or profile function is set");
        }
        let func = self.func.ptr();
        let nargs = ffi::PyVectorcall_NARGS(nargsf) as usize;
        let code = (*(func as *mut ffi::PyFunctionObject)).func_code;
        let (c, again) = match self.last_specialization.get() {
            // SAFETY: the registry keeps specializations alive (see the field).
            Some((k, c)) if k.matches(args, nargs) && (*c).objects.code.ptr() == code => {
                (&*c, true)
            }
            _ => match self.specialize(code, args, nargsf, kwnames) {
                Ok(c) => (c, false),
                Err(r) => return r,
            },
        };
        let mut tramp = c.vector_entry.get();
        // (A generator function's code that starts with its arguments is not run at a
        // call at all: `call_compiled` makes the generator.)
        let plain = kwnames.is_null()
            && c.plain_arity == Some(nargs)
            && self.tuning.jit
            && c.gen_start.is_none();
        if tramp == 0 && plain && c.native_entry.get() != 0 {
            // Native code without its trampoline: made once many calls from CPython ran
            // it without (`Compiled::entry_for_cpython`); until then through Rust, below.
            tramp = c.entry_for_cpython(&self.tuning);
        }
        if tramp != 0 && plain {
            // The native trampoline does the rest (registers, context, boxing); here only
            // what may raise before it: the stack and recursion depth. (A frame at the
            // recursion limit runs in tier 1: `Compiled::native_for_call`.)
            let limit = crate::stack::limit_for(ts);
            if !crate::stack::nearly_exhausted(limit) && ts.below_recursion_limit_after_entry() {
                if !ts.enter_recursive_call() {
                    return std::ptr::null_mut();
                }
                // SAFETY: vector_entry only ever holds a ready NativeCode's trampoline (or
                // 0), made for this specialization's plain signature, whose argument
                // count and types were just checked.
                let f = std::mem::transmute::<usize, crate::native::trampoline::VectorFn>(tramp);
                let r = f(func, args, &self.tuning, ts, limit);
                ts.leave_recursive_call();
                bump(&self.stats.native_calls);
                // Twice in a row with these types: calls from CPython may enter the
                // trampoline directly (sites alternating between types stay here, where
                // switching specializations costs less than a failed slot check).
                if again && crate::cpy::id_layout_holds() {
                    let slot_entry = c.entry_wanted(crate::native::Later::Slot);
                    if slot_entry != 0 {
                        install_slot(callable, slot_entry);
                    }
                }
                return r;
            }
        }
        match call_compiled(c, func, args, nargsf, kwnames, &self.tuning, ts) {
            CallOutcome::Ran(r, native) => {
                bump(if native {
                    &self.stats.native_calls
                } else {
                    &self.stats.interp_calls
                });
                r
            }
            CallOutcome::CpythonRan(r) => {
                if !r.is_null() {
                    // Our binder rejected a call CPython accepted: it ran in CPython.
                    bump(&self.stats.fallback_calls);
                    crate::stats::count_fallback("argument binding disagreed with CPython");
                }
                r
            }
        }
    }

    /// The specialization of `code` for these arguments' types (remembered for the next
    /// call), or the call's result when it cannot run in our tiers (run by CPython, or
    /// NULL with an exception set).
    #[inline(never)]
    unsafe fn specialize(
        &self,
        code: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> Result<&Compiled, *mut ffi::PyObject> {
        let c = match self.compiled() {
            Ok(c) => c,
            Err(Raised) => {
                // A code object we cannot even read: CPython decides what it does.
                let why = describe_and_clear();
                return Err(self.fallback(
                    args,
                    nargsf,
                    kwnames,
                    &format!("cannot read the code object: {why}"),
                ));
            }
        };
        if !c.runnable() {
            return Err(self.fallback(args, nargsf, kwnames, &c.fallback_reason()));
        }
        let nargs = ffi::PyVectorcall_NARGS(nargsf) as usize;
        match compiled_for_args(code, args, nargs) {
            Ok(spec) => {
                let spec = Rc::as_ptr(&spec);
                self.last_specialization
                    .set(Some((TypeKey::of(args, nargs), spec)));
                // SAFETY: the registry keeps specializations alive (see the field).
                Ok(&*spec)
            }
            Err(Raised) => Err(std::ptr::null_mut()),
        }
    }

    #[inline(never)]
    unsafe fn fallback(
        &self,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
        why: &str,
    ) -> *mut ffi::PyObject {
        if self.strict {
            let qual = crate::code_name(self.func.ptr());
            let msg = format!("{qual} cannot run in tiered's tiers: {why}");
            raise_unsupported(&msg);
            return std::ptr::null_mut();
        }
        bump(&self.stats.fallback_calls);
        crate::stats::count_fallback(why);
        if self.last_fallback.borrow().as_deref() != Some(why) {
            *self.last_fallback.borrow_mut() = Some(why.to_string());
        }
        ffi::PyObject_Vectorcall(self.func.ptr(), args, nargsf, kwnames)
    }
}

/// Points wrapper `callable`'s vectorcall slot at `f` (a slot trampoline).
///
/// # Safety
/// GIL held; `callable` is a live wrapper.
#[inline(never)]
unsafe fn install_slot(callable: *mut ffi::PyObject, f: usize) {
    let w = WRAPPER.with(|w| *w);
    *((callable as *mut u8).add(w.slot_offset as usize) as *mut usize) = f;
}

/// The current exception's text, cleared.
unsafe fn describe_and_clear() -> String {
    let v = crate::traceback::fetch_normalized();
    let s = ffi::PyObject_Str(v.as_ptr());
    if s.is_null() {
        ffi::PyErr_Clear();
        return "unknown error".into();
    }
    let s = Owned::new(s).ok();
    let mut n: ffi::Py_ssize_t = 0;
    let p = s
        .as_ref()
        .map(|s| ffi::PyUnicode_AsUTF8AndSize(s.ptr(), &mut n))
        .unwrap_or(std::ptr::null());
    if p.is_null() {
        ffi::PyErr_Clear();
        return "unknown error".into();
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, n as usize)).into_owned()
}

static UNSUPPORTED_ERROR: GilCell<*mut ffi::PyObject> =
    GilCell(UnsafeCell::new(std::ptr::null_mut()));

/// The `tiered.UnsupportedError` class (created on first use).
///
/// # Safety
/// GIL held.
pub unsafe fn unsupported_error_type() -> *mut ffi::PyObject {
    UNSUPPORTED_ERROR.with(|t| {
        if t.is_null() {
            *t = ffi::PyErr_NewExceptionWithDoc(
                c"tiered.UnsupportedError".as_ptr(),
                c"Raised in strict mode when a function would run in CPython instead of tiered's tiers.".as_ptr(),
                ffi::PyExc_Exception,
                std::ptr::null_mut(),
            );
        }
        *t
    })
}

unsafe fn raise_unsupported(msg: &str) {
    let t = unsupported_error_type();
    if t.is_null() {
        return; // creating the class failed and set its own exception
    }
    let m = std::ffi::CString::new(msg.replace('\0', "?")).unwrap_or_default();
    ffi::PyErr_SetString(t, m.as_ptr());
}

/// The `@tiered` wrapper type and its instances' layout, registered by the bindings (which
/// define it) so calls between tiered functions skip vectorcall, and native trampolines can
/// be a wrapper's vectorcall slot.
#[derive(Clone, Copy, Debug)]
pub struct WrapperAbi {
    /// The type object.
    pub tp: usize,
    /// Offset of the `*const Entry` in an instance.
    pub entry_offset: i32,
    /// Offset of its vectorcall function pointer.
    pub slot_offset: i32,
    /// The type's generic vectorcall function (which calls `Entry::call`).
    pub generic: usize,
}

static WRAPPER: GilCell<WrapperAbi> = GilCell::new(WrapperAbi {
    tp: 0,
    entry_offset: 0,
    slot_offset: 0,
    generic: 0,
});

/// Registers the wrapper type (called once at module init).
///
/// # Safety
/// GIL held; `abi` describes the type's instances.
pub unsafe fn register_wrapper_type(abi: WrapperAbi) {
    WRAPPER.with(|w| *w = abi);
}

/// The registered wrapper type, if any.
///
/// # Safety
/// GIL held.
pub unsafe fn wrapper_abi() -> Option<WrapperAbi> {
    let w = WRAPPER.with(|w| *w);
    (w.tp != 0).then_some(w)
}

/// The entry of a `@tiered` wrapper object, if `o` is one.
///
/// # Safety
/// GIL held; `o` live.
#[inline]
pub unsafe fn entry_of_wrapper<'a>(o: *mut ffi::PyObject) -> Option<&'a Entry> {
    let w = WRAPPER.with(|w| *w);
    if w.tp == 0 || ffi::Py_TYPE(o) as usize != w.tp {
        return None;
    }
    let e = *((o as *const u8).add(w.entry_offset as usize) as *const *const Entry);
    e.as_ref()
}
