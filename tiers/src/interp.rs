//! The tier-1 interpreter: runs a function's linear form over a register file. One
//! exhaustive match dispatches every op to its family in `ops/`.

use crate::lower::{Edge, LInst, LKind, NO_EDGE};
use crate::ops;
use crate::quick::Quick;
use crate::runtime::Compiled;
use crate::stats;
use crate::value::{PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::{Op, RaiseKind};

/// What the running function's ops need besides their operands (native code reads
/// `globals` and `builtins` at fixed offsets).
#[repr(C)]
pub struct Ctx<'a> {
    /// The compiled function.
    pub compiled: &'a Compiled,
    /// The function object being run (for closure, defaults).
    pub func: *mut ffi::PyFunctionObject,
    /// Its globals dict.
    pub globals: *mut ffi::PyObject,
    /// Its builtins dict.
    pub builtins: *mut ffi::PyObject,
    /// How the function tiers up (quickening on or off, tier-2 thresholds): the wrapper's,
    /// the process default, or the calling activation's.
    pub tuning: &'a crate::runtime::Tuning,
    /// Set once any of this call ran in native code (for stats: only calls from Rust
    /// read it; native callers leave it unwritten).
    pub ran_native: std::cell::Cell<bool>,
    /// The current thread state, read once per call from CPython and handed down by
    /// calls from tiered code.
    pub tstate: crate::cpy::ThreadState,
    /// `stack::limit()` of this thread, likewise.
    pub stack_limit: usize,
    /// This activation's CPython frame (`cpy::frame`), linked into the thread's chain; the
    /// word before it holds this context's address (`activation`).
    pub frame: *mut crate::cpy::frame::InterpreterFrame,
    /// Its register file (`activation` syncs a suspended caller's from it).
    pub regs: *mut Value,
}

impl Ctx<'_> {
    /// Marks instruction `pc` as the one running, in the CPython frame (`f_lineno`,
    /// `f_lasti`, tracebacks).
    #[inline(always)]
    pub fn at(&self, pc: usize) {
        let off = self.compiled.linear.insts[pc].offset;
        // SAFETY: `frame` is this activation's frame, pushed for it and live until it
        // returns; only this thread touches it meanwhile.
        unsafe { (*self.frame).prev_instr = self.compiled.code_unit(off) };
    }
}

/// How an op failed: a new exception (gets a traceback line) or a re-raise (keeps its own).
pub(crate) enum Failure {
    New,
    Reraise,
}

/// Runs `c` from instruction `start` with its registers as set up (arguments, or the state
/// native code left); returns the result or `Raised`. A loop that gets hot enters native
/// code at its header (OSR) and finishes there.
///
/// # Safety
/// GIL held; `regs.len() == c.linear.nregs`; `func` is the live function `c` came from.
pub unsafe fn run(ctx: &Ctx, regs: &mut [Value], start: usize) -> PyResult<Value> {
    let r = run_body(ctx, regs, start);
    // As RETURN_VALUE and the unwind check `use_tracing` (`tracing`).
    if ctx.tstate.tracing() {
        return crate::tracing::function_exit(ctx.tstate, r);
    }
    r
}

/// `run` up to the exit.
///
/// # Safety
/// As `run`.
#[inline(always)]
unsafe fn run_body(ctx: &Ctx, regs: &mut [Value], start: usize) -> PyResult<Value> {
    let lin = &ctx.compiled.linear;
    let mut pc = start;
    let counting = stats::counting_enabled();
    // Takes edge `e` of the instruction at `pc`: the moves, then on a back edge native
    // code if the loop is hot (OSR).
    macro_rules! follow {
        ($e:expr) => {{
            let e: Edge = $e;
            if take_edge(lin, e, regs).is_err() {
                crate::traceback::add_frame(ctx, pc);
                return Err(Raised);
            }
            pc = e.target as usize;
            // Not with a trace or profile hook on: tier 1 gives their events.
            if e.backward && !ctx.tstate.tracing() {
                if let Some(native) = ctx.compiled.native_for_osr(ctx) {
                    match run_native(ctx, native, regs, pc) {
                        NativeExit::Done(r) => return r,
                        NativeExit::Resume(at) => pc = at,
                    }
                }
            }
        }};
    }
    // Set once a trace or profile hook came on during this activation (`tracing`).
    // (Native code that left for tier 1 because one came on resumes here after the op
    // that noticed it.)
    let mut lines = (start > 0 && ctx.tstate.tracing())
        .then(|| crate::tracing::Lines::new(ctx.compiled, lin.insts[start - 1].offset));
    let code = ctx.compiled.objects.code.ptr();
    loop {
        let inst = &lin.insts[pc];
        ctx.at(pc);
        if let Some(lines) = lines.as_mut() {
            let sync = || crate::activation::sync_own(ctx, pc);
            // SAFETY (of the write): the frame is this activation's, linked while it runs.
            let mark = |unit| unsafe { (*ctx.frame).prev_instr = ctx.compiled.code_unit(unit) };
            if lines
                .before(ctx.tstate, code, inst.offset, sync, mark)
                .is_err()
            {
                match unwind(ctx, pc, inst, Failure::New, regs) {
                    Some(target) => {
                        pc = target;
                        continue;
                    }
                    None => return Err(Raised),
                }
            }
        }
        match inst.kind {
            LKind::Op(op) => {
                if counting {
                    stats::count_op(op.kind());
                }
                let done = match op {
                    Op::Call { kwnames } => exec_call(ctx, kwnames, inst, pc, regs),
                    _ => exec_other(ctx, op, inst, pc, regs),
                };
                match done {
                    Ok(()) => {
                        if lines.is_none()
                            && matches!(
                                op,
                                Op::Call { .. } | Op::CallEx { .. } | Op::EvalBreaker {}
                            )
                            && ctx.tstate.tracing()
                        {
                            lines = Some(crate::tracing::Lines::new(ctx.compiled, inst.offset));
                        }
                        pc += 1
                    }
                    Err(how) => match unwind(ctx, pc, inst, how, regs) {
                        Some(target) => pc = target,
                        None => return Err(Raised),
                    },
                }
            }
            LKind::Jump(e) => {
                let e = lin.edges[e as usize];
                follow!(e);
            }
            LKind::Branch {
                cond,
                then_edge,
                else_edge,
            } => {
                let truth = match truth_at(ctx, regs, pc, cond as usize) {
                    t if t < 0 => return Err(Raised),
                    t => t != 0,
                };
                let e = lin.edges[if truth { then_edge } else { else_edge } as usize];
                // A loop tested at its bottom (3.11's `while` loops) goes back through a
                // branch: it tiers up like any other back edge.
                follow!(e);
            }
            LKind::Drop { start, len } => {
                release_drops(lin, start, len, regs);
                pc += 1;
            }
            LKind::Return { reg, kept: false } => {
                return Ok(std::mem::take(&mut regs[reg as usize]))
            }
            LKind::Return { reg, kept: true } => {
                let v = &mut regs[reg as usize];
                // One object for both (module invariant of `value`).
                if v.box_in_place().is_err() {
                    crate::traceback::add_frame(ctx, pc);
                    return Err(Raised);
                }
                return Ok(v.clone());
            }
            LKind::Suspend { .. } => {
                return crate::generator::suspend(ctx, regs, pc).inspect_err(|_| {
                    crate::traceback::add_frame(ctx, pc);
                })
            }
            LKind::Unreachable => {
                ffi::PyErr_SetString(
                    ffi::PyExc_SystemError,
                    c"tiered: reached unreachable code".as_ptr(),
                );
                return Err(Raised);
            }
        }
    }
}

/// How native code left.
pub enum NativeExit {
    /// The function returned or raised.
    Done(PyResult<Value>),
    /// The code was invalidated: continue in tier 1 at this instruction.
    Resume(usize),
}

/// Runs native code from instruction `start`.
///
/// # Safety
/// As `run`; `native` was compiled from `ctx.compiled`.
#[inline]
pub unsafe fn run_native(
    ctx: &Ctx,
    native: crate::native::NativeFn,
    regs: &mut [Value],
    start: usize,
) -> NativeExit {
    ctx.ran_native.set(true);
    let mut out = Value::Null;
    match native(ctx, regs.as_mut_ptr(), start as u32, &mut out) {
        0 => NativeExit::Done(Ok(out)),
        1 => NativeExit::Done(Err(Raised)),
        s => NativeExit::Resume((s - 2) as usize),
    }
}

/// After an op failed: adds the traceback line (new exceptions only) and, if a handler
/// covers the op, sets up its registers and returns where it starts.
unsafe fn unwind(
    ctx: &Ctx,
    pc: usize,
    inst: &LInst,
    how: Failure,
    regs: &mut [Value],
) -> Option<usize> {
    if let Failure::New = how {
        crate::traceback::add_frame(ctx, pc);
        if ctx.tstate.tracing() {
            crate::tracing::exception(ctx.tstate);
        }
    }
    if inst.unwind == NO_EDGE {
        return None;
    }
    let lin = &ctx.compiled.linear;
    let exc = crate::traceback::fetch_normalized();
    let e = lin.edges[inst.unwind as usize];
    if take_edge(lin, e, regs).is_err() {
        return None; // out of memory while unwinding
    }
    regs[e.exc_reg as usize] = exc;
    Some(e.target as usize)
}

/// Runs op `pc` in tier 1 for native code: 0 done, 1 exception leaves the function,
/// 2 + handler instruction when a handler catches it.
///
/// # Safety
/// GIL held; `regs` is the function's register file.
pub unsafe fn exec_at(ctx: &Ctx, regs: &mut [Value], pc: usize) -> i64 {
    let inst = &ctx.compiled.linear.insts[pc];
    let LKind::Op(op) = inst.kind else { return 0 };
    ctx.at(pc);
    if stats::counting_enabled() {
        stats::count_op(op.kind());
    }
    let r = exec(ctx, op, inst, pc, regs);
    if !matches!(ctx.compiled.quick[pc].get(), Quick::Generic) {
        ctx.compiled.specialized_late(pc);
    }
    match r {
        Ok(()) => 0,
        Err(how) => match unwind(ctx, pc, inst, how, regs) {
            Some(target) => 2 + target as i64,
            None => 1,
        },
    }
}

/// A quickened Call for native code, without the generic op's dispatch: -1 if the callee
/// is not the one specialized on (the template's guard), else as `exec_at`.
///
/// # Safety
/// As `exec_at`.
pub unsafe fn call_at(ctx: &Ctx, regs: &mut [Value], pc: usize) -> i64 {
    let inst = &ctx.compiled.linear.insts[pc];
    let (LKind::Op(Op::Call { kwnames }), Quick::Call(v)) =
        (inst.kind, ctx.compiled.quick[pc].get())
    else {
        return -1;
    };
    if ctx.tstate.tracing() {
        return -1; // the generic op reports C calls to the hook (`tracing`)
    }
    ctx.at(pc);
    let ops_ix =
        &ctx.compiled.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize];
    let mut small = [std::ptr::null_mut::<ffi::PyObject>(); 12];
    if ops_ix.len() > small.len() {
        return -1;
    }
    for (slot, &r) in small.iter_mut().zip(ops_ix) {
        if regs[r as usize].box_in_place().is_err() {
            return match unwind(ctx, pc, inst, Failure::New, regs) {
                Some(target) => 2 + target as i64,
                None => 1,
            };
        }
        *slot = regs[r as usize].as_ptr();
    }
    let ptrs = &mut small[..ops_ix.len()];
    let v = ops::calls::quick_variant(ctx, &ctx.compiled.quick[pc], v, kwnames, ptrs);
    if v.widens() {
        ctx.compiled.call_helper_ran(pc);
    }
    let r = ops::calls::call_quick(ctx, v, kwnames, ptrs);
    // A run of the tier-1 helper, as `exec_at` counts one (-1 goes on to `exec_at`).
    if r.is_some() && stats::counting_enabled() {
        stats::count_op(tiered_ir::OpKind::Call);
    }
    match r {
        None => -1,
        Some(Ok(value)) => {
            regs[inst.dst as usize] = value;
            0
        }
        Some(Err(Raised)) => match unwind(ctx, pc, inst, Failure::New, regs) {
            Some(target) => 2 + target as i64,
            None => 1,
        },
    }
}

/// After a direct native call at `pc` raised: the traceback line and handler, as for any
/// op that raised. Returns 1 (leaves) or 2 + the handler's instruction.
///
/// # Safety
/// As `exec_at`, with the exception set.
pub unsafe fn fail_at(ctx: &Ctx, regs: &mut [Value], pc: usize) -> i64 {
    ctx.at(pc);
    match unwind(ctx, pc, &ctx.compiled.linear.insts[pc], Failure::New, regs) {
        Some(target) => 2 + target as i64,
        None => 1,
    }
}

/// After a builtin iterator's `tp_iternext` returned NULL in native code at ForIter `pc`:
/// an error (not StopIteration) leaves or enters the handler like any raising op (1 or
/// 2 + handler); otherwise the loop is over: the flag true (0), the item register as it
/// was (see tier 1's ForIter).
///
/// # Safety
/// As `exec_at`.
pub unsafe fn for_iter_end_at(ctx: &Ctx, regs: &mut [Value], pc: usize) -> i64 {
    if !ffi::PyErr_Occurred().is_null() {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) == 0 {
            return fail_at(ctx, regs, pc);
        }
        ffi::PyErr_Clear();
    }
    let dst = ctx.compiled.linear.insts[pc].dst as usize;
    regs[dst + 1] = Value::Bool(true);
    0
}

/// Continues a function in tier 1 at `pc` after its native code was invalidated under a
/// direct native call; the result goes to `*out`. Returns 0, or 1 with an exception set.
///
/// # Safety
/// As `run`; `out` is NULL (empty).
pub unsafe fn resume_at(ctx: &Ctx, regs: &mut [Value], pc: usize, out: &mut Value) -> i64 {
    match run(ctx, regs, pc) {
        Ok(v) => {
            *out = v;
            0
        }
        Err(Raised) => 1,
    }
}

/// Takes edge `edge` of instruction `pc` for native code: 0 ok, 1 exception.
///
/// # Safety
/// As `exec_at`.
pub unsafe fn edge_at(ctx: &Ctx, regs: &mut [Value], pc: usize, edge: usize) -> i64 {
    let lin = &ctx.compiled.linear;
    if take_edge(lin, lin.edges[edge], regs).is_err() {
        ctx.at(pc);
        crate::traceback::add_frame(ctx, pc);
        return 1;
    }
    0
}

/// The truth of register `reg` as a branch condition at `pc`: 0, 1, or -1 with an
/// exception set (and the traceback line added).
///
/// # Safety
/// As `exec_at`.
pub unsafe fn truth_at(ctx: &Ctx, regs: &mut [Value], pc: usize, reg: usize) -> i64 {
    match ops::compare::truth(&regs[reg]) {
        Ok(Value::Bool(b)) => b as i64,
        Ok(_) => 1,
        Err(Raised) => {
            ctx.at(pc);
            crate::traceback::add_frame(ctx, pc);
            -1
        }
    }
}

/// Performs the edge's moves into the target's parameters (already ordered by lowering).
#[inline]
fn take_edge(
    lin: &crate::lower::Linear,
    e: crate::lower::Edge,
    regs: &mut [Value],
) -> PyResult<()> {
    for &(s, d, movable) in
        &lin.moves[e.moves_start as usize..(e.moves_start + e.moves_len) as usize]
    {
        regs[d as usize] = if movable {
            std::mem::take(&mut regs[s as usize])
        } else {
            // A second register gets the value: box it first so both share one object.
            // SAFETY: GIL held (module invariant of tiers).
            unsafe { regs[s as usize].box_in_place()? };
            regs[s as usize].clone()
        };
    }
    release_drops(lin, e.drops_start, e.drops_len, regs);
    Ok(())
}

/// Releases registers `lin.drops[start..start + len]` (values that died), each emptied
/// before its object is released, as CPython's stores empty a slot first.
#[inline]
fn release_drops(lin: &crate::lower::Linear, start: u32, len: u32, regs: &mut [Value]) {
    for &r in &lin.drops[start as usize..(start + len) as usize] {
        drop(std::mem::take(&mut regs[r as usize]));
    }
}

/// Ops that read unboxed numbers themselves (quickened forms, truth tests); every other
/// op gets its operands boxed first.
#[inline]
fn reads_unboxed(op: Op) -> bool {
    matches!(
        op,
        Op::Binary { .. }
            | Op::Compare { .. }
            | Op::Subscr {}
            | Op::Truth {}
            | Op::IsNone {}
            | Op::ForIter {}
            | Op::LoadGlobal { .. }
            | Op::Call { .. }
    )
}

/// `exec` of a call, on its own. The loop's frame stays on the native stack while the
/// callee runs, and the rest of `exec`, inlined there, made it 1.5 KB; apart, the call's
/// own arm is all that stays (`stack` bounds recursion by the native stack's depth).
#[inline(never)]
unsafe fn exec_call(
    ctx: &Ctx,
    kwnames: tiered_ir::KwNames,
    inst: &LInst,
    pc: usize,
    regs: &mut [Value],
) -> Result<(), Failure> {
    exec(ctx, Op::Call { kwnames }, inst, pc, regs)
}

/// `exec` of every other op, out of the loop's frame (see `exec_call`).
#[inline(never)]
unsafe fn exec_other(
    ctx: &Ctx,
    op: Op,
    inst: &LInst,
    pc: usize,
    regs: &mut [Value],
) -> Result<(), Failure> {
    exec(ctx, op, inst, pc, regs)
}

/// Executes one op.
#[inline(always)]
unsafe fn exec(
    ctx: &Ctx,
    op: Op,
    inst: &LInst,
    pc: usize,
    regs: &mut [Value],
) -> Result<(), Failure> {
    let ops_ix =
        &ctx.compiled.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize];
    macro_rules! a {
        ($k:expr) => {
            &regs[ops_ix[$k] as usize]
        };
    }
    let dst = inst.dst as usize;
    // Ops produce their results first, then write them, so reading operands and writing
    // registers never overlap.
    macro_rules! set {
        ($e:expr) => {{
            let v = $e.map_err(|_| Failure::New)?;
            regs[dst] = v;
        }};
    }
    macro_rules! run {
        ($e:expr) => {{
            $e.map_err(|_| Failure::New)?;
        }};
    }
    // Operands as borrowed pointers (on the stack for the common sizes), for the ops that
    // hand them to CPython as an array; the buffers are declared only in those arms.
    macro_rules! ptrs {
        ($small:ident, $large:ident) => {{
            if ops_ix.len() <= $small.len() {
                for (slot, &r) in $small.iter_mut().zip(ops_ix) {
                    *slot = regs[r as usize].as_ptr();
                }
                &mut $small[..ops_ix.len()]
            } else {
                $large.extend(ops_ix.iter().map(|&r| regs[r as usize].as_ptr()));
                &mut $large[..]
            }
        }};
    }
    macro_rules! with_ptrs {
        ($p:ident => $e:expr) => {{
            let mut small = [std::ptr::null_mut::<ffi::PyObject>(); 12];
            let mut large = Vec::new();
            let $p = ptrs!(small, large);
            $e
        }};
    }
    // Unboxed numbers become objects before any generic op sees them (in place, so every
    // later use shares the one object); ops whose quickened forms read unboxed values box
    // only on their generic path.
    macro_rules! box_operands {
        () => {
            for &r in ops_ix {
                regs[r as usize].box_in_place().map_err(|_| Failure::New)?;
            }
        };
    }
    let q = &ctx.compiled.quick[pc];
    if !reads_unboxed(op) {
        box_operands!();
    }
    match op {
        Op::Const { index } => set!(ops::values::load_const(ctx, index)),
        Op::Null {} | Op::Lasti {} => regs[dst] = Value::Null,
        Op::CheckBound { local } => set!(ops::values::check_bound(ctx, local, a!(0))),
        Op::LoadAssertionError {} => regs[dst] = Value::from_borrowed(ffi::PyExc_AssertionError),
        Op::LoadBuildClass {} => set!(ops::globals::load_build_class(ctx)),
        Op::LoadGlobal { name } => {
            if let Quick::Global(c) = q.get() {
                if let Some(v) = ops::globals::load_global_quick(ctx, pc, c) {
                    regs[dst] = v;
                    return Ok(());
                }
                q.miss();
            }
            let v = ops::globals::load_global(ctx, name).map_err(|_| Failure::New)?;
            if ctx.tuning.quicken && q.may_specialize() {
                if let Some(c) = q.observed(ops::globals::observe_global(ctx, pc, name)) {
                    q.specialize(Quick::Global(c));
                }
            }
            regs[dst] = v;
        }
        Op::StoreGlobal { name } => run!(ops::globals::store_global(ctx, name, a!(0))),
        Op::DeleteGlobal { name } => run!(ops::globals::delete_global(ctx, name)),
        Op::Binary { op } => {
            if let Quick::Binary(v) = q.get() {
                if let Some(r) = ops::arith::binary_quick(op, v, a!(0), a!(1)) {
                    regs[dst] = r;
                    return Ok(());
                }
                match ops::arith::widen_binary(op, v, a!(0), a!(1)) {
                    Some(w) => {
                        q.specialize(Quick::Binary(w));
                        if let Some(r) = ops::arith::binary_quick(op, w, a!(0), a!(1)) {
                            regs[dst] = r;
                            return Ok(());
                        }
                    }
                    None => q.miss(),
                }
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::arith::observe_binary(op, a!(0), a!(1))) {
                    q.specialize(Quick::Binary(v));
                    if let Some(r) = ops::arith::binary_quick(op, v, a!(0), a!(1)) {
                        regs[dst] = r;
                        return Ok(());
                    }
                }
            }
            box_operands!();
            if ctx.compiled.linear.last_use[inst.args as usize] && ops_ix[0] != ops_ix[1] {
                let (l, r) = (ops_ix[0] as usize, ops_ix[1] as usize);
                let right = std::mem::take(&mut regs[r]);
                let appended = ops::arith::str_append_in_place(op, &mut regs[l], &right);
                regs[r] = right;
                if let Some(v) = appended {
                    set!(v);
                    return Ok(());
                }
            }
            set!(ops::arith::binary(op, a!(0), a!(1)))
        }
        Op::Unary { op } => set!(ops::arith::unary(op, a!(0))),
        Op::Compare { op, jump } => {
            // A frame at the recursion limit runs here, never in native code
            // (`Compiled::native_for_call`): its comparisons raise where CPython's do.
            if ctx.tstate.at_recursion_limit() {
                box_operands!();
                set!(ops::compare::compare_at_limit(
                    ctx.tstate,
                    op,
                    jump,
                    a!(0),
                    a!(1)
                ));
                return Ok(());
            }
            if let Quick::Compare(v) = q.get() {
                if let Some(r) = ops::compare::compare_quick(op, v, a!(0), a!(1)) {
                    regs[dst] = r;
                    return Ok(());
                }
                q.miss();
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::compare::observe_compare(op, a!(0), a!(1))) {
                    q.specialize(Quick::Compare(v));
                    if let Some(r) = ops::compare::compare_quick(op, v, a!(0), a!(1)) {
                        regs[dst] = r;
                        return Ok(());
                    }
                }
            }
            box_operands!();
            set!(ops::compare::compare(op, a!(0), a!(1)))
        }
        Op::Is { invert } => regs[dst] = Value::Bool((a!(0).as_ptr() == a!(1).as_ptr()) != invert),
        Op::Contains { invert } => set!(ops::compare::contains(invert, a!(0), a!(1))),
        Op::Truth {} => {
            if ctx.tuning.quicken {
                ops::compare::observe_truth(q, a!(0));
            }
            set!(ops::compare::truth(a!(0)))
        }
        Op::IsNone {} => regs[dst] = Value::Bool(a!(0).as_ptr() == ffi::Py_None()),
        Op::GetIter {} => set!(ops::iter::get_iter(a!(0))),
        Op::Thrown {} => {
            // NULL: `throw()` or `close()` set the exception to raise here.
            if a!(0).is_null() {
                return Err(Failure::New);
            }
            regs[dst] = a!(0).clone();
        }
        Op::GetYieldFromIter { coroutine } => {
            set!(ops::generators::get_yield_from_iter(coroutine, a!(0)))
        }
        Op::GetAwaitable { kind } => set!(ops::generators::get_awaitable(kind, a!(0))),
        Op::GetAiter {} => set!(ops::generators::get_aiter(a!(0))),
        Op::GetAnext {} => set!(ops::generators::get_anext(a!(0))),
        Op::AsyncGenWrap {} => set!(ops::generators::async_gen_wrap(a!(0))),
        Op::EndAsyncFor {} => {
            if !ops::generators::ends_async_for(a!(0)) {
                ops::exceptions::reraise(a!(0));
                return Err(Failure::Reraise);
            }
        }
        Op::Send {} => {
            let (v, returned) =
                ops::generators::send(crate::generator::Thread::of(ctx), a!(0), a!(1))
                    .map_err(|_| Failure::New)?;
            regs[dst] = v;
            regs[dst + 1] = Value::Bool(returned);
        }
        Op::ForIter {} => {
            let mut quick_item = None;
            if let Quick::ForIter(v) = q.get() {
                quick_item = ops::iter::for_iter_quick(v, a!(0));
                if quick_item.is_none() {
                    q.miss();
                }
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::iter::observe_for_iter(a!(0))) {
                    q.specialize(Quick::ForIter(v));
                    quick_item = ops::iter::for_iter_quick(v, a!(0));
                }
            }
            let item = match quick_item {
                Some(item) => item,
                None => ops::iter::for_iter(a!(0)),
            }
            .map_err(|_| Failure::New)?;
            // Exhausted: the item register keeps what it holds (`lower::loop_carried`:
            // the loop variable's last item, when they share it).
            let done = item.is_null();
            if !done {
                regs[dst] = item;
            }
            regs[dst + 1] = Value::Bool(done);
        }
        Op::LoadAttr { name } => {
            if let Quick::Attr(v) = q.get() {
                if let Some(r) = ops::attrs::load_attr_quick(v, a!(0)) {
                    regs[dst] = r;
                    return Ok(());
                }
                // An instance of another class: the site becomes polymorphic (see
                // LoadMethod).
                match ops::attrs::widen_attr(ctx, name, v, a!(0), false) {
                    Some(w) if ctx.tuning.quicken => q.specialize(Quick::Attr(w)),
                    _ => q.miss(),
                }
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::attrs::observe_load_attr(ctx, name, a!(0))) {
                    q.specialize(Quick::Attr(v));
                }
            }
            set!(ops::attrs::load_attr(ctx, name, a!(0)))
        }
        Op::StoreAttr { name } => {
            if let Quick::Attr(v) = q.get() {
                if ops::attrs::store_attr_quick(v, a!(0), a!(1)).is_some() {
                    return Ok(());
                }
                // Polymorphic as LoadAttr.
                match ops::attrs::widen_attr(ctx, name, v, a!(0), true) {
                    Some(w) if ctx.tuning.quicken => q.specialize(Quick::Attr(w)),
                    _ => q.miss(),
                }
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::attrs::observe_store_attr(ctx, name, a!(0))) {
                    q.specialize(Quick::Attr(v));
                }
            }
            run!(ops::attrs::store_attr(ctx, name, a!(0), a!(1)))
        }
        Op::DeleteAttr { name } => run!(ops::attrs::delete_attr(ctx, name, a!(0))),
        Op::LoadMethod { name } => {
            if let Quick::Method(v) = q.get() {
                if let Some((m, s)) = ops::attrs::load_method_quick(v, a!(0)) {
                    regs[dst] = m;
                    regs[dst + 1] = s;
                    return Ok(());
                }
                // An instance of another class: the site becomes polymorphic (its native
                // code, deopting here meanwhile, is recompiled with every class seen).
                match ops::attrs::widen_method(ctx, name, v, a!(0)) {
                    Some(w) if ctx.tuning.quicken => q.specialize(Quick::Method(w)),
                    _ => q.miss(),
                }
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::attrs::observe_load_method(ctx, name, a!(0))) {
                    q.specialize(Quick::Method(v));
                }
            }
            let (m, s) = ops::attrs::load_method(ctx, name, a!(0)).map_err(|_| Failure::New)?;
            regs[dst] = m;
            regs[dst + 1] = s;
        }
        Op::Subscr {} => {
            if let Quick::Subscr(v) = q.get() {
                if let Some(r) = ops::subscr::subscr_quick(v, a!(0), a!(1)) {
                    set!(r);
                    return Ok(());
                }
                q.miss();
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::subscr::observe_subscr(a!(0), a!(1))) {
                    q.specialize(Quick::Subscr(v));
                    if let Some(r) = ops::subscr::subscr_quick(v, a!(0), a!(1)) {
                        set!(r);
                        return Ok(());
                    }
                }
            }
            box_operands!();
            set!(ops::subscr::subscr(a!(0), a!(1)))
        }
        Op::StoreSubscr {} => {
            if let Quick::StoreSubscr(v) = q.get() {
                if let Some(r) = ops::subscr::store_subscr_quick(v, a!(0), a!(1), a!(2)) {
                    run!(r);
                    return Ok(());
                }
                q.miss();
            } else if ctx.tuning.quicken && q.may_specialize() {
                if let Some(v) = q.observed(ops::subscr::observe_store_subscr(a!(1), a!(2))) {
                    q.specialize(Quick::StoreSubscr(v));
                    if let Some(r) = ops::subscr::store_subscr_quick(v, a!(0), a!(1), a!(2)) {
                        run!(r);
                        return Ok(());
                    }
                }
            }
            run!(ops::subscr::store_subscr(a!(0), a!(1), a!(2)))
        }
        Op::DeleteSubscr {} => run!(ops::subscr::delete_subscr(a!(0), a!(1))),
        Op::BuildSlice { count } => set!(ops::subscr::build_slice(
            a!(0),
            a!(1),
            if count == 3 { Some(a!(2)) } else { None }
        )),
        Op::Call { kwnames } => {
            box_operands!();
            let mut small = [std::ptr::null_mut::<ffi::PyObject>(); 12];
            let mut large = Vec::new();
            let ptrs = ptrs!(small, large);
            if ops::calls::reads_frame(ops::calls::callable_of(ptrs)) {
                crate::activation::sync_own(ctx, pc).map_err(|_| Failure::New)?;
            }
            if ctx.tstate.tracing() {
                // As CALL with `use_tracing`: the generic call reports C calls (`tracing`).
                set!(ops::calls::call(ctx, kwnames, ptrs));
                return Ok(());
            }
            if let Quick::Call(v) = q.get() {
                let v = ops::calls::quick_variant(ctx, q, v, kwnames, ptrs);
                if let Some(r) = ops::calls::call_quick(ctx, v, kwnames, ptrs) {
                    set!(r);
                    return Ok(());
                }
                q.miss();
            } else if ctx.tuning.quicken && q.may_specialize() {
                let found = ops::calls::observe_call(ctx, kwnames, ptrs);
                // A cold callee is "not yet", not "nothing fits": no backoff.
                let found = match found {
                    None if crate::runtime::took_cold() => None,
                    found => q.observed(found),
                };
                if let Some(v) = found {
                    q.specialize(Quick::Call(v));
                    if let Some(r) = ops::calls::call_quick(ctx, v, kwnames, ptrs) {
                        set!(r);
                        return Ok(());
                    }
                }
            }
            set!(ops::calls::call(ctx, kwnames, ptrs))
        }
        Op::CallEx { kwargs } => {
            if ops::calls::reads_frame(a!(0).as_ptr()) {
                crate::activation::sync_own(ctx, pc).map_err(|_| Failure::New)?;
            }
            set!(ops::calls::call_ex(
                a!(0),
                a!(1),
                if kwargs { Some(a!(2)) } else { None }
            ))
        }
        Op::MakeFunction { flags } => {
            set!(with_ptrs!(p => ops::calls::make_function(ctx, flags, p)))
        }
        Op::BuildTuple {} => set!(with_ptrs!(p => ops::build::build_tuple(p))),
        Op::BuildList {} => set!(with_ptrs!(p => ops::build::build_list(p))),
        Op::BuildSet {} => set!(with_ptrs!(p => ops::build::build_set(p))),
        Op::BuildMap {} => set!(with_ptrs!(p => ops::build::build_map(p))),
        Op::BuildConstKeyMap {} => set!(with_ptrs!(p => ops::build::build_const_key_map(p))),
        Op::BuildString {} => set!(with_ptrs!(p => ops::build::build_string(p))),
        Op::FormatValue { conversion, spec } => {
            set!(ops::build::format_value(
                conversion,
                a!(0),
                if spec { Some(a!(1)) } else { None }
            ))
        }
        Op::ListAppend {} => run!(ops::build::list_append(a!(0), a!(1))),
        Op::SetAdd {} => run!(ops::build::set_add(a!(0), a!(1))),
        Op::MapAdd {} => run!(ops::build::map_add(a!(0), a!(1), a!(2))),
        Op::ListExtend {} => run!(ops::build::list_extend(a!(0), a!(1))),
        Op::SetUpdate {} => run!(ops::build::set_update(a!(0), a!(1))),
        Op::DictUpdate {} => run!(ops::build::dict_update(a!(0), a!(1))),
        Op::DictMerge {} => run!(ops::build::dict_merge(a!(0), a!(1), a!(2))),
        Op::ListToTuple {} => set!(ops::build::list_to_tuple(a!(0))),
        Op::UnpackSequence { count } => {
            let items =
                ops::build::unpack(a!(0), count as usize, None).map_err(|_| Failure::New)?;
            for (k, v) in items.into_iter().enumerate() {
                regs[dst + k] = v;
            }
        }
        Op::UnpackEx { before, after } => {
            let items = ops::build::unpack(a!(0), before as usize, Some(after as usize))
                .map_err(|_| Failure::New)?;
            for (k, v) in items.into_iter().enumerate() {
                regs[dst + k] = v;
            }
        }
        Op::MakeCell {} => set!(ops::cells::make_cell(a!(0))),
        Op::LoadClosure { index } => set!(ops::cells::load_closure(ctx.func, index)),
        Op::LoadDeref { local } => set!(ops::cells::load_deref(ctx, local, a!(0))),
        Op::StoreDeref {} => run!(ops::cells::store_deref(a!(0), a!(1))),
        Op::DeleteDeref { local } => run!(ops::cells::delete_deref(ctx, local, a!(0))),
        Op::PushExcInfo {} => set!(ops::exceptions::push_exc_info(a!(0))),
        Op::PopExcept {} => ops::exceptions::pop_except(a!(0)),
        Op::CheckExcMatch {} => set!(ops::exceptions::check_exc_match(a!(0), a!(1))),
        Op::Raise { kind } => {
            let exc = if kind == RaiseKind::Reraise {
                None
            } else {
                Some(a!(0))
            };
            let cause = if kind == RaiseKind::ExcFrom {
                Some(a!(1))
            } else {
                None
            };
            return Err(match ops::exceptions::raise(exc, cause) {
                ops::exceptions::Raise::New => Failure::New,
                ops::exceptions::Raise::Reraise => Failure::Reraise,
            });
        }
        Op::Reraise {} => {
            ops::exceptions::reraise(a!(0));
            return Err(Failure::Reraise);
        }
        Op::BeforeWith {} => {
            let (exit, res) = ops::exceptions::before_with(a!(0)).map_err(|_| Failure::New)?;
            regs[dst] = exit;
            regs[dst + 1] = res;
        }
        Op::BeforeAsyncWith {} => {
            let (exit, res) =
                ops::exceptions::before_async_with(a!(0)).map_err(|_| Failure::New)?;
            regs[dst] = exit;
            regs[dst + 1] = res;
        }
        Op::WithExceptStart {} => set!(ops::exceptions::with_except_start(a!(0), a!(1))),
        Op::CheckEgMatch {} => {
            let (rest, m) =
                ops::exceptions::check_eg_match(a!(0), a!(1)).map_err(|_| Failure::New)?;
            regs[dst] = rest;
            regs[dst + 1] = m;
        }
        Op::PrepReraiseStar {} => set!(ops::exceptions::prep_reraise_star(a!(0), a!(1))),
        Op::GetLen {} => set!(ops::matching::get_len(a!(0))),
        Op::MatchMapping {} => regs[dst] = ops::matching::match_mapping(a!(0)),
        Op::MatchSequence {} => regs[dst] = ops::matching::match_sequence(a!(0)),
        Op::MatchKeys {} => set!(ops::matching::match_keys(a!(0), a!(1))),
        Op::MatchClass { count } => set!(ops::matching::match_class(count, a!(0), a!(1), a!(2))),
        Op::ImportName { name } => set!(ops::imports::import_name(ctx, name, a!(0), a!(1))),
        Op::ImportFrom { name } => set!(ops::imports::import_from(ctx, name, a!(0))),
        Op::EvalBreaker {} => {
            if crate::cpy::eval_breaker_set() {
                run!(ops::events::handle_eval_breaker())
            }
        }
        Op::Unsupported { reason, .. } => {
            // Functions with Unsupported ops are never run by tier 1; be total anyway.
            let msg = std::ffi::CString::new(reason).unwrap_or_default();
            ffi::PyErr_SetString(ffi::PyExc_SystemError, msg.as_ptr());
            return Err(Failure::New);
        }
    }
    Ok(())
}
