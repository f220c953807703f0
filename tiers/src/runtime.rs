//! Compiled functions and calls into tier 1: the per-code cache, argument binding, the
//! per-wrapper counters, and the fallback to CPython.

use crate::code::{read_code, CodeObjects};
use crate::cpy::ThreadState;
use crate::interp::{self, Ctx};
use crate::lower::{lower, Linear};
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
    /// which a step on a fresh register file loads first (`generator::load_constants`).
    pub start_constants: Vec<(u32, std::ptr::NonNull<ffi::PyObject>)>,
    /// A generator function's code that starts with its arguments: how a generator of it
    /// is made straight from a call's arguments (`generator::start`).
    pub gen_start: Option<crate::generator::start::Start>,
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

    /// Native code for a call, compiling it once the function is hot.
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn native_for_call(&self, ctx: &Ctx) -> Option<crate::native::NativeFn> {
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
        self.native_if(n > cfg.jit_threshold)
    }

    /// Native code to continue a hot loop in (OSR), compiling it once loops are hot.
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn native_for_osr(&self, ctx: &Ctx) -> Option<crate::native::NativeFn> {
        let cfg = &ctx.tuning;
        if !cfg.jit {
            return None;
        }
        let n = self.backedges.get() + 1;
        self.backedges.set(n);
        self.native_if(n > cfg.osr_threshold)
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
        let compiled = crate::native::compile(self);
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
                self.vector_entry
                    .set(code.vector_entry.map_or(0, |f| f as usize));
                self.slot_entry
                    .set(code.slot_entry.map_or(0, |f| f as usize));
                self.direct_entry
                    .set(code.direct_entry.map_or(0, |f| f as usize));
                Some(code.entry)
            }
            _ => None,
        }
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
        self.vector_entry.set(0);
        self.slot_entry.set(0);
        self.direct_entry.set(0);
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
                    code.code_bytes,
                    code.code_bytes / ops
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

    /// Native compiles so far, the time they took (ns), and the current native code's
    /// size in bytes (0 if none).
    pub fn compile_info(&self) -> (u32, u64, usize) {
        let bytes = match &*self.native.borrow() {
            NativeState::Ready(code) => code.code_bytes,
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

struct Registry {
    /// Compiled code by code-object address (each entry owns its code object, so the
    /// address cannot be reused while it is here).
    compiled: HashMap<usize, Rc<Compiled>>,
    /// Specializations by code and argument types: each has its own quickening state and
    /// native code, so `f(int, int)` and `f(str, int)` each get code for their types.
    specialized: HashMap<(usize, TypeKey), Rc<Compiled>>,
    /// How many specializations each code has (bounded by MAX_SPECIALIZATIONS).
    specialization_count: HashMap<usize, usize>,
    /// Code objects nested in tiered code (comprehensions, lambdas, inner defs): calls to
    /// functions made from them run in tier 1 too.
    nested: HashSet<usize>,
    /// Owned references keeping `nested` addresses alive.
    nested_refs: Vec<Owned>,
    /// Per code not translated yet: how often call sites of tiered code met it
    /// (`warm_enough`). A freed code's address reused only counts the new one early.
    sightings: HashMap<usize, u32>,
    /// Whether the last `warm_enough` found its code cold (`took_cold`).
    cold: bool,
}

static REGISTRY: GilCell<Option<Registry>> = GilCell(UnsafeCell::new(None));

unsafe fn registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    REGISTRY.with(|r| {
        f(r.get_or_insert_with(|| Registry {
            compiled: HashMap::default(),
            specialized: HashMap::default(),
            specialization_count: HashMap::default(),
            nested: HashSet::default(),
            nested_refs: Vec::new(),
            sightings: HashMap::default(),
            cold: false,
        }))
    })
}

/// How many times call sites of tiered code meet a plain function's code before it is
/// translated (CPython's own quickening waits for 8 runs of a code).
pub const CALLEE_WARMUP: u64 = 2;

/// Whether `code`, the code of a plain function a call site of tiered code calls, is
/// worth translating now: translated already, or met `warmup` times. Before that the
/// call runs in CPython's own loop: translating a callee cost hundreds of times what
/// running it once does, and a program's set-up calls most of its functions once or
/// twice (argparse's parser building).
///
/// # Safety
/// GIL held.
pub unsafe fn warm_enough(code: *mut ffi::PyObject, warmup: u64) -> bool {
    registry(|r| {
        if r.compiled.contains_key(&(code as usize)) {
            return true;
        }
        let n = r.sightings.entry(code as usize).or_default();
        *n += 1;
        let warm = u64::from(*n) >= warmup;
        if warm {
            r.sightings.remove(&(code as usize));
        }
        r.cold = !warm;
        warm
    })
}

/// Whether a code was found cold (`warm_enough`) since the last call of this: a call site
/// whose callee is cold has no variant yet rather than none that fits, so it looks again
/// at its next run instead of backing off (a site meeting many functions once each would
/// otherwise wait 2, 4, 8... runs before it looked again).
///
/// # Safety
/// GIL held.
pub unsafe fn took_cold() -> bool {
    registry(|r| std::mem::take(&mut r.cold))
}

/// Translates and lowers a code object, or returns the cached result.
///
/// # Safety
/// GIL held; `code` is a live code object.
pub unsafe fn compiled_for(code: *mut ffi::PyObject) -> PyResult<Rc<Compiled>> {
    if let Some(c) = registry(|r| r.compiled.get(&(code as usize)).cloned()) {
        return Ok(c);
    }
    let c = Rc::new(compile(code)?);
    registry(|r| {
        // Nested code objects become eligible for tier 1 when tiered code calls them.
        for &k in &c.objects.consts {
            if ffi::PyCode_Check(k) != 0 && r.nested.insert(k as usize) {
                ffi::Py_INCREF(k);
                if let Ok(o) = Owned::new(k) {
                    r.nested_refs.push(o);
                }
            }
        }
        r.compiled.insert(code as usize, c.clone());
    });
    Ok(c)
}

/// The exact types of a call's first positional arguments: what specializations are keyed
/// on. Type objects are compared by address; a freed type's address reused by another only
/// picks a less fitting specialization, never a wrong result (every op guards its types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeKey {
    nargs: u8,
    types: [usize; 4],
}

impl TypeKey {
    /// Whether a vectorcall argument array has this key (without building one: comparing
    /// a key just written field by field stalls on store forwarding).
    ///
    /// # Safety
    /// `args` holds at least `nargs` live objects.
    #[inline]
    pub unsafe fn matches(&self, args: *const *mut ffi::PyObject, nargs: usize) -> bool {
        self.nargs as usize == nargs.min(255)
            && (0..nargs.min(4)).all(|i| self.types[i] == ffi::Py_TYPE(*args.add(i)) as usize)
    }

    /// The key of a call `f(self, *args)` whose `self` will be an instance of `tp`
    /// (made before the instance is).
    ///
    /// # Safety
    /// `args` holds at least `nargs` live objects.
    pub unsafe fn with_self(
        tp: *mut ffi::PyTypeObject,
        args: *const *mut ffi::PyObject,
        nargs: usize,
    ) -> TypeKey {
        let mut types = [0usize; 4];
        types[0] = tp as usize;
        for (i, t) in types.iter_mut().enumerate().skip(1).take(nargs.min(3)) {
            *t = ffi::Py_TYPE(*args.add(i - 1)) as usize;
        }
        TypeKey {
            nargs: (nargs + 1).min(255) as u8,
            types,
        }
    }

    /// The types of the first (up to four) arguments.
    pub fn types(&self) -> &[usize] {
        &self.types[..self.nargs.min(4) as usize]
    }

    /// The key of a vectorcall argument array.
    ///
    /// # Safety
    /// `args` holds at least `nargs` live objects.
    #[inline]
    pub unsafe fn of(args: *const *mut ffi::PyObject, nargs: usize) -> TypeKey {
        let mut types = [0usize; 4];
        for (i, t) in types.iter_mut().enumerate().take(nargs.min(4)) {
            *t = ffi::Py_TYPE(*args.add(i)) as usize;
        }
        TypeKey {
            nargs: nargs.min(255) as u8,
            types,
        }
    }

    /// The argument type names, for dumps (the types are alive while their specialization is
    /// being described, as it is called with them).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn describe(&self) -> String {
        let names: Vec<String> = self
            .types
            .iter()
            .take(self.nargs.min(4) as usize)
            .map(|&t| {
                std::ffi::CStr::from_ptr((*(t as *mut ffi::PyTypeObject)).tp_name)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let more = if self.nargs > 4 { ", ..." } else { "" };
        format!("({}{more})", names.join(", "))
    }
}

/// Specializations per code object before further argument types share the generic one.
const MAX_SPECIALIZATIONS: usize = 8;

/// The specialization of `code` for these argument types (compiled on first use); the
/// generic compiled code when it cannot run in our tiers or too many types were seen.
///
/// # Safety
/// GIL held; `code` live; `args` holds `nargs` live objects.
pub unsafe fn compiled_for_args(
    code: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
) -> PyResult<Rc<Compiled>> {
    compiled_for_key(code, TypeKey::of(args, nargs))
}

/// `compiled_for_args` for argument types given as a key.
///
/// # Safety
/// GIL held.
pub unsafe fn compiled_for_key(code: *mut ffi::PyObject, key: TypeKey) -> PyResult<Rc<Compiled>> {
    let generic = compiled_for(code)?;
    if !generic.runnable() {
        return Ok(generic);
    }
    if let Some(c) = registry(|r| r.specialized.get(&(code as usize, key)).cloned()) {
        return Ok(c);
    }
    if registry(|r| {
        r.specialization_count
            .get(&(code as usize))
            .copied()
            .unwrap_or(0)
    }) >= MAX_SPECIALIZATIONS
    {
        return Ok(generic);
    }
    let mut c = specialize(&generic);
    c.signature = Some(key.describe());
    c.type_key = Some(key);
    let c = Rc::new(c);
    registry(|r| {
        *r.specialization_count.entry(code as usize).or_default() += 1;
        r.specialized.insert((code as usize, key), c.clone());
    });
    Ok(c)
}

/// Every specialization of `code` made so far.
///
/// # Safety
/// GIL held.
pub unsafe fn specializations_of(code: *mut ffi::PyObject) -> Vec<Rc<Compiled>> {
    registry(|r| {
        r.specialized
            .iter()
            .filter(|((k, _), _)| *k == code as usize)
            .map(|(_, c)| c.clone())
            .collect()
    })
}

unsafe fn compile(code: *mut ffi::PyObject) -> PyResult<Compiled> {
    let (info, objects) = read_code(code)?;
    let nlocalsplus = info.local_kinds.len();
    let stacksize = crate::code::int_attr(code, "co_stacksize")?.max(0) as usize;
    // Our frames are CPython's: the code object's internals must be where the 3.11 mirror
    // says (`cpy::frame::code_offset`), checked on each code's own first instruction.
    const RESUME: u8 = 151;
    let resume_at = info
        .code
        .chunks(2)
        .position(|u| u[0] == RESUME)
        .unwrap_or(0) as u32;
    if !crate::cpy::frame::check_code_layout(code, nlocalsplus, stacksize, info.flags, resume_at) {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tiered: this code object is not laid out as CPython 3.11's".as_ptr(),
        );
        return Err(Raised);
    }
    let t = translate(&info);
    #[cfg(debug_assertions)]
    if t.unsupported.is_empty() {
        if let Err(e) = tiered_ir::verifier::verify(&t.func) {
            panic!("tiered: IR of {} fails verification: {e}", info.qualname);
        }
    }
    let linear = lower(&t.func);
    let mut states_by_offset = HashMap::default();
    for inst in &linear.insts {
        if inst.state != crate::lower::NO_STATE {
            states_by_offset.entry(inst.offset).or_insert(inst.state);
        }
    }
    // A resumed generator runs with its frame still at the yield until its first op
    // (`Thrown`, which may raise the exception thrown in): there its locals are the resume
    // block's, not the ones the suspension stored from.
    for s in &linear.suspensions {
        let state = linear.insts[s.resume as usize].state;
        if state != crate::lower::NO_STATE {
            states_by_offset.insert(s.offset, state);
        }
    }
    let plain_arity = {
        use tiered_frontend::code::flags;
        let special =
            info.flags & (flags::VARARGS | flags::VARKEYWORDS) != 0 || info.kwonlyargcount != 0;
        (!special).then_some(info.argcount as usize)
    };
    let start_constants = match linear.suspensions.is_empty() {
        true => Vec::new(),
        false => linear
            .prologue
            .iter()
            .filter_map(|&pc| {
                let inst = &linear.insts[pc as usize];
                let crate::lower::LKind::Op(tiered_ir::Op::Const { index }) = inst.kind else {
                    return None;
                };
                let o = *objects.consts.get(index.0 as usize)?;
                Some((inst.dst, std::ptr::NonNull::new(o)?))
            })
            .collect(),
    };
    let gen_start = match linear.suspensions.is_empty() {
        true => None,
        false => crate::generator::start::of(&linear),
    };
    Ok(with_state(Translation {
        lines: info.lines.clone(),
        objects,
        ir: t.func,
        unsupported: t.unsupported,
        linear,
        nlocalsplus,
        start_constants,
        gen_start,
        states_by_offset,
        info,
        plain_arity,
    }))
}

/// What a code's translation gives a compilation of it, which never changes: the
/// generic compilation's, copied for each specialization (`specialize`).
struct Translation {
    objects: CodeObjects,
    info: CodeInfo,
    ir: Function,
    unsupported: Vec<Unsupported>,
    linear: Linear,
    lines: LineTable,
    nlocalsplus: usize,
    start_constants: Vec<(u32, std::ptr::NonNull<ffi::PyObject>)>,
    gen_start: Option<crate::generator::start::Start>,
    states_by_offset: HashMap<u32, u32>,
    plain_arity: Option<usize>,
}

/// A compilation of the same code as `c` for other argument types: `c`'s translation
/// (copied: translating and lowering the code again was most of a new callee's cost, and
/// made each callee twice), with state of its own.
///
/// # Safety
/// GIL held.
unsafe fn specialize(c: &Compiled) -> Compiled {
    with_state(Translation {
        objects: c.objects.share(),
        info: c.info.clone(),
        ir: c.ir.clone(),
        unsupported: c.unsupported.clone(),
        linear: c.linear.clone(),
        lines: c.lines.clone(),
        nlocalsplus: c.nlocalsplus,
        start_constants: c.start_constants.clone(),
        gen_start: c.gen_start.clone(),
        states_by_offset: c.states_by_offset.clone(),
        plain_arity: c.plain_arity,
    })
}

/// A compilation of translation `t`: nothing quickened, counted or compiled yet.
fn with_state(t: Translation) -> Compiled {
    let n = t.linear.insts.len();
    Compiled {
        lines: t.lines,
        objects: t.objects,
        ir: t.ir,
        unsupported: t.unsupported,
        linear: t.linear,
        nlocalsplus: t.nlocalsplus,
        start_constants: t.start_constants,
        gen_start: t.gen_start,
        states_by_offset: t.states_by_offset,
        info: t.info,
        quick: (0..n).map(|_| crate::quick::QuickCell::default()).collect(),
        global_versions: (0..n).map(|_| Cell::new(0)).collect(),
        signature: None,
        type_key: None,
        plain_arity: t.plain_arity,
        native_entry: Cell::new(0),
        vector_entry: Cell::new(0),
        slot_entry: Cell::new(0),
        direct_entry: Cell::new(0),
        keep_alive: RefCell::new(Vec::new()),
        native: RefCell::new(NativeState::Cold),
        compiles: Cell::new(0),
        compile_ns: Cell::new(0),
        calls: Cell::new(0),
        backedges: Cell::new(0),
        deopts: Cell::new(0),
        resumes: Default::default(),
        deopts_since_compile: Cell::new(0),
        late_runs: Cell::new(0),
        compiled_cold: Cell::new(false),
        recompiles: Cell::new(0),
        retired: RefCell::new(Vec::new()),
    }
}

/// Whether calls of functions with this code from tiered code should run in tier 1.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn is_nested_tiered(code: *mut ffi::PyObject) -> bool {
    registry(|r| r.nested.contains(&(code as usize)))
}

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
        let tramp = c.vector_entry.get();
        // (A generator function's code that starts with its arguments is not run at a
        // call at all: `call_compiled` makes the generator.)
        if tramp != 0
            && kwnames.is_null()
            && c.plain_arity == Some(nargs)
            && self.tuning.jit
            && c.gen_start.is_none()
        {
            // The native trampoline does the rest (registers, context, boxing); here only
            // what may raise before it: the stack and recursion depth.
            let limit = crate::stack::limit_for(ts);
            if !crate::stack::nearly_exhausted(limit) {
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
                let slot_entry = c.slot_entry.get();
                if again && slot_entry != 0 && crate::cpy::id_layout_holds() {
                    install_slot(callable, slot_entry);
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
    if !crate::stack::enter_call(ts, crate::stack::limit_for(ts)) {
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
    if !crate::stack::enter_call(ts, stack_limit) {
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
