//! The code emitter native templates are written against: register access, refcounts,
//! helper calls, control flow, and the generic slow path every op falls back to.
//!
//! Here: the emission state, the analyses it starts from (cached and bool-only registers,
//! reads), the prologue and its dispatch, a callee emitted inline, and each op's template
//! or slow path (`op`). By responsibility beside it: `registers` (register access, boxing,
//! guards, reference counts), `frames` (the context, helper calls, recursion and hooks at
//! entry, CPython frames, direct calls' results) and `control` (slow paths and the status
//! exit, leaving for tier 1, raising, edges, branches, returns).

use crate::interp::Ctx;
use crate::lower::{Edge, NO_EDGE};
use crate::ops;
use crate::runtime::Compiled;
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, Inst, InstBuilder, JumpTableData, MemFlagsData, SigRef,
    Signature, SourceLoc, StackSlot, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, Variable};
use tiered_ir::Op;

mod control;
mod frames;
mod registers;

/// Emission state for one function.
pub struct Emit<'a> {
    /// The Cranelift builder (templates emit through it).
    pub b: FunctionBuilder<'a>,
    /// The function being compiled (while a callee is emitted inline: the callee).
    pub c: &'a Compiled,
    /// The pointer type.
    pub ptr: Type,
    /// Per-function state (swapped while a callee is emitted inline).
    s: Scope<'a>,
    sig_cache: Vec<(usize, SigRef)>,
    /// Address of the byte that, once set, makes loops leave this code for tier 1.
    invalid_flag: usize,
    /// The argument array of native builtin calls.
    args_slot: Option<StackSlot>,
    /// Whether a callee is being emitted inline (one level only: a callee inlined into
    /// a callee could recurse through mutual calls).
    inlining: bool,
    /// The callees emitted inline, by name (for `dump`).
    inlined: Vec<String>,
}

/// The contents of a direct call's callee context (`Ctx`), for `Emit::store_ctx`.
#[derive(Clone, Copy)]
pub struct CtxFill {
    /// The callee's `Compiled`.
    pub compiled: Value,
    /// Its function object.
    pub func: Value,
    /// Its globals and builtins dicts, when known (else read from `func` where needed,
    /// so they are not kept in machine registers until then).
    pub dicts: Option<(Value, Value)>,
    /// Its `Tuning` (a pointer to one that outlives the call).
    pub tuning: Value,
    /// The thread state and stack limit.
    pub thread: (Value, Value),
    /// Its CPython frame (`cpy::frame`), pushed by the caller.
    pub frame: Value,
    /// Its register file.
    pub regs: Value,
}

/// The per-function part of `Emit`, swapped out while a callee is emitted inline.
struct Scope<'a> {
    /// The function these are for.
    c: &'a Compiled,
    /// Per linear instruction: its block.
    blocks: Vec<Block>,
    /// The `Ctx*`, register file and result pointer.
    ctx_v: Option<Value>,
    regs_v: Option<Value>,
    out_v: Option<Value>,
    /// Per linear instruction: the template emitted for it.
    templates: Vec<Option<&'static str>>,
    /// The current op's uncounted slow path (expected cases: exhaustion, overflow).
    plain_slow: Option<Block>,
    /// Where every helper status that is not 0 goes (`check_status`), made on first use
    /// and emitted after the body (`emit_status_exit`), with the handler instructions
    /// those helpers may enter.
    status_exit: Option<(Block, Vec<u32>)>,
    /// The stack area direct calls build their callee's registers and context in.
    call_slot: Option<StackSlot>,
    /// The instruction being emitted.
    pc: usize,
    /// The last unboxed bool a template wrote: (register, value, block it was written in,
    /// the two stores that wrote it), so a Branch on it right after can be taken without
    /// reading it back (and the stores dropped when nothing else reads the register).
    last_bool: Option<(u32, Value, Block, [Inst; 2])>,
    /// Per register: how many places read it (operands, branch conditions, returns,
    /// edge moves).
    reads: Vec<u32>,
    /// Per register: whether a frame state names it (a local's value: a frame object,
    /// a deopt or an unwind may read it at any later op).
    in_state: Vec<bool>,
    /// Per register: the variables that cache it in machine registers, for the few
    /// registers loops read most (`cached_registers`). The cache is write-through
    /// (memory always holds the value too, so helpers, exits and tier 1 see it) and
    /// reloaded after every call (a helper may write registers; and no cached value then
    /// lives across a call, where it would be spilled).
    cached: Vec<Option<Cached>>,
    /// Per Branch on a bool-only register: its true and false sides, made on first use so
    /// the op before it can jump straight to one.
    branch_sides: std::collections::HashMap<usize, (Block, Block)>,
    /// Per register: the small int (or bool) constant it holds when a Const writes it and
    /// nothing else does (SSA), so its uses can take the value as an immediate.
    const_ints: Vec<Option<i64>>,
    /// Per register: whether it only ever holds NULL (`values::null_registers`).
    null_regs: Vec<bool>,
    /// Registers that only ever hold an unboxed bool or NULL: written only by ops whose
    /// result is always a bool (Truth, IsNone, Is, Contains, ForIter's exhausted flag...),
    /// so nothing needs dropping or tag-testing there.
    bool_regs: Vec<bool>,
    /// Registers that may hold an unboxed int or float (`values::number_registers`):
    /// boxing any other is no code at all.
    number_regs: Vec<bool>,
    /// The `_PyCFrame` this code's eval breaker checks read `use_tracing` from
    /// (`ops::events::Check::BreakerAndHooks`), loaded once at the entry: it does not change while
    /// the code runs (calls restore it), and re-reading it through the context and the
    /// thread state at every loop iteration cost pysum 5 instructions an item.
    cframe: Option<Variable>,
    /// While a callee is emitted inline (`inline_body`): the block its exits jump to,
    /// with the status a native function would return.
    exit: Option<Block>,
    /// While a callee is emitted inline: how to fill its context, which is written only
    /// where something reads it (helpers, deopts), not on the inlined fast path.
    ctx_fill: Option<CtxFill>,
    /// Whether this function's CPython frame exists here, so calls out of it first mark
    /// the running instruction in it (not in a trampoline before its push, nor after its
    /// pop).
    has_frame: bool,
    /// For a callee emitted inline: whether its frame is pushed yet (a variable; see
    /// `inline_body`). The thread state it goes on is its `ctx_fill`'s.
    lazy_frame: Option<Variable>,
    /// For a callee emitted inline: its caller's context and the code unit of the call,
    /// marked in the caller's frame when the callee's is pushed (the caller did not mark
    /// it on the inlined fast path).
    parent_mark: Option<(Value, i64)>,
}

impl<'a> Scope<'a> {
    /// A fresh scope for emitting `c`.
    fn new(c: &'a Compiled) -> Scope<'a> {
        let bool_regs = bool_registers(c);
        Scope {
            c,
            blocks: Vec::new(),
            ctx_v: None,
            regs_v: None,
            out_v: None,
            templates: vec![None; c.linear.insts.len()],
            plain_slow: None,
            status_exit: None,
            call_slot: None,
            pc: 0,
            last_bool: None,
            reads: register_reads(c),
            in_state: state_registers(c),
            cached: vec![None; c.linear.nregs as usize],
            branch_sides: std::collections::HashMap::new(),
            const_ints: ops::values::const_int_registers(c),
            null_regs: ops::values::null_registers(c),
            bool_regs,
            number_regs: ops::values::number_registers(c),
            cframe: None,
            exit: None,
            ctx_fill: None,
            has_frame: false,
            lazy_frame: None,
            parent_mark: None,
        }
    }
}

/// Whether `c` has no loop (so no back-edge polls or OSR exits: it can run inline), and
/// is no generator's (whose suspensions keep its frame).
pub fn loop_free(c: &Compiled) -> bool {
    !c.linear.in_cycle.iter().any(|&x| x) && c.linear.suspensions.is_empty()
}

/// Callees at most this long (linear instructions) are emitted inline into their own
/// trampolines (one copy a callee).
const INLINE_MAX_INSTS: usize = 24;

/// Callees at most this long are emitted inline at a direct call site (a copy a site:
/// `flat_rep`'s `x * 2`, a getter, a small `__init__`). At 24, the copies made hot code
/// too big for the instruction cache: raytrace ran 18% slower (wall time) and missed it
/// twice as often (callgrind's simulation: 11.0M misses vs 5.2M a run), and deltablue ran
/// 8% more instructions than with 8, for no gain elsewhere (richards +0.8%, the seed
/// cases the same).
const INLINE_AT_CALL_MAX_INSTS: usize = 12;

/// Callers at most this long (linear instructions) take inline copies at any direct call
/// site; longer ones only at sites in loops that ran at least twice a call before the
/// compile (`Compiled::iterates`). A site in straight-line code runs once per call of its
/// function, and in a long function a call's own cost is small beside the rest, while
/// each copy is compile time: richards' `Richards.run` (218 instructions, once per
/// benchmark call, twelve `__init__`s and getters copied in) took 71 ms to compile and
/// 227 KB of code with them, 35 ms and 102 KB without, and its steady state ran no more
/// instructions; raytrace, whose hot callers are short, needed them in callers of up to
/// 64 instructions (32: 1.4% more instructions).
const INLINE_CALLER_MAX_INSTS: usize = 64;

/// Whether `c`'s code can be emitted inline (into a caller, or into its own trampolines):
/// short (beyond that a call costs little beside the body, and each inline copy costs
/// compile time) and loop-free.
pub fn inline_sized(c: &Compiled) -> bool {
    c.linear.insts.len() <= INLINE_MAX_INSTS && loop_free(c)
}

/// Which registers only ever hold an unboxed bool (or NULL before their definition): a
/// bool op writes them, and nothing else does (values that never live at once share
/// registers, `lower::coalesce`, so a bool's register may also take another op's object,
/// which must then be released as any object is).
fn bool_registers(c: &Compiled) -> Vec<bool> {
    let mut b = vec![false; c.linear.nregs as usize];
    let mut other = vec![false; c.linear.nregs as usize];
    for inst in &c.linear.insts {
        if let crate::lower::LKind::Op(op) = inst.kind {
            let r = match op {
                Op::Truth {}
                | Op::IsNone {}
                | Op::Is { .. }
                | Op::Contains { .. }
                | Op::CheckExcMatch {} => Some(inst.dst),
                Op::ForIter {} | Op::Send {} => Some(inst.dst + 1),
                _ => None,
            };
            for x in inst.dst..inst.dst + op.result_count() as u32 {
                match Some(x) == r {
                    true => b[x as usize] = true,
                    false => other[x as usize] = true,
                }
            }
        }
    }
    // A register also written by an edge move may receive anything.
    for &(_, d, _) in &c.linear.moves {
        other[d as usize] = true;
    }
    b.into_iter()
        .zip(other)
        .map(|(bool_op, other)| bool_op && !other)
        .collect()
}

/// The registers instruction `inst` reads (operands, a branch's condition, the returned
/// register; edge moves are counted separately).
fn read_by<'l>(
    lin: &'l crate::lower::Linear,
    inst: &crate::lower::LInst,
) -> impl Iterator<Item = u32> + 'l {
    let (ops, one): (&[u32], Option<u32>) = match inst.kind {
        crate::lower::LKind::Op(_) => (
            &lin.operands[inst.args as usize..(inst.args + inst.nargs) as usize],
            None,
        ),
        crate::lower::LKind::Branch { cond: r, .. }
        | crate::lower::LKind::Return { reg: r, .. } => (&[], Some(r)),
        crate::lower::LKind::Suspend { value, .. } => (
            &lin.operands[inst.args as usize..(inst.args + inst.nargs) as usize],
            (value != crate::lower::NO_VALUE).then_some(value),
        ),
        // (A Drop's reads are not worth a machine register.)
        crate::lower::LKind::Jump(_)
        | crate::lower::LKind::Unreachable
        | crate::lower::LKind::Drop { .. } => (&[], None),
    };
    ops.iter().copied().chain(one)
}

/// Per register, how many places in `c`'s linear code read it.
fn register_reads(c: &Compiled) -> Vec<u32> {
    let lin = &c.linear;
    let mut n = vec![0u32; lin.nregs as usize];
    for inst in &lin.insts {
        for r in read_by(lin, inst) {
            n[r as usize] += 1;
        }
    }
    for &(src, _, _) in &lin.moves {
        n[src as usize] += 1;
    }
    n
}

/// Per register, whether some frame state holds it.
fn state_registers(c: &Compiled) -> Vec<bool> {
    let mut b = vec![false; c.linear.nregs as usize];
    for &r in c.linear.states.iter().flatten() {
        if let Some(x) = b.get_mut(r as usize) {
            *x = true;
        }
    }
    b
}

/// The variables caching one register: its tag and payload as i64, and the payload as
/// f64 (meaningful while the tag says float), so float loops keep their values in XMM
/// registers without moving them through integer registers.
#[derive(Clone, Copy)]
struct Cached {
    tag: Variable,
    payload: Variable,
    float: Variable,
}

/// How many registers `cached_registers` picks at most: each takes two machine registers
/// in loops, and more than this made the register allocator spill.
const MAX_CACHED: usize = 4;

/// The registers worth caching in machine registers: the ones instructions inside loops
/// read most often (bool-only registers excepted: their reader takes the value straight
/// from the op that made it).
fn cached_registers(c: &Compiled, bool_regs: &[bool]) -> Vec<u32> {
    let lin = &c.linear;
    let mut n = vec![0u32; lin.nregs as usize];
    for (pc, inst) in lin.insts.iter().enumerate() {
        if lin.in_cycle[pc] {
            for r in read_by(lin, inst) {
                n[r as usize] += 1;
            }
        }
    }
    let mut picked: Vec<u32> = (0..lin.nregs)
        .filter(|&r| n[r as usize] > 0 && !bool_regs[r as usize])
        .collect();
    picked.sort_by_key(|&r| (std::cmp::Reverse(n[r as usize]), r));
    picked.truncate(MAX_CACHED);
    picked
}

/// Memory flags for register-file and object accesses (aligned, never trapping).
pub fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl<'a> Emit<'a> {
    /// Starts emitting `c`.
    pub fn new(
        b: FunctionBuilder<'a>,
        c: &'a Compiled,
        ptr: Type,
        invalid_flag: usize,
    ) -> Emit<'a> {
        Emit {
            b,
            c,
            ptr,
            s: Scope::new(c),
            sig_cache: Vec::new(),
            invalid_flag,
            args_slot: None,
            inlining: false,
            inlined: Vec::new(),
        }
    }

    /// Exchanges the per-function state with `s`.
    fn swap_scope(&mut self, s: &mut Scope<'a>) {
        std::mem::swap(&mut self.s, s);
        self.c = self.s.c;
    }

    /// Emits every instruction of the current function, from its first block on.
    pub fn body(&mut self) {
        for pc in 0..self.c.linear.insts.len() {
            self.begin(pc);
            let inst = self.c.linear.insts[pc];
            match inst.kind {
                crate::lower::LKind::Op(op) => self.op(pc, op),
                crate::lower::LKind::Jump(edge) => self.jump(pc, edge),
                crate::lower::LKind::Branch {
                    cond,
                    then_edge,
                    else_edge,
                } => self.branch(pc, cond, then_edge, else_edge),
                crate::lower::LKind::Drop { start, len } => self.drop_dead(pc, start, len),
                crate::lower::LKind::Return { reg, kept } => self.ret(reg, kept),
                crate::lower::LKind::Suspend { .. } => ops::generators::emit_suspend(self, pc),
                crate::lower::LKind::Unreachable => self.unreachable(),
            }
        }
        if !self.inlining {
            self.b.set_srcloc(SourceLoc::default());
        }
        self.emit_status_exit();
    }

    /// Whether a callee is being emitted inline (`inline_body`).
    pub fn inlining(&self) -> bool {
        self.inlining
    }

    /// Whether a direct call's callee is emitted inline rather than called: small, without
    /// loops (whose polls and OSR exits need a native function of their own), not the
    /// function itself, and not from inside another inlined callee; at a site that runs
    /// often enough to pay for the copy (`INLINE_CALLER_MAX_INSTS`).
    pub fn inlinable(&self, callee: &Compiled) -> bool {
        let lin = &self.c.linear;
        !self.inlining
            && !std::ptr::eq(self.c, callee)
            && inline_sized(callee)
            && callee.linear.insts.len() <= INLINE_AT_CALL_MAX_INSTS
            && (lin.insts.len() <= INLINE_CALLER_MAX_INSTS
                || (lin.in_cycle[self.s.pc] && self.c.iterates()))
    }

    /// Emits `callee` (see `inlinable`) inline, working on the frame a direct call built
    /// (`ctx`, `regs`, `out` as its native entry would get them, from instruction 0): its
    /// templates, helpers and handlers run exactly as in its own native code, and where
    /// that would return a status, control reaches the returned block with it as its
    /// parameter (0 returned, 1 raised).
    pub fn inline_body(
        &mut self,
        callee: &'a Compiled,
        ctx: (Value, CtxFill),
        regs: Value,
        out: Value,
        report_hooks: bool,
    ) -> Block {
        let ts = ctx.1.thread.0;
        let exit = self.b.create_block();
        self.b.append_block_param(exit, types::I64);
        if !self.inlined.contains(&callee.info.qualname) {
            self.inlined.push(callee.info.qualname.clone());
        }
        // Its CPython frame is pushed lazily, before the first call out of its code (the
        // only points anything can look at it from): a callee that calls nothing out
        // never has one.
        let linked = self.b.declare_var(types::I8);
        let no = self.b.ins().iconst(types::I8, 0);
        self.b.def_var(linked, no);
        let mut scope = Scope::new(callee);
        let call_unit = self.c.code_unit(self.c.linear.insts[self.s.pc].offset) as i64;
        scope.parent_mark = self
            .s
            .ctx_v
            .filter(|_| self.s.has_frame)
            .map(|ctx| (ctx, call_unit));
        scope.ctx_v = Some(ctx.0);
        scope.ctx_fill = Some(ctx.1);
        scope.has_frame = true;
        scope.lazy_frame = Some(linked);
        scope.regs_v = Some(regs);
        scope.out_v = Some(out);
        scope.exit = Some(exit);
        self.swap_scope(&mut scope);
        self.s.blocks = (0..callee.linear.insts.len())
            .map(|_| self.b.create_block())
            .collect();
        let first = self.s.blocks[0];
        self.b.ins().jump(first, &[]);
        self.inlining = true;
        self.body();
        self.inlining = false;
        self.swap_scope(&mut scope);
        // Out: the frame goes if it was pushed.
        self.b.switch_to_block(exit);
        let status = self.b.block_params(exit)[0];
        let done = self.b.create_block();
        self.b.append_block_param(done, types::I64);
        let pop = self.b.create_block();
        self.b.set_cold_block(pop);
        let was = self.b.use_var(linked);
        self.b
            .ins()
            .brif(was, pop, &[], done, &[BlockArg::Value(status)]);
        self.b.switch_to_block(pop);
        // Its frame exists, so it called out: a trace or profile hook may have come on.
        // If that made it leave (status 2 + where to go on: `leave_if`), tier 1 finishes
        // it (with its frame linked and its context whole, as `leave_if` left them) and
        // reports its events, its return included.
        let left = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, status, 2);
        let finish = self.b.create_block();
        self.b.set_cold_block(finish);
        let ran = self.b.create_block();
        self.b.ins().brif(left, finish, &[], ran, &[]);
        self.b.switch_to_block(finish);
        let finished = self.finish_in_tier1(status, ctx.0, regs, out, report_hooks);
        let popping = self.b.create_block();
        self.b.append_block_param(popping, types::I64);
        self.b.ins().jump(popping, &[BlockArg::Value(finished)]);
        self.b.switch_to_block(ran);
        let hooks = self.hooks_loaded(ts);
        let traced = self.b.create_block();
        self.b.set_cold_block(traced);
        self.b
            .ins()
            .brif(hooks, traced, &[], popping, &[BlockArg::Value(status)]);
        self.b.switch_to_block(traced);
        let r = self
            .call(
                crate::tracing::inline_exit as *const () as usize,
                &[self.ptr, types::I64],
                Some(types::I64),
                &[out, status],
            )
            .expect("returns");
        // 1: its `return` event given (status as it was); 3: the event raised.
        let raised = self.b.ins().icmp_imm_s(IntCC::Equal, r, 3);
        let one = self.b.ins().iconst(types::I64, 1);
        let status = self.b.ins().select(raised, one, status);
        let status = if report_hooks {
            self.hooked_status(status, ts)
        } else {
            status
        };
        self.b.ins().jump(popping, &[BlockArg::Value(status)]);
        self.b.switch_to_block(popping);
        let status = self.b.block_params(popping)[0];
        self.pop_frame(ctx.1.frame, ts);
        self.b.ins().jump(done, &[BlockArg::Value(status)]);
        done
    }

    /// Leaves the function with status `v` (or, inline, goes to the caller's exit block).
    pub(crate) fn leave(&mut self, v: Value) {
        match self.s.exit {
            Some(exit) => {
                self.b.ins().jump(exit, &[BlockArg::Value(v)]);
            }
            None => {
                self.b.ins().return_(&[v]);
            }
        }
    }

    /// The slow path for an expected case (not a failed guard, so not a deopt).
    pub fn slow_block(&mut self) -> Block {
        self.s.plain_slow.expect("templates run inside Emit::op")
    }

    /// The entry: dispatch on the start instruction (0 for a call, a loop header for OSR).
    pub fn prologue(&mut self) {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let p = self.b.block_params(entry).to_vec();
        self.s.ctx_v = Some(p[0]);
        self.s.regs_v = Some(p[1]);
        self.s.out_v = Some(p[3]);
        // Whoever entered it (a trampoline, a direct call, tier 1) pushed its frame.
        self.s.has_frame = true;
        // The register file is authoritative on entry (a call or OSR alike). Only loops
        // that ran more than once a call keep registers cached: each call out reloads
        // them, which in a loop run about once a call saves nothing and is code
        // (richards, raytrace, deltablue, go: 2.5-3.5% less machine code, steady-state
        // instructions the same or fewer: go 994.2M -> 989.8M).
        let cached = match self.c.iterates() {
            true => cached_registers(self.c, &self.s.bool_regs),
            false => Vec::new(),
        };
        for r in cached {
            self.s.cached[r as usize] = Some(Cached {
                tag: self.b.declare_var(types::I64),
                payload: self.b.declare_var(types::I64),
                float: self.b.declare_var(types::F64),
            });
        }
        self.reload_cached();
        let lin = &self.c.linear;
        if (0..lin.insts.len()).any(|pc| {
            matches!(
                lin.insts[pc].kind,
                crate::lower::LKind::Op(Op::EvalBreaker {})
            ) && ops::events::check_at(self.c, pc) == ops::events::Check::BreakerAndHooks
        }) {
            let ts = self.thread_state();
            let cframe = self
                .b
                .ins()
                .load(self.ptr, mem(), ts, crate::cpy::tstate_offset::CFRAME);
            let var = self.b.declare_var(self.ptr);
            self.b.def_var(var, cframe);
            self.s.cframe = Some(var);
        }
        self.s.blocks = (0..self.c.linear.insts.len())
            .map(|_| self.b.create_block())
            .collect();
        // Only the instructions code may start at have a way in: an edge from here into
        // every instruction would make each a join of every cached register (block
        // parameters, moves, code and compile time for edges never taken).
        let bad = self.b.create_block();
        let entries = self.c.linear.entries();
        let last = entries.iter().rposition(|&e| e).unwrap_or(0);
        let def = self.b.func.dfg.block_call(bad, &[]);
        let table: Vec<_> = (0..=last)
            .map(|pc| match entries[pc] {
                true => self.b.func.dfg.block_call(self.s.blocks[pc], &[]),
                false => def,
            })
            .collect();
        let jt = self.b.create_jump_table(JumpTableData::new(def, &table));
        // Calls start at 0 (every call, native or not, enters here); only OSR and
        // resumption need the table, whose indirect jump costs more than a test.
        let osr = self.b.create_block();
        self.b.ins().brif(p[2], osr, &[], self.s.blocks[0], &[]);
        self.b.switch_to_block(osr);
        self.b.ins().br_table(p[2], jt);
        self.b.set_cold_block(bad);
        self.b.switch_to_block(bad);
        self.call_unreachable_and_fail();
    }

    /// Starts instruction `pc`'s code.
    pub fn begin(&mut self, pc: usize) {
        self.s.pc = pc;
        // Everything emitted from here on, cold paths included, counts as this
        // instruction's code (`NativeCode::code_at`); an inlined callee's, as its call's.
        if !self.inlining {
            self.b.set_srcloc(SourceLoc::new(pc as u32));
        }
        self.b.switch_to_block(self.s.blocks[pc]);
    }

    /// The block of the instruction after `pc` (for templates that finish early).
    pub fn next_block(&self, pc: usize) -> Block {
        self.s.blocks[pc + 1]
    }

    /// The small int constant register `r` holds, if a Const of one defines it.
    pub fn const_int(&self, r: u32) -> Option<i64> {
        self.s.const_ints[r as usize]
    }

    /// Whether register `r` only ever holds NULL (`values::null_registers`).
    pub fn is_null_register(&self, r: u32) -> bool {
        self.s.null_regs[r as usize]
    }

    /// Whether register `r` may hold an unboxed int or float (`values::number_registers`).
    pub fn may_be_number(&self, r: u32) -> bool {
        self.s.number_regs[r as usize]
    }

    /// Whether writing register `r` at the current instruction may find an old value to
    /// drop: not for a bool-only register, nor for one written outside any cycle (it is
    /// written at most once per call, onto NULL), nor for one whose last value was
    /// released where it died (`Linear::reused`). The move scratch register is shared by
    /// all edges, so it always may.
    pub(crate) fn may_hold_old(&self, r: u32, at: usize) -> bool {
        !self.s.bool_regs[r as usize]
            && (self.c.linear.in_cycle[at] || r + 1 == self.c.linear.nregs)
            && self.c.linear.reused[r as usize]
    }

    /// Seals everything and finishes; returns the template chosen per instruction and the
    /// callees emitted inline.
    pub fn finish(mut self, cfg: TargetFrontendConfig) -> (Vec<Option<&'static str>>, Vec<String>) {
        self.b.seal_all_blocks();
        self.b.finalize(cfg);
        (self.s.templates, self.inlined)
    }

    /// Instruction `pc`, an op: its template if its current specialization has one (whose
    /// failed guards take the slow path, counted as a deopt), else the slow path.
    pub fn op(&mut self, pc: usize, op: Op) {
        self.s.last_bool = None;
        let slow = self.b.create_block();
        let plain_slow = self.b.create_block();
        // Slow paths go after all hot code: templates' fast paths then fall through (no
        // taken jump per guard) and sit together in the instruction cache.
        self.b.set_cold_block(slow);
        self.b.set_cold_block(plain_slow);
        self.s.plain_slow = Some(plain_slow);
        let q = self.c.quick[pc].get();
        let template = match op {
            Op::Binary { op } => ops::arith::emit_binary(self, pc, op, q, slow),
            // (No frame at the recursion limit runs native code: `compare_at_limit`.)
            Op::Compare { op, .. } => ops::compare::emit_compare(self, pc, op, q, slow),
            Op::Truth {} => ops::compare::emit_truth(self, pc, slow),
            Op::Is { invert } => ops::compare::emit_is(self, pc, invert),
            Op::IsNone {} => ops::compare::emit_is_none(self, pc),
            Op::Contains { invert } => ops::compare::emit_contains(self, pc, invert),
            Op::Unary { op } => ops::arith::emit_unary(self, pc, op),
            Op::ListAppend {} => ops::build::emit_add_to(
                self,
                pc,
                pyo3_ffi::PyList_Append as *const () as usize,
                "ListAppend",
            ),
            Op::SetAdd {} => ops::build::emit_add_to(
                self,
                pc,
                pyo3_ffi::PySet_Add as *const () as usize,
                "SetAdd",
            ),
            Op::MapAdd {} => ops::build::emit_add_to(
                self,
                pc,
                pyo3_ffi::PyDict_SetItem as *const () as usize,
                "MapAdd",
            ),
            Op::ListExtend {} => ops::build::emit_add_to(
                self,
                pc,
                ops::build::extend_list as *const () as usize,
                "ListExtend",
            ),
            Op::ListToTuple {} => ops::build::emit_list_to_tuple(self, pc),
            Op::CallEx { kwargs } => ops::calls::emit_call_ex(self, pc, kwargs),
            Op::FormatValue { conversion, spec } => {
                ops::build::emit_format_value(self, pc, conversion, spec)
            }
            Op::BuildString {} => ops::build::emit_build_string(self, pc),
            Op::ForIter {} => ops::iter::emit_for_iter(self, pc, q, slow),
            Op::Send {} => ops::generators::emit_send(self, pc),
            Op::Thrown {} => ops::generators::emit_thrown(self, pc),
            Op::GetAwaitable { .. } => ops::generators::emit_get_awaitable(self, pc),
            Op::GetYieldFromIter { .. } => ops::generators::emit_get_yield_from_iter(self, pc),
            Op::GetAnext {} => ops::generators::emit_get_anext(self, pc),
            Op::AsyncGenWrap {} => ops::generators::emit_async_gen_wrap(self, pc),
            Op::LoadDeref { .. } => ops::cells::emit_load_deref(self, pc),
            Op::LoadClosure { index } => ops::cells::emit_load_closure(self, pc, index),
            Op::MakeCell {} => ops::cells::emit_make_cell(self, pc),
            Op::BuildMap {} => ops::build::emit_build_map(self, pc),
            Op::MakeFunction { flags } => ops::calls::emit_make_function(self, pc, flags),
            Op::StoreDeref {} => ops::cells::emit_store_deref(self, pc),
            Op::BuildSlice { .. } => ops::subscr::emit_build_slice(self, pc),
            Op::LoadGlobal { .. } => ops::globals::emit_load_global(self, pc, q, slow),
            Op::Const { index } => ops::values::emit_const(self, pc, index),
            Op::Null {} | Op::Lasti {} => ops::values::emit_null(self, pc),
            Op::Call { .. } => ops::calls::emit_call(self, pc, q, slow),
            Op::LoadAttr { .. } => ops::attrs::emit_load_attr(self, pc, q, slow),
            Op::StoreAttr { .. } => ops::attrs::emit_store_attr(self, pc, q, slow),
            Op::LoadMethod { .. } => ops::attrs::emit_load_method(self, pc, q, slow),
            Op::Subscr {} => ops::subscr::emit_subscr(self, pc, q, slow),
            Op::StoreSubscr {} => ops::subscr::emit_store_subscr(self, pc, q, slow),
            Op::UnpackSequence { count } => ops::build::emit_unpack_sequence(self, pc, count),
            Op::BuildTuple {} => ops::build::emit_build_sequence(self, pc, false),
            Op::BuildList {} => ops::build::emit_build_sequence(self, pc, true),
            Op::EvalBreaker {} => ops::events::emit_eval_breaker(self, pc),
            Op::GetIter {} => ops::iter::emit_get_iter(self, pc),
            Op::StoreGlobal { name } => ops::globals::emit_store_global(self, pc, name),
            Op::CheckBound { .. }
            | Op::LoadAssertionError {}
            | Op::LoadBuildClass {}
            | Op::DeleteGlobal { .. }
            | Op::DeleteAttr { .. }
            | Op::DeleteSubscr {}
            | Op::BuildSet {}
            | Op::BuildConstKeyMap {}
            | Op::SetUpdate {}
            | Op::DictUpdate {}
            | Op::DictMerge {}
            | Op::UnpackEx { .. }
            | Op::DeleteDeref { .. }
            | Op::PushExcInfo {}
            | Op::PopExcept {}
            | Op::CheckExcMatch {}
            | Op::Raise { .. }
            | Op::Reraise {}
            | Op::BeforeWith {}
            | Op::BeforeAsyncWith {}
            | Op::GetAiter {}
            | Op::EndAsyncFor {}
            | Op::WithExceptStart {}
            | Op::ImportName { .. }
            | Op::ImportFrom { .. }
            | Op::GetLen {}
            | Op::MatchMapping {}
            | Op::MatchSequence {}
            | Op::MatchKeys {}
            | Op::MatchClass { .. }
            | Op::CheckEgMatch {}
            | Op::PrepReraiseStar {}
            | Op::Unsupported { .. } => None,
        };
        // Both slow paths run the op in tier 1 and go on from where they join: one reload
        // of the cached registers and one status check per op, not one per path.
        let joined = self.b.create_block();
        self.b.set_cold_block(joined);
        self.b.append_block_param(joined, types::I64);
        match template {
            Some(name) => {
                self.s.templates[pc] = Some(name);
                self.count_template(op);
                self.continue_after(pc);
                // Every branch to the op's deopt and generic paths is emitted by now. A
                // template that never takes one (Const, Null, an unguarded store) gets no
                // code for it: emitting them anyway and leaving them to Cranelift's
                // dead-code pass cost about a third of the Cranelift instructions built.
                self.b.seal_block(slow);
                self.b.switch_to_block(slow);
                if !self.b.is_unreachable() {
                    // A failed guard: the helper counts the deopt, then runs the op. Too
                    // many replace the code; a loop then leaves it after this op
                    // (`after_slow_path`), anything else just runs to its end.
                    let helper = super::helpers::deopt_exec as *const () as usize;
                    let r = self.slow_call(helper, pc);
                    self.b.ins().jump(joined, &[BlockArg::Value(r)]);
                }
            }
            None => {
                self.b.ins().jump(plain_slow, &[]);
            }
        }
        self.b.seal_block(plain_slow);
        self.b.switch_to_block(plain_slow);
        if !self.b.is_unreachable() {
            let r = self.slow_call(super::helpers::exec as *const () as usize, pc);
            self.b.ins().jump(joined, &[BlockArg::Value(r)]);
        }
        self.b.seal_block(joined);
        self.b.switch_to_block(joined);
        if !self.b.is_unreachable() {
            let r = self.b.block_params(joined)[0];
            // What follows the slow paths (the status check, leaving for tier 1) is
            // reached from them alone: cold too, not laid out between hot code.
            let mark = self.cold_mark();
            self.after_slow_path(pc, r);
            self.cold_since(mark);
        }
        self.s.plain_slow = None;
    }

    /// Counts a run of `op`'s template, when `coverage --run` counts ops per tier.
    fn count_template(&mut self, op: Op) {
        if crate::stats::counting_enabled() {
            if let Some(counter) = crate::stats::tier2_counter(op.kind()) {
                // Counting is per process and single-threaded under the GIL: a plain
                // increment of the atomic's storage is enough.
                let a = self.b.ins().iconst(self.ptr, counter as i64);
                let n = self.b.ins().load(types::I64, mem(), a, 0);
                let n = self.b.ins().iadd_imm_s(n, 1);
                self.b.ins().store(mem(), n, a, 0);
            }
        }
    }
}
