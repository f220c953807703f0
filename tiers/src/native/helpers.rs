//! What native code calls back into: the tier-1 implementation of any op, edge moves that
//! need boxing or copies, truth tests. All `extern "C"`; none lets a panic
//! cross into native code (it becomes SystemError).

use crate::interp::{self, Ctx};
use crate::value::Value;
use pyo3_ffi as ffi;
use std::panic::{catch_unwind, AssertUnwindSafe};

unsafe fn regs<'a>(ctx: *const Ctx, regs: *mut Value) -> &'a mut [Value] {
    // SAFETY (caller): `regs` is the live register file of `ctx`'s function, nregs long.
    std::slice::from_raw_parts_mut(regs, (*ctx).compiled.linear.nregs as usize)
}

/// Runs `f`; a panic (a bug of ours) becomes SystemError and `on_panic`, never an unwind
/// into C (native code, or CPython calling a slot of ours).
pub(crate) fn guarded<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            // SAFETY: native code only runs with the GIL held.
            unsafe {
                ffi::PyErr_SetString(ffi::PyExc_SystemError, c"tiered: internal error".as_ptr())
            };
            on_panic
        }
    }
}

/// Runs instruction `pc` in tier 1. Returns 0 (done), 1 (exception leaves the function) or
/// 2 + the handler's instruction (exception caught; registers set up for the handler).
///
/// # Safety
/// Called by native code with the GIL held and the function's own register file.
pub unsafe extern "C" fn exec(ctx: *const Ctx, r: *mut Value, pc: u32) -> i64 {
    guarded(1, || interp::exec_at(&*ctx, regs(ctx, r), pc as usize))
}

/// A quickened Call (the CallPyFunction/CallTiered template): -1 when the callee is not
/// the one specialized on, else as `exec`.
///
/// # Safety
/// As `exec`.
pub unsafe extern "C" fn call(ctx: *const Ctx, r: *mut Value, pc: u32) -> i64 {
    guarded(1, || interp::call_at(&*ctx, regs(ctx, r), pc as usize))
}

/// AsyncGenWrap's template: `v` wrapped as an async generator's `yield` hands it on
/// (`cpy::gen::wrap_value`), or NULL with an exception set.
///
/// # Safety
/// Called by native code with the GIL held; `v` a live object.
pub unsafe extern "C" fn wrap_async_value(v: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || crate::cpy::gen::wrap_value(v))
}

/// MakeFunction's template: a function of `code` and, as `flags` says, the operands after
/// it (`ops::calls::make_function`), or NULL with an exception set.
///
/// # Safety
/// Called by native code with the GIL held; `code` and the operands `flags` names are
/// live objects.
pub unsafe extern "C" fn make_function(
    ctx: *const Ctx,
    flags: usize,
    code: *mut ffi::PyObject,
    a: *mut ffi::PyObject,
    b: *mut ffi::PyObject,
    c: *mut ffi::PyObject,
    d: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let ops = [code, a, b, c, d];
        let n = 1 + (flags & 0xf).count_ones() as usize;
        match crate::ops::calls::make_function(&*ctx, flags as u32, &ops[..n]) {
            Ok(f) => f.into_ptr(),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// Send's template: one `yield from` step of `receiver` with `v` sent in
/// (`ops::generators::send_raw`): 0 (it returned) or 1 (it yielded) with the value in
/// `*out`, or -1 with an exception set.
///
/// # Safety
/// Called by native code with the GIL held; `receiver` and `v` live objects.
pub unsafe extern "C" fn send(
    ctx: *const Ctx,
    receiver: *mut ffi::PyObject,
    v: *mut ffi::PyObject,
    out: *mut *mut ffi::PyObject,
) -> i64 {
    guarded(-1, || {
        crate::ops::generators::send_raw(
            crate::generator::Thread::of(&*ctx),
            receiver,
            v,
            &mut *out,
        ) as i64
    })
}

/// After a direct native call at `pc` raised: 1 (leave) or 2 + handler, as `exec`.
///
/// # Safety
/// As `exec`, with the exception set.
pub unsafe extern "C" fn call_failed(ctx: *const Ctx, r: *mut Value, pc: u32) -> i64 {
    guarded(1, || interp::fail_at(&*ctx, regs(ctx, r), pc as usize))
}

/// LKind::Suspend at `pc` (`generator::suspend`): 0 with the result in `*out`, or 1 with
/// an exception set.
///
/// # Safety
/// As `exec`; `out` is empty.
pub unsafe extern "C" fn suspend(ctx: *const Ctx, r: *mut Value, pc: u32, out: *mut Value) -> i64 {
    guarded(1, || {
        let ctx = &*ctx;
        match crate::generator::suspend(ctx, regs(ctx, r), pc as usize) {
            Ok(v) => {
                *out = v;
                0
            }
            Err(_) => {
                crate::traceback::add_frame(ctx, pc as usize);
                1
            }
        }
    })
}

/// A generator of `callee`'s code (a generator function's that starts with its
/// arguments: `generator::start`) for a direct call of function `func` from `ctx`, with
/// the arguments at `args` (one per parameter, owned: taken): the generator, or NULL with
/// an exception set.
///
/// # Safety
/// GIL held; `args` holds `callee`'s parameters; `func` is a live function of its code.
pub unsafe extern "C" fn new_generator(
    ctx: *const Ctx,
    args: *mut Value,
    callee: *const crate::runtime::Compiled,
    func: *mut ffi::PyFunctionObject,
) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let c = &*callee;
        let n = c.gen_start.as_ref().map_or(0, |s| s.nparams as usize);
        // SAFETY: the caller wrote one Value per parameter there.
        let args = std::slice::from_raw_parts_mut(args, n);
        crate::generator::start::from_arguments((*ctx).tstate, c, func, args)
            .unwrap_or(std::ptr::null_mut())
    })
}

/// A call's result `Value` (not an object: a float or bool) as a new reference, taken
/// out of `*out`; NULL with an exception set when boxing fails.
///
/// # Safety
/// GIL held; `out` is a live `Value` the caller gives up.
pub unsafe extern "C" fn into_object(out: *mut Value) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        let r = std::mem::take(&mut *out).into_ptr();
        if r.is_null() && ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_SetString(
                ffi::PyExc_SystemError,
                c"tiered: a function returned no value".as_ptr(),
            );
        }
        r
    })
}

/// Boxes the unboxed int or float in register `*reg` in place (`Value::box_in_place`),
/// for native code handing it to CPython: 0, or 1 out of memory, the error cleared (the
/// generic op there boxes again and raises it properly). Anything else stays as it is.
///
/// # Safety
/// GIL held; `reg` is a live register.
pub unsafe extern "C" fn box_register(reg: *mut Value) -> i64 {
    guarded(1, || {
        if (*reg).box_in_place().is_err() {
            ffi::PyErr_Clear();
            return 1;
        }
        0
    })
}

/// Register `*reg` as a borrowed object for an op's operand (`box_register` first; a bool
/// is its singleton), or NULL (the register is empty, or boxing ran out of memory; no
/// error set).
///
/// # Safety
/// As `box_register`.
pub unsafe extern "C" fn operand_object(reg: *mut Value) -> *mut ffi::PyObject {
    if box_register(reg) != 0 {
        return std::ptr::null_mut();
    }
    (*reg).as_ptr()
}

/// Continues a callee whose native code left with status `2 + pc` (it was invalidated) in
/// tier 1, writing its result to `*out`: 0, or 1 with an exception set.
///
/// # Safety
/// As `exec`, for the callee's context and registers; `out` points to a NULL `Value`.
pub unsafe extern "C" fn resume(
    ctx: *const Ctx,
    r: *mut Value,
    status: i64,
    out: *mut Value,
) -> i64 {
    guarded(1, || {
        interp::resume_at(&*ctx, regs(ctx, r), (status - 2) as usize, &mut *out)
    })
}

/// Whether a LoadGlobal cached as a builtin still holds after the globals changed: 1 or 0.
///
/// # Safety
/// As `exec`.
pub unsafe extern "C" fn recheck_builtin(ctx: *const Ctx, _r: *mut Value, pc: u32) -> i64 {
    guarded(0, || {
        crate::ops::globals::recheck_builtin(&*ctx, pc as usize)
    })
}

/// A builtin iterator's `tp_iternext` returned NULL at ForIter `pc`: 0 (exhausted;
/// registers set), 1 or 2 + handler (it raised), as `exec`.
///
/// # Safety
/// As `exec`.
pub unsafe extern "C" fn for_iter_end(ctx: *const Ctx, r: *mut Value, pc: u32) -> i64 {
    guarded(1, || {
        interp::for_iter_end_at(&*ctx, regs(ctx, r), pc as usize)
    })
}

/// A failed template guard at `pc`: counts the deopt, then runs the op in tier 1, as
/// `exec`.
///
/// # Safety
/// As `exec`.
pub unsafe extern "C" fn deopt_exec(ctx: *const Ctx, r: *mut Value, pc: u32) -> i64 {
    guarded(1, || {
        (*ctx).compiled.count_deopt(pc as usize);
        interp::exec_at(&*ctx, regs(ctx, r), pc as usize)
    })
}

/// Takes edge `edge` the general way (copies, boxing). 0 ok, 1 exception.
///
/// # Safety
/// As `exec`.
pub unsafe extern "C" fn edge(ctx: *const Ctx, r: *mut Value, pc: u32, edge: u32) -> i64 {
    guarded(1, || {
        interp::edge_at(&*ctx, regs(ctx, r), pc as usize, edge as usize)
    })
}

/// The truth of register `reg` (a non-bool branch condition): 0, 1, or -1 on exception.
///
/// # Safety
/// As `exec`.
pub unsafe extern "C" fn truth(ctx: *const Ctx, r: *mut Value, pc: u32, reg: u32) -> i64 {
    guarded(-1, || {
        interp::truth_at(&*ctx, regs(ctx, r), pc as usize, reg as usize)
    })
}

/// Finishes popping a frame native code unlinked (`cpy::frame::finish_pop`).
///
/// # Safety
/// GIL held; `f` was pushed by native code and just unlinked.
pub unsafe extern "C" fn finish_pop(f: *mut crate::cpy::frame::InterpreterFrame) {
    guarded((), || crate::cpy::frame::finish_pop(f))
}

/// Releases every register of a finished call of `c` (after an exception, when any may own
/// something: the rare path, kept out of line), in CPython's order (`runtime::release`).
///
/// # Safety
/// GIL held; `regs` is a register file of `c` whose call finished.
pub unsafe extern "C" fn release_all(c: *const crate::runtime::Compiled, regs: *mut Value) {
    let c = &*c;
    let regs = std::slice::from_raw_parts_mut(regs, c.linear.nregs as usize);
    guarded((), || crate::runtime::release(c, regs, true))
}

/// Raises SystemError for reaching unreachable code; returns 1.
///
/// # Safety
/// GIL held.
pub unsafe extern "C" fn unreachable() -> i64 {
    ffi::PyErr_SetString(
        ffi::PyExc_SystemError,
        c"tiered: reached unreachable code".as_ptr(),
    );
    1
}

/// Makes a callee emitted inline a whole activation, on the first call out of its code (or
/// the first read of its context): writes its context at `ctx` and links its CPython frame
/// at `frame` (with the word before it pointing back at `ctx`, see `activation`), as a
/// direct call's native code does before calling a callee it did not inline. Out of line:
/// emitted at each such site inline, the same stores took about a quarter of all the
/// Cranelift instructions of functions with inlined callees.
///
/// # Safety
/// GIL held, on `ts`'s thread; `ctx`, `frame` (with room for the code's slots and the
/// back pointer before it) and `regs` are the inlined call's, `frame` not linked yet;
/// `func` is a function of `compiled`'s code, alive for the call; `tuning` outlives it.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn link_inline(
    ctx: *mut Ctx,
    compiled: *const crate::runtime::Compiled,
    func: *mut ffi::PyObject,
    frame: *mut crate::cpy::frame::InterpreterFrame,
    regs: *mut Value,
    tuning: *const crate::runtime::Tuning,
    ts: crate::cpy::ThreadState,
    stack_limit: usize,
) {
    let f = func as *mut ffi::PyFunctionObject;
    let (globals, builtins) = ((*f).func_globals, (*f).func_builtins);
    let c = &*compiled;
    // Field by field: `ran_native` stays unwritten (only calls from Rust read it, from
    // their own context), so no whole `Ctx` is made here.
    std::ptr::addr_of_mut!((*ctx).compiled).write(c);
    std::ptr::addr_of_mut!((*ctx).func).write(f);
    std::ptr::addr_of_mut!((*ctx).globals).write(globals);
    std::ptr::addr_of_mut!((*ctx).builtins).write(builtins);
    std::ptr::addr_of_mut!((*ctx).tuning).write(&*tuning);
    std::ptr::addr_of_mut!((*ctx).tstate).write(ts);
    std::ptr::addr_of_mut!((*ctx).stack_limit).write(stack_limit);
    std::ptr::addr_of_mut!((*ctx).frame).write(frame);
    std::ptr::addr_of_mut!((*ctx).regs).write(regs);
    crate::activation::link_frame(ctx, ts, frame, func, c.nlocalsplus);
}

/// Frees an object whose refcount native code dropped to zero.
///
/// # Safety
/// GIL held; `p` has refcount 0.
pub unsafe extern "C" fn dealloc(p: *mut ffi::PyObject) {
    _Py_Dealloc(p)
}

extern "C" {
    /// CPython's deallocation entry (what Py_DECREF calls at zero); exported by libpython.
    fn _Py_Dealloc(p: *mut ffi::PyObject);
}
