//! Compiled functions and calls into tier 1: a code's compiled form (here), the per-code
//! cache and its specializations (`registry`), the `@tiered` wrappers and their counters
//! (`entry`), argument binding and the register files of calls (`call`), and how
//! functions tier up (`Tuning`, here).

mod call;
mod entry;
mod registry;
pub use call::*;
pub use entry::*;
pub use registry::*;

use crate::code::{read_code, CodeObjects};
use crate::cpy::ThreadState;
use crate::interp::{self, Ctx};
use crate::lower::{lower, LKind, Linear};
use crate::value::{Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::rc::Rc;
use tiered_frontend::lines::LineTable;
use tiered_frontend::{translate, CodeInfo, Unsupported};
use tiered_ir::Function;

/// A code object translated and lowered, with everything calls need.
pub struct Compiled {
    /// Python objects of the code (constants, names, code itself).
    pub objects: CodeObjects,
    /// The plain-data view it was translated from.
    pub info: CodeInfo,
    /// The SSA IR (for dumps).
    pub ir: Function,
    /// Why it cannot run in our tiers; empty when it can.
    pub unsupported: Vec<Unsupported>,
    /// The interpreter's form.
    pub linear: Linear,
    /// Source lines per code unit.
    pub lines: LineTable,
    /// Specialization state per linear instruction (quickening).
    pub quick: Vec<crate::quick::QuickCell>,
    /// Per linear instruction: the globals' version at which a LoadGlobal cached as a
    /// builtin last found its name absent from them (native code reads it in place).
    pub global_versions: Vec<Cell<u64>>,
    /// Tier 2: native code once compiled, or why it could not be.
    native: RefCell<NativeState>,
    /// Calls so far (for the tier-2 threshold).
    calls: Cell<u64>,
    /// Loop back edges run in tier 1 so far (for OSR).
    backedges: Cell<u64>,
    /// Failed template guards in native code (ops run in tier 1 instead).
    pub deopts: Cell<u64>,
    /// Generator resumptions: (in our tiers, of those in native code, left to CPython's
    /// loop because a hook was set or the frame stopped where we cannot resume).
    pub resumes: [Cell<u64>; 3],
    /// The argument types this is specialized for (`None`: the generic compilation).
    pub signature: Option<String>,
    /// The same, as compared at call sites (`None`: the generic compilation).
    pub type_key: Option<TypeKey>,
    /// The argument count when the parameters are exactly the positional ones (no
    /// `*args`, `**kwargs` or keyword-only parameters): such calls bind by copying.
    pub plain_arity: Option<usize>,
    /// The native entry while native code is ready, else 0: native callers read it at
    /// every direct call, so replaced or invalidated code is never entered from them.
    pub native_entry: Cell<usize>,
    /// The native code's trampoline for calls from CPython (`native::trampoline`) while
    /// it is ready, else 0.
    pub vector_entry: Cell<usize>,
    /// The same trampoline made to be a wrapper's vectorcall slot (it checks what
    /// `Entry::call` checks first) while the native code is ready, else 0.
    pub slot_entry: Cell<usize>,
    /// The native code's entry for direct calls from native code
    /// (`trampoline::emit_direct`) while it is ready, else 0: direct call sites read it at
    /// every call, as `native_entry`.
    pub direct_entry: Cell<usize>,
    /// The entries compiled only when wanted (`native::Later`) that something has wanted
    /// (bits): every compile from then on makes them with the code.
    wants: Cell<u8>,
    /// Calls from CPython that ran this native code without its trampoline
    /// (`entry_for_cpython`): it is compiled once they are many.
    calls_without_trampoline: Cell<u64>,
    /// Callables this code's call sites are specialized on, kept alive so the identity
    /// compared by a guard can never be a new object at a freed one's address.
    keep_alive: RefCell<Vec<Owned>>,
    deopts_since_compile: Cell<u64>,
    /// Helper runs, since the code was compiled, of ops it compiled generic that have
    /// since specialized to a variant with a template (`specialized_late`).
    late_runs: Cell<u64>,
    /// Whether the code was compiled before it had run once through (thresholds at 0):
    /// then every op is quickened after it, and recompiles at its first such run.
    compiled_cold: Cell<bool>,
    recompiles: Cell<u32>,
    /// Native compiles so far (first and recompiles) and the time they took, in ns: from
    /// hot to native code (`stats(f)`, `dump`).
    compiles: Cell<u32>,
    compile_ns: Cell<u64>,
    /// Replaced native code, kept mapped for activations still inside it.
    retired: RefCell<Vec<crate::native::NativeCode>>,
    /// Slots of a CPython frame of this code (`co_nlocalsplus`).
    pub nlocalsplus: usize,
    /// A generator's code: the constants its entry block loads, with their registers,
    /// which a step on a fresh register file loads first (`generator::files::load_constants`).
    pub start_constants: Vec<(u32, std::ptr::NonNull<ffi::PyObject>)>,
    /// A generator function's code that starts with its arguments: how a generator of it
    /// is made straight from a call's arguments (`generator::start`).
    pub gen_start: Option<crate::generator::start::Start>,
    /// A generator's code: register files for its next generators (`generator::files`).
    pub(crate) gen_files: crate::generator::FilePool,
    /// Frame state per bytecode offset (the first instruction at it that has one; every
    /// op a bytecode instruction becomes sees the same locals), for an activation found
    /// on the stack at that offset (`activation`).
    states_by_offset: HashMap<u32, u32>,
}

impl Compiled {
    /// Whether tier 1 can run it.
    pub fn runnable(&self) -> bool {
        self.unsupported.is_empty()
    }

    /// The code's positional parameters and its keyword-only ones: registers `0..n`, then
    /// `n..n + k`; its `*args` (`takes`'s first) and `**kwargs` (second), if it has them,
    /// take the registers after those (`bind`'s order).
    pub fn arity(&self) -> (usize, usize) {
        (
            self.info.argcount as usize,
            self.info.kwonlyargcount as usize,
        )
    }

    /// Whether the code takes `*args` and whether it takes `**kwargs`.
    pub fn takes(&self) -> (bool, bool) {
        use tiered_frontend::code::flags;
        (
            self.info.flags & flags::VARARGS != 0,
            self.info.flags & flags::VARKEYWORDS != 0,
        )
    }

    /// Keeps `o` alive as long as this code (a callable a call site is specialized on).
    ///
    /// # Safety
    /// GIL held; `o` live.
    pub unsafe fn keep_alive(&self, o: *mut ffi::PyObject) {
        let mut keep = self.keep_alive.borrow_mut();
        if !keep.iter().any(|k| k.ptr() == o) {
            ffi::Py_INCREF(o);
            if let Ok(k) = Owned::new(o) {
                keep.push(k);
            }
        }
    }
    /// The address of code unit `offset` of this code: what the frame's `prev_instr` holds
    /// while the instruction at `offset` runs.
    #[inline(always)]
    pub fn code_unit(&self, offset: u32) -> *mut u16 {
        crate::cpy::frame::code_unit(self.objects.code.ptr(), offset)
    }

    /// The offset of code unit `unit` (see `code_unit`).
    pub fn offset_of_unit(&self, unit: *mut u16) -> u32 {
        ((unit as usize).wrapping_sub(self.code_unit(0) as usize) / 2) as u32
    }

    /// The frame state at bytecode offset `offset`, if an op there has one.
    pub fn state_at(&self, offset: u32) -> Option<u32> {
        self.states_by_offset.get(&offset).copied()
    }

    /// Native code for a call, compiling it once the function is hot. None for a frame
    /// at the recursion limit: tier 1 runs it, whose comparisons raise where CPython's
    /// do there (`ops::compare::compare_at_limit`; native code's never check).
    ///
    /// # Safety
    /// GIL held; the call's recursion level taken.
    #[inline]
    pub unsafe fn native_for_call(&self, ctx: &Ctx) -> Option<crate::native::NativeFn> {
        if ctx.tstate.at_recursion_limit() {
            return None;
        }
        self.native_for_tuning(ctx.tuning)
    }

    /// `native_for_call` under tuning `cfg`, for a step that runs no code of its own but
    /// counts as a call (`generator::delegate`: the code would have been entered, so it
    /// warms up, compiles and counts as native as it would have).
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    pub unsafe fn native_for_tuning(&self, cfg: &Tuning) -> Option<crate::native::NativeFn> {
        if !cfg.jit {
            return None;
        }
        let n = self.calls.get() + 1;
        self.calls.set(n);
        self.native_if(n > self.call_threshold(cfg))
    }

    /// Calls before it is compiled: the threshold, times its size in `LARGE_FUNCTION`s
    /// for a longer function (as V8 asks more profiler ticks of larger functions). Compile
    /// time grows with size (about 0.1-0.3 ms a linear instruction), and a long function
    /// met only a few times is mostly set-up code run once a program's iteration:
    /// regex_v8's `block11` (4,590 instructions of straight-line regex calls, once a
    /// benchmark call) took 439 ms to compile at its 21st call, for a steady state no
    /// faster than tier 1's. Loops tier up as before (OSR): each back edge reruns a body.
    fn call_threshold(&self, cfg: &Tuning) -> u64 {
        cfg.jit_threshold * (self.linear.insts.len() / LARGE_FUNCTION).max(1) as u64
    }

    /// Native code to continue a hot loop in (OSR), compiling it once loops are hot (not
    /// for a frame at the recursion limit: `native_for_call`).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn native_for_osr(&self, ctx: &Ctx) -> Option<crate::native::NativeFn> {
        let cfg = &ctx.tuning;
        if !cfg.jit || ctx.tstate.at_recursion_limit() {
            return None;
        }
        let n = self.backedges.get() + 1;
        self.backedges.set(n);
        self.native_if(n > cfg.osr_threshold)
    }

    /// Whether its loops' back edges ran at least twice per call so far (in tier 1: at a
    /// compile, since it was last compiled), so that code in them runs more often than
    /// the function is called (an OSR compile's loop, a loop over a list) rather than
    /// about as often (a loop of one iteration around a function's whole body).
    pub fn iterates(&self) -> bool {
        self.backedges.get() >= 2 * self.calls.get().max(1)
    }

    #[inline]
    unsafe fn native_if(&self, hot: bool) -> Option<crate::native::NativeFn> {
        let ready = self.native_entry.get();
        if ready != 0 {
            // SAFETY: native_entry only ever holds a NativeCode's entry (or 0).
            return Some(std::mem::transmute::<usize, crate::native::NativeFn>(ready));
        }
        self.compile_if(hot)
    }

    #[inline(never)]
    unsafe fn compile_if(&self, hot: bool) -> Option<crate::native::NativeFn> {
        if !hot || !matches!(*self.native.borrow(), NativeState::Cold) {
            return None;
        }
        self.deopts_since_compile.set(0);
        self.late_runs.set(0);
        self.compiled_cold
            .set(self.calls.get() <= 1 && self.backedges.get() <= 1);
        let started = std::time::Instant::now();
        let compiled =
            crate::stack::with_room(crate::stack::COMPILE_STACK, || crate::native::compile(self));
        self.compiles.set(self.compiles.get() + 1);
        self.compile_ns
            .set(self.compile_ns.get() + started.elapsed().as_nanos() as u64);
        let state = match compiled {
            Ok(code) => NativeState::Ready(Box::new(code)),
            // Compile errors never reach the user: the function stays in tier 1.
            Err(why) => NativeState::Failed(why),
        };
        *self.native.borrow_mut() = state;
        match &*self.native.borrow() {
            NativeState::Ready(code) => {
                self.native_entry.set(code.entry as usize);
                self.vector_entry.set(code.vector_entry);
                self.slot_entry.set(code.slot_entry);
                self.direct_entry.set(code.direct_entry);
                Some(code.entry)
            }
            _ => None,
        }
    }

    /// The entries of the native code compiled so far, by name: "cpython" (the
    /// trampoline for calls from CPython), "slot" (the wrapper's vectorcall slot form),
    /// "direct" (for direct calls from native code).
    pub fn entries_made(&self) -> Vec<&'static str> {
        crate::native::Later::ALL
            .into_iter()
            .filter(|&l| self.entry_cell(l).get() != 0)
            .map(crate::native::Later::name)
            .collect()
    }

    /// The address of entry `l` while the native code is ready and has it, else 0.
    fn entry_cell(&self, l: crate::native::Later) -> &Cell<usize> {
        use crate::native::Later;
        match l {
            Later::FromRust => &self.vector_entry,
            Later::Slot => &self.slot_entry,
            Later::Direct => &self.direct_entry,
        }
    }

    /// The trampoline for calls from CPython (`Later::FromRust`), compiled once calls from
    /// CPython that would have entered it number `jit_threshold` times
    /// `TRAMPOLINE_CALLS_PER_THRESHOLD` (or at once, at threshold 0), else 0: until then
    /// they run the native code through Rust (`call_compiled`).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn entry_for_cpython(&self, cfg: &Tuning) -> usize {
        if !self.wants_entry(crate::native::Later::FromRust) {
            let n = self.calls_without_trampoline.get() + 1;
            self.calls_without_trampoline.set(n);
            if n <= cfg.jit_threshold * TRAMPOLINE_CALLS_PER_THRESHOLD {
                return 0;
            }
        }
        self.entry_wanted(crate::native::Later::FromRust)
    }

    /// Whether entry `l` has been wanted (`entry_wanted`).
    pub fn wants_entry(&self, l: crate::native::Later) -> bool {
        self.wants.get() & l.bit() != 0
    }

    /// Entry `l` of the native code while it is ready, compiled now if it was not (its
    /// time counted as compile time), else 0; from now on every compile makes it.
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn entry_wanted(&self, l: crate::native::Later) -> usize {
        self.wants.set(self.wants.get() | l.bit());
        let cell = self.entry_cell(l);
        if cell.get() != 0 {
            return cell.get();
        }
        // (Borrowed only by a compile of this code's own: nothing to add to then.) An
        // entry that failed is not timed again at every call that wants it.
        let Ok(native) = self.native.try_borrow() else {
            return 0;
        };
        let NativeState::Ready(code) = &*native else {
            return 0;
        };
        if !code.may_make(self, l) {
            return 0;
        }
        let started = std::time::Instant::now();
        let addr = crate::stack::with_room(crate::stack::COMPILE_STACK, || {
            crate::native::compile_later(self, code, l)
        });
        self.compile_ns
            .set(self.compile_ns.get() + started.elapsed().as_nanos() as u64);
        cell.set(addr);
        addr
    }

    /// Counts a failed template guard at instruction `pc`. Native code whose guards keep
    /// failing (the types changed since it was compiled) is invalidated: running loops
    /// leave it for tier 1, whose quickening has meanwhile followed the new types, and the
    /// next hot call or loop recompiles. Recompiles are bounded, so types that keep
    /// changing settle on the last code (its failed guards just run tier-1 helpers).
    pub fn count_deopt(&self, pc: usize) {
        self.deopts.set(self.deopts.get() + 1);
        if let crate::lower::LKind::Op(op) = self.linear.insts[pc].kind {
            crate::stats::count_deopt(op.kind());
        }
        let since = self.deopts_since_compile.get() + 1;
        self.deopts_since_compile.set(since);
        if since >= DEOPT_LIMIT {
            self.invalidate();
        }
    }

    /// Called when native code ran instruction `pc`, now quickened, through its tier-1
    /// helper: if the op was still generic when the code was compiled (a branch the first
    /// calls did not reach, such as the `+` after fib's recursive calls) and its variant
    /// has a template, the code is recompiled (within the same bound) once such runs
    /// show the branch is hot (`late_limit`).
    pub fn specialized_late(&self, pc: usize) {
        // Most helper runs are of ops already quickened when the code was compiled (their
        // variants have no template: SubscrDict): one flag answers those, before the
        // static table's name comparisons.
        let stale = match &*self.native.borrow() {
            NativeState::Ready(code) => code.width_at_compile[pc] == 0,
            _ => false,
        };
        if !stale {
            return;
        }
        let q = self.quick[pc].get();
        let (Some(name), crate::lower::LKind::Op(op)) = (q.name(), self.linear.insts[pc].kind)
        else {
            return;
        };
        if crate::quick::tiers_of(op.kind()).1.contains(&name) {
            let runs = self.late_runs.get() + 1;
            self.late_runs.set(runs);
            if runs >= self.late_limit() {
                self.invalidate();
            }
        }
    }

    /// Late-specialized helper runs after which the code is recompiled: for code compiled
    /// after running, in proportion to its size, as recompiling is. A run through the
    /// helper costs tens of nanoseconds more than a template, a recompile milliseconds
    /// (hexiom's `constraint_pass`, 365 instructions: 40 ms); on the first such run, as
    /// before, each rare branch reached for the first time recompiled it (hexiom's first
    /// call: 5 compiles, 196 ms). Code compiled before it ran has every op to catch up.
    fn late_limit(&self) -> u64 {
        if self.compiled_cold.get() {
            return 1;
        }
        (LATE_RUNS_PER_INST * self.linear.insts.len() as u64).max(LATE_RUNS_MIN)
    }

    /// Called when native code ran Call `pc` through its helper (its direct calls'
    /// guards failed): a site widened since the code was compiled (`calls::widen_call`)
    /// counts a deopt, so the code is recompiled with every callee seen.
    pub fn call_helper_ran(&self, pc: usize) {
        let stale = match &*self.native.borrow() {
            NativeState::Ready(code) => self.quick[pc].get().width() > code.width_at_compile[pc],
            _ => false,
        };
        if stale {
            self.count_deopt(pc);
        }
    }

    /// Retires the native code (running loops leave it for tier 1; the next hot call or
    /// loop recompiles), unless it was replaced RECOMPILE_LIMIT times already.
    fn invalidate(&self) {
        if self.recompiles.get() >= RECOMPILE_LIMIT {
            return;
        }
        let old = std::mem::replace(&mut *self.native.borrow_mut(), NativeState::Cold);
        self.native_entry.set(0);
        for l in crate::native::Later::ALL {
            self.entry_cell(l).set(0);
        }
        if let NativeState::Ready(code) = old {
            code.invalid.set(1);
            // Activations may still be running it: keep its memory mapped.
            self.retired.borrow_mut().push(*code);
        }
        self.recompiles.set(self.recompiles.get() + 1);
        self.calls.set(0);
        self.backedges.set(0);
    }

    /// A description of the tier-2 state, with the Cranelift IR and machine code if
    /// `detail` (for `dump`).
    pub fn native_text(&self, detail: bool) -> String {
        match &*self.native.borrow() {
            NativeState::Cold => "not compiled yet (not hot)".to_string(),
            NativeState::Failed(why) => format!("compile failed, staying in tier 1: {why}"),
            NativeState::Ready(code) => {
                let with: Vec<String> = code
                    .templates
                    .iter()
                    .enumerate()
                    .filter_map(|(pc, t)| t.map(|t| format!("{pc}:{t}")))
                    .collect();
                let (n, ns, _) = self.compile_info();
                let ops = self.linear.insts.len().max(1);
                let mut s = format!(
                    "compiled {n} time(s) in {:.2} ms in all; {} bytes of machine code ({} per \
                     linear instruction)\n",
                    ns as f64 / 1e6,
                    code.code_bytes.get(),
                    code.code_bytes.get() / ops
                );
                s.push_str(&format!(
                    "native templates at {}",
                    if with.is_empty() {
                        "no instruction".to_string()
                    } else {
                        with.join(", ")
                    }
                ));
                if !code.inlined.is_empty() {
                    s.push_str(&format!(
                        "; calls emitted inline: {}",
                        code.inlined.join(", ")
                    ));
                }
                let by: Vec<String> = self
                    .code_by_kind()
                    .iter()
                    .map(|(k, n, hot, cold)| format!("{k} {hot}+{cold} ({n}x)"))
                    .collect();
                s.push_str(&format!(
                    "\nbytes by instruction kind, hot+cold: {}",
                    by.join(", ")
                ));
                if detail {
                    // SAFETY: dumping runs with the GIL held.
                    match unsafe { crate::native::listings(self) } {
                        Ok((clif, disasm)) => {
                            s.push_str("\n\n== Cranelift IR ==\n");
                            s.push_str(&clif);
                            s.push_str("\n== machine code ==\n");
                            s.push_str(&disasm);
                        }
                        Err(e) => s.push_str(&format!("\n\n(listings failed: {e})")),
                    }
                }
                s
            }
        }
    }

    /// The current native code's bytes by kind of linear instruction, most hot bytes
    /// first: (the template's name, or the op's with `/helper` where it calls its tier-1
    /// helper, or the control instruction's; how many; hot bytes; cold bytes), with
    /// `(rest)` for the prologue and shared exits (`NativeCode::code_at`). Empty without
    /// native code.
    pub fn code_by_kind(&self) -> Vec<(String, usize, u32, u32)> {
        let native = self.native.borrow();
        let NativeState::Ready(code) = &*native else {
            return Vec::new();
        };
        let mut by: HashMap<String, (usize, u32, u32)> = HashMap::default();
        for (pc, &(hot, cold)) in code.code_at.iter().enumerate() {
            let kind = match self.linear.insts.get(pc).map(|i| i.kind) {
                None => "(rest)".to_string(),
                Some(LKind::Op(op)) => match code.templates[pc] {
                    Some(t) => t.to_string(),
                    None => format!("{}/helper", op.kind().name()),
                },
                Some(LKind::Jump(_)) => "Jump".to_string(),
                Some(LKind::Branch { .. }) => "Branch".to_string(),
                Some(LKind::Drop { .. }) => "Drop".to_string(),
                Some(LKind::Return { .. }) => "Return".to_string(),
                Some(LKind::Suspend { .. }) => "Suspend".to_string(),
                Some(LKind::Unreachable) => "Unreachable".to_string(),
            };
            let e = by.entry(kind).or_default();
            e.0 += 1;
            e.1 += hot;
            e.2 += cold;
        }
        let mut out: Vec<(String, usize, u32, u32)> = by
            .into_iter()
            .map(|(k, (n, hot, cold))| (k, n, hot, cold))
            .collect();
        out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Native compiles so far, the time they took (ns), and the current native code's
    /// size in bytes (0 if none).
    pub fn compile_info(&self) -> (u32, u64, usize) {
        let bytes = match &*self.native.borrow() {
            NativeState::Ready(code) => code.code_bytes.get(),
            _ => 0,
        };
        (self.compiles.get(), self.compile_ns.get(), bytes)
    }

    /// Whether native code exists for this function.
    pub fn is_native(&self) -> bool {
        matches!(*self.native.borrow(), NativeState::Ready(_))
    }

    /// The IR with each instruction's current quickened variant, e.g. `Binary[BinaryInt]`.
    pub fn quickened_ir_text(&self) -> String {
        tiered_ir::printer::print_annotated(&self.ir, &|o| self.lines.line_at(o), &|i| {
            self.linear
                .pc_of
                .get(&i)
                .and_then(|&pc| self.quick.get(pc as usize))
                .and_then(|q| q.get().name())
                .map(str::to_string)
        })
    }

    /// The first unsupported reason as "OP: reason".
    pub fn fallback_reason(&self) -> String {
        match self.unsupported.first() {
            Some(u) => format!("{}: {}", u.op, u.reason),
            None => String::new(),
        }
    }
}

/// Failed guards after which native code is replaced.
const DEOPT_LIMIT: u64 = 200;
/// How often a function's native code may be replaced.
const RECOMPILE_LIMIT: u32 = 4;
/// `late_limit`: late-specialized helper runs per linear instruction, and at least.
const LATE_RUNS_PER_INST: u64 = 4;
const LATE_RUNS_MIN: u64 = 32;

/// Tier-2 state of a compiled function.
enum NativeState {
    /// Not compiled (not hot yet).
    Cold,
    /// Compiled.
    Ready(Box<crate::native::NativeCode>),
    /// Cranelift refused it; the reason is kept for `dump`.
    Failed(String),
}

/// A cell only touched with the GIL held.
pub(crate) struct GilCell<T>(UnsafeCell<T>);
// SAFETY: every access goes through `with`, whose callers hold the GIL (crate invariant), so
// no two threads touch the contents at once.
unsafe impl<T> Sync for GilCell<T> {}
impl<T> GilCell<T> {
    /// A cell holding `v`.
    pub(crate) const fn new(v: T) -> GilCell<T> {
        GilCell(UnsafeCell::new(v))
    }
    /// # Safety
    /// GIL held, and `f` does not re-enter `with` on the same cell.
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut *self.0.get())
    }
    /// The contents' address, for native code (which touches them under the GIL only).
    pub(crate) fn addr(&self) -> usize {
        self.0.get() as usize
    }
}

/// Linear instructions a function may have before it needs more calls than the threshold
/// to be compiled (`Compiled::call_threshold`): twice as many from twice this size.
/// (Richards' longest, `Richards.run`, has 218.)
const LARGE_FUNCTION: usize = 256;

/// Calls from CPython, per unit of the call threshold, that run native code through Rust
/// before its trampoline is compiled (`Compiled::entry_for_cpython`). A small function's
/// trampoline and its vectorcall form each hold a copy of its body and took about three
/// times its code's own compile each (a one-attribute getter: 0.2 ms for the code, 1.5 ms
/// with both), while a call through Rust costs about 300 instructions more: made at the
/// first call, they were mostly made for callers still in tier 1 that are native (and
/// call directly, or inline) a few calls later. 1,000 calls at the default threshold
/// cost about 0.1 ms through Rust, less than one trampoline's compile.
const TRAMPOLINE_CALLS_PER_THRESHOLD: u64 = 50;

/// How a function tiers up. The defaults come from the environment (documented in the
/// README); `@tiered(...)` options override them per function, and callees entered from
/// tiered code inherit their caller's.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Whether tier 1 quickens (`TIERED_QUICKEN=0` turns it off: the generic path).
    pub quicken: bool,
    /// Whether tier 2 exists at all (`TIERED_JIT=0` keeps everything in tier 1).
    pub jit: bool,
    /// Calls of a specialization before it is compiled to native code
    /// (`TIERED_JIT_THRESHOLD`).
    pub jit_threshold: u64,
    /// Loop back edges in tier 1 before the function is compiled and the loop continues in
    /// native code (`TIERED_OSR_THRESHOLD`).
    pub osr_threshold: u64,
}

fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name).as_deref() {
        Ok("0") | Ok("false") | Ok("no") | Ok("off") => false,
        Ok("") | Err(_) => default,
        Ok(_) => true,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The default tuning, read once from the environment.
pub fn config() -> &'static Tuning {
    static CONFIG: std::sync::OnceLock<Tuning> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| Tuning {
        quicken: env_flag("TIERED_QUICKEN", true),
        jit: env_flag("TIERED_JIT", true),
        jit_threshold: env_u64("TIERED_JIT_THRESHOLD", 20),
        osr_threshold: env_u64("TIERED_OSR_THRESHOLD", 500),
    })
}
