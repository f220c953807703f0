//! Calls into tier 1: argument binding, the register files and CPython frames of calls,
//! and calls of plain functions from tiered code.

use super::*;

/// How a call into compiled code went.
pub enum CallOutcome {
    /// Our tiers ran it (result or NULL with an exception); true if native code ran.
    Ran(*mut ffi::PyObject, bool),
    /// The arguments did not bind; CPython was called to raise its exact error (or, if our
    /// binder was wrong, to run the function).
    CpythonRan(*mut ffi::PyObject),
}

thread_local! {
    /// Register files of finished calls, reused to avoid an allocation per call.
    static REG_POOL: RefCell<Vec<Vec<Value>>> = const { RefCell::new(Vec::new()) };
}

/// Binds arguments and runs a runnable compiled function in tier 1.
///
/// # Safety
/// GIL held; `func` is a live function whose code is `c`'s; vectorcall's argument contract.
pub unsafe fn call_compiled(
    c: &Compiled,
    func: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
    tuning: &Tuning,
    ts: ThreadState,
) -> CallOutcome {
    let n = c.linear.nregs as usize;
    let nargs = ffi::PyVectorcall_NARGS(nargsf) as usize;
    // (With a trace or profile function on, the code runs: CPython gives events for the
    // frame its call enters.)
    if kwnames.is_null() && c.plain_arity == Some(nargs) && c.gen_start.is_some() && !ts.tracing() {
        return make_generator(c, func, std::slice::from_raw_parts(args, nargs), tuning, ts);
    }
    if n <= SMALL_FRAME && kwnames.is_null() && c.plain_arity == Some(nargs) {
        // The common call (exactly the positional parameters, a small function) is bound
        // here, inline: registers on the native stack, no general binder, no pool. Calls
        // from CPython pay this path on every call, so each instruction shows.
        let mut buf = std::mem::MaybeUninit::<[Value; SMALL_FRAME]>::uninit();
        let base = buf.as_mut_ptr() as *mut Value;
        for i in 0..nargs {
            base.add(i).write(Value::from_borrowed(*args.add(i)));
        }
        for i in nargs..n {
            base.add(i).write(Value::Null);
        }
        // SAFETY: nargs <= n <= SMALL_FRAME (a function has a register per parameter) and
        // the first n registers were just initialized; only those are used, and none owns
        // anything (`release`) when the buffer goes out of scope.
        let regs = std::slice::from_raw_parts_mut(base, n);
        let (r, native) = run_bound(c, func, regs, tuning, ts);
        release(c, regs, r.is_null());
        return CallOutcome::Ran(r, native);
    }
    call_compiled_general(c, func, (args, nargsf, kwnames), tuning, ts)
}

/// A call with exactly the positional parameters of a generator function whose code
/// starts with its arguments: the generator made from them (`generator::start`), none of
/// its code run. It counts as a call all the same (it warms the code up, compiles it when
/// hot, and is native once its code is), and it has the recursion check of the frame
/// CPython's call would enter.
#[inline(never)]
unsafe fn make_generator(
    c: &Compiled,
    func: *mut ffi::PyObject,
    args: &[*mut ffi::PyObject],
    tuning: &Tuning,
    ts: ThreadState,
) -> CallOutcome {
    // (Making the generator runs none of its code: no stack to check.)
    if !ts.enter_recursive_call() {
        return CallOutcome::Ran(std::ptr::null_mut(), false);
    }
    let native = c.native_for_tuning(tuning).is_some();
    let mut small: [Value; SMALL_ARGS] = Default::default();
    let mut large = Vec::new();
    let values = match args.len() <= SMALL_ARGS {
        true => &mut small[..args.len()],
        false => {
            large.resize_with(args.len(), Value::default);
            &mut large[..]
        }
    };
    for (v, &a) in values.iter_mut().zip(args) {
        *v = Value::from_borrowed(a);
    }
    let f = func as *mut ffi::PyFunctionObject;
    let r = crate::generator::start::from_arguments(ts, c, f, values);
    ts.leave_recursive_call();
    CallOutcome::Ran(r.unwrap_or(std::ptr::null_mut()), native)
}

/// Arguments `make_generator` holds on the native stack (more take a vector).
const SMALL_ARGS: usize = 8;

/// `call_compiled` for every other call shape and for large register files.
#[inline(never)]
unsafe fn call_compiled_general(
    c: &Compiled,
    func: *mut ffi::PyObject,
    call: (*const *mut ffi::PyObject, usize, *mut ffi::PyObject),
    tuning: &Tuning,
    ts: ThreadState,
) -> CallOutcome {
    with_registers(c.linear.nregs as usize, |regs| {
        call_with_registers(c, func, call, regs, tuning, ts)
    })
}

/// Runs `f` with a register file of `n` empty registers (on the native stack unless
/// large, else from a pool); `f` must leave none owning a reference (`release`).
pub fn with_registers<R>(n: usize, f: impl FnOnce(&mut [Value]) -> R) -> R {
    if n <= MEDIUM_FRAME {
        let mut buf = std::mem::MaybeUninit::<[Value; MEDIUM_FRAME]>::uninit();
        let base = buf.as_mut_ptr() as *mut Value;
        // SAFETY: n <= MEDIUM_FRAME and the first n registers are initialized here (all
        // zero bytes is `Value::Null`: its tag is 0 and it has no payload); only those are
        // used. `f` leaves them all Null, so nothing in the buffer needs dropping when it
        // goes out of scope.
        let regs = unsafe {
            std::ptr::write_bytes(base, 0, n);
            std::slice::from_raw_parts_mut(base, n)
        };
        return f(regs);
    }
    let mut regs: Vec<Value> = REG_POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    regs.reserve(n);
    // SAFETY: the pool's vectors are empty; the first n registers are initialized here
    // (all zero bytes is `Value::Null`). A panic in `f` drops them as owned values.
    unsafe {
        std::ptr::write_bytes(regs.as_mut_ptr(), 0, n);
        regs.set_len(n);
    }
    let r = f(&mut regs);
    debug_assert!(!regs.iter().any(|v| matches!(v, Value::Obj(_))));
    // SAFETY: `f` left no register owning an object (unboxed numbers and bools own
    // nothing): no drop is skipped. (A per-register drop loop here cost as much as the
    // call of a large function itself.)
    unsafe { regs.set_len(0) };
    REG_POOL.with(|p| p.borrow_mut().push(regs));
    r
}

/// Register files up to this size live on the native stack in `with_registers` (calls
/// from CPython take `SMALL_FRAME`'s path first; generator resumptions come here, where a
/// pooled file's allocation bookkeeping cost more than the resumption itself).
const MEDIUM_FRAME: usize = 64;

/// Releases every register (owned references until here; releasing them may run __del__).
#[inline]
fn clear(regs: &mut [Value]) {
    regs.iter_mut().for_each(|r| *r = Value::Null);
}

/// Releases what a finished call of `c` left in its registers, in CPython's order: after a
/// return, the locals it returned with in slot order and the constants
/// (`Linear::at_return`, as CPython clears a frame: every other value was released where
/// it died, as native code's direct calls rely on too); after an exception, what was on
/// the stack first, top down (`Linear::unwound`), then those. Only the registers that may
/// own something are visited: a large function's register file is mostly temporaries.
pub fn release(c: &Compiled, regs: &mut [Value], raised: bool) {
    if raised {
        for &r in &c.linear.unwound {
            drop(std::mem::take(&mut regs[r as usize]));
        }
    }
    for &r in &c.linear.at_return {
        drop(std::mem::take(&mut regs[r as usize]));
    }
    debug_assert!(
        !regs.iter().any(|v| matches!(v, Value::Obj(_))),
        "registers left owning something after {}: {:?}",
        if raised { "an exception" } else { "a return" },
        regs.iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Value::Obj(_)))
            .map(|(i, _)| i)
            .collect::<Vec<_>>(),
    );
}

/// Register files up to this size live on the native stack.
const SMALL_FRAME: usize = 24;

/// CPython frames up to this many words (back pointer, header and slots: 22 slots) live
/// in `run_bound`'s own stack space.
const SMALL_CPY_FRAME: usize = 32;

/// Larger frames up to this many words live on the native stack too, in a call of their
/// own (others on the heap).
const MEDIUM_CPY_FRAME: usize = 160;

/// Binds and runs a call (vectorcall's args, nargsf, kwnames) in a fresh (all-NULL)
/// register file; clears it before returning.
unsafe fn call_with_registers(
    c: &Compiled,
    func: *mut ffi::PyObject,
    (args, nargsf, kwnames): (*const *mut ffi::PyObject, usize, *mut ffi::PyObject),
    regs: &mut [Value],
    tuning: &Tuning,
    ts: ThreadState,
) -> CallOutcome {
    let nargs = ffi::PyVectorcall_NARGS(nargsf) as usize;
    match crate::bind::bind(
        c,
        func as *mut ffi::PyFunctionObject,
        args,
        nargs,
        kwnames,
        regs,
    ) {
        Err(crate::bind::BindError::Raised) => {
            clear(regs);
            CallOutcome::Ran(std::ptr::null_mut(), false)
        }
        Err(crate::bind::BindError::Mismatch) => {
            clear(regs);
            CallOutcome::CpythonRan(ffi::PyObject_Vectorcall(func, args, nargsf, kwnames))
        }
        Ok(()) => {
            let (r, native) = run_bound(c, func, regs, tuning, ts);
            release(c, regs, r.is_null());
            CallOutcome::Ran(r, native)
        }
    }
}

/// Runs a bound call: native code if the function is hot enough to have it, else tier 1
/// (which may itself enter native code at a hot loop). Returns the result and whether
/// native code ran.
#[inline(always)]
unsafe fn run_bound(
    c: &Compiled,
    func: *mut ffi::PyObject,
    regs: &mut [Value],
    tuning: &Tuning,
    ts: ThreadState,
) -> (*mut ffi::PyObject, bool) {
    // The activation's CPython frame, after the word that points back at its context
    // (`activation`): on this stack for small codes. (Its buffer stays on the native
    // stack while the code runs, and so bounds how deep tier 1 recurses: sized for
    // most codes, not for all.)
    let words = 1 + crate::cpy::frame::frame_size(c.nlocalsplus) / 8;
    if words > SMALL_CPY_FRAME {
        return run_bound_large(c, func, regs, tuning, ts, words);
    }
    let mut small = std::mem::MaybeUninit::<[u64; SMALL_CPY_FRAME]>::uninit();
    run_in_frame(c, func, regs, tuning, ts, small.as_mut_ptr() as *mut u64)
}

/// `run_bound` for a code whose frame is larger than `SMALL_CPY_FRAME` words.
#[inline(never)]
unsafe fn run_bound_large(
    c: &Compiled,
    func: *mut ffi::PyObject,
    regs: &mut [Value],
    tuning: &Tuning,
    ts: ThreadState,
    words: usize,
) -> (*mut ffi::PyObject, bool) {
    let mut medium = std::mem::MaybeUninit::<[u64; MEDIUM_CPY_FRAME]>::uninit();
    let mut large = Vec::new();
    let base = if words <= MEDIUM_CPY_FRAME {
        medium.as_mut_ptr() as *mut u64
    } else {
        large.resize(words, 0u64);
        large.as_mut_ptr()
    };
    run_in_frame(c, func, regs, tuning, ts, base)
}

/// `run_bound` in the frame after the back-pointer word at `base`.
///
/// # Safety
/// As `run_bound`; `base` has room for the code's frame and its back pointer, and stays
/// put for the call.
#[inline(always)]
unsafe fn run_in_frame(
    c: &Compiled,
    func: *mut ffi::PyObject,
    regs: &mut [Value],
    tuning: &Tuning,
    ts: ThreadState,
    base: *mut u64,
) -> (*mut ffi::PyObject, bool) {
    let stack_limit = crate::stack::limit_for(ts);
    if crate::stack::nearly_exhausted(stack_limit) {
        return run_in_frame_grown(c, func, regs, tuning, ts, base);
    }
    if !ts.enter_recursive_call() {
        return (std::ptr::null_mut(), false);
    }
    let f = func as *mut ffi::PyFunctionObject;
    let frame = base.add(1) as *mut crate::cpy::frame::InterpreterFrame;
    let (globals, builtins) = ((*f).func_globals, (*f).func_builtins);
    let ctx = Ctx {
        compiled: c,
        func: f,
        globals,
        builtins,
        tuning,
        ran_native: Cell::new(false),
        tstate: ts,
        stack_limit,
        frame,
        regs: regs.as_mut_ptr(),
    };
    // SAFETY: `frame` (after the word at `base`) has room for the code's slots and stays
    // put until popped below, as `ctx` does; the function (and so its code) is kept alive
    // by our caller for the whole call.
    crate::activation::link_frame(&ctx, ts, frame, func, c.nlocalsplus);
    let r = match c.native_for_call(&ctx) {
        Some(native) => match interp::run_native(&ctx, native, regs, 0) {
            // Native code that returned with a hook on (one it did not see come on: another
            // thread's): the `return` event all the same (`tracing`).
            interp::NativeExit::Done(r) if ts.tracing() => crate::tracing::function_exit(ts, r),
            interp::NativeExit::Done(r) => r,
            interp::NativeExit::Resume(pc) => interp::run(&ctx, regs, pc),
        },
        None => interp::run(&ctx, regs, 0),
    };
    // SAFETY: pushed above on this thread; everything the call pushed is popped.
    crate::cpy::frame::pop(ts, frame);
    ts.leave_recursive_call();
    let native = ctx.ran_native.get();
    match r {
        Ok(v) => (v.into_ptr(), native),
        Err(Raised) => (std::ptr::null_mut(), native),
    }
}

/// `run_in_frame` on a fresh segment of stack (`stack::grow`), for a call that found this
/// one nearly exhausted; RecursionError if no segment can be had.
#[cold]
#[inline(never)]
unsafe fn run_in_frame_grown(
    c: &Compiled,
    func: *mut ffi::PyObject,
    regs: &mut [Value],
    tuning: &Tuning,
    ts: ThreadState,
    base: *mut u64,
) -> (*mut ffi::PyObject, bool) {
    crate::stack::grow(|| run_in_frame(c, func, regs, tuning, ts, base)).unwrap_or_else(|| {
        crate::stack::raise_exhausted();
        (std::ptr::null_mut(), false)
    })
}

/// Calls a plain function from tiered code: in tier 1 if its code is nested in tiered code
/// and translatable, else through CPython.
///
/// # Safety
/// GIL held; vectorcall's argument contract.
pub unsafe fn call_function(
    ts: ThreadState,
    func: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let code = (*(func as *mut ffi::PyFunctionObject)).func_code;
    if !ts.tracing() && is_nested_tiered(code) {
        match compiled_for_args(code, args, ffi::PyVectorcall_NARGS(nargsf) as usize) {
            Ok(c) if c.runnable() => {
                return match call_compiled(&c, func, args, nargsf, kwnames, config(), ts) {
                    CallOutcome::Ran(r, _) | CallOutcome::CpythonRan(r) => r,
                };
            }
            Ok(_) => {}
            Err(Raised) => ffi::PyErr_Clear(),
        }
    }
    ffi::PyObject_Vectorcall(func, args, nargsf, kwnames)
}
