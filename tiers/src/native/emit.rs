//! The code emitter native templates are written against: register access, refcounts,
//! helper calls, control flow, and the generic slow path every op falls back to.

use crate::interp::Ctx;
use crate::lower::{Edge, NO_EDGE};
use crate::ops;
use crate::runtime::Compiled;
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, Inst, InstBuilder, JumpTableData, MemFlagsData, SigRef,
    Signature, StackSlot, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, Variable};
use tiered_ir::Op;

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

/// Whether `c`'s code can be emitted inline (into a caller, or into its own trampolines):
/// short (beyond that a call costs little beside the body, and each inline copy costs
/// compile time) and loop-free.
pub fn inline_sized(c: &Compiled) -> bool {
    c.linear.insts.len() <= INLINE_MAX_INSTS && loop_free(c)
}

/// Which registers only ever hold an unboxed bool (or NULL before their definition).
fn bool_registers(c: &Compiled) -> Vec<bool> {
    let mut b = vec![false; c.linear.nregs as usize];
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
            if let Some(r) = r {
                b[r as usize] = true;
            }
        }
    }
    // A register also written by an edge move may receive anything.
    for &(_, d, _) in &c.linear.moves {
        b[d as usize] = false;
    }
    b
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
        self.emit_status_exit();
    }

    /// Whether a callee is being emitted inline (`inline_body`).
    pub fn inlining(&self) -> bool {
        self.inlining
    }

    /// Whether a direct call's callee is emitted inline rather than called: small, without
    /// loops (whose polls and OSR exits need a native function of their own), not the
    /// function itself, and not from inside another inlined callee.
    pub fn inlinable(&self, callee: &Compiled) -> bool {
        !self.inlining
            && !std::ptr::eq(self.c, callee)
            && inline_sized(callee)
            && callee.linear.insts.len() <= INLINE_AT_CALL_MAX_INSTS
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
        // The register file is authoritative on entry (a call or OSR alike).
        for r in cached_registers(self.c, &self.s.bool_regs) {
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
        let bad = self.b.create_block();
        let table: Vec<_> = self
            .s
            .blocks
            .iter()
            .map(|&bl| self.b.func.dfg.block_call(bl, &[]))
            .collect();
        let def = self.b.func.dfg.block_call(bad, &[]);
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

    /// The `Ctx*` argument (for an inlined callee: its context, written and its frame
    /// linked here first if they are not yet: `link_inline`).
    pub fn ctx(&mut self) -> Value {
        let ctx = self.s.ctx_v.expect("prologue ran");
        self.link_inline();
        ctx
    }

    /// In a callee emitted inline, whose context is written and CPython frame pushed only
    /// where something may read them: makes it a whole activation if it is not yet (one
    /// out-of-line call, `helpers::link_inline`), after marking its caller at this call.
    /// Elsewhere nothing.
    fn link_inline(&mut self) {
        let (Some(linked), Some(fill)) = (self.s.lazy_frame, self.s.ctx_fill) else {
            return;
        };
        let ctx = self.s.ctx_v.expect("prologue ran");
        let push = self.b.create_block();
        self.b.set_cold_block(push);
        let go = self.b.create_block();
        let was = self.b.use_var(linked);
        self.b.ins().brif(was, go, &[], push, &[]);
        self.b.switch_to_block(push);
        if let Some((parent, unit)) = self.s.parent_mark {
            // The caller is at this call before a frame goes on top of its.
            let pframe = self.b.ins().load(
                self.ptr,
                mem(),
                parent,
                std::mem::offset_of!(Ctx, frame) as i32,
            );
            let v = self.b.ins().iconst(self.ptr, unit);
            self.b
                .ins()
                .store(mem(), v, pframe, crate::cpy::frame::offset::PREV_INSTR);
        }
        let ptr = self.ptr;
        let (tstate, limit) = fill.thread;
        let helper = super::helpers::link_inline as *const () as usize;
        let f = self.b.ins().iconst(ptr, helper as i64);
        // Not `call`: this frame is not linked yet, so nothing marks it first.
        self.call_unmarked(
            helper,
            f,
            &[ptr; 8],
            None,
            &[
                ctx,
                fill.compiled,
                fill.func,
                fill.frame,
                fill.regs,
                fill.tuning,
                tstate,
                limit,
            ],
        );
        let yes = self.b.ins().iconst(types::I8, 1);
        self.b.def_var(linked, yes);
        self.b.ins().jump(go, &[]);
        self.b.switch_to_block(go);
    }

    /// Writes a callee context at `ctx`.
    pub fn store_ctx(&mut self, ctx: Value, f: &CtxFill) {
        let (globals, builtins) = self.dicts_of(f);
        for (v, off) in [
            (f.compiled, std::mem::offset_of!(Ctx, compiled)),
            (f.func, std::mem::offset_of!(Ctx, func)),
            (f.frame, std::mem::offset_of!(Ctx, frame)),
            (f.regs, std::mem::offset_of!(Ctx, regs)),
            (globals, std::mem::offset_of!(Ctx, globals)),
            (builtins, std::mem::offset_of!(Ctx, builtins)),
        ] {
            self.b.ins().store(mem(), v, ctx, off as i32);
        }
        self.b.ins().store(
            mem(),
            f.tuning,
            ctx,
            std::mem::offset_of!(Ctx, tuning) as i32,
        );
        // `ran_native` stays unwritten: only calls from Rust read it, from their own context.
        let (tstate, limit) = f.thread;
        self.b
            .ins()
            .store(mem(), tstate, ctx, std::mem::offset_of!(Ctx, tstate) as i32);
        self.b.ins().store(
            mem(),
            limit,
            ctx,
            std::mem::offset_of!(Ctx, stack_limit) as i32,
        );
    }

    /// The globals and builtins of a callee context.
    pub(crate) fn dicts_of(&mut self, f: &CtxFill) -> (Value, Value) {
        if let Some(d) = f.dicts {
            return d;
        }
        let [g, bd] = [
            std::mem::offset_of!(pyo3_ffi::PyFunctionObject, func_globals),
            std::mem::offset_of!(pyo3_ffi::PyFunctionObject, func_builtins),
        ]
        .map(|off| self.b.ins().load(self.ptr, mem(), f.func, off as i32));
        (g, bd)
    }

    /// The running function's globals dict (known without reading the context in an
    /// inlined callee).
    pub fn globals_ptr(&mut self) -> Value {
        match self.s.ctx_fill {
            Some(f) => self.dicts_of(&f).0,
            None => {
                let ctx = self.ctx();
                self.b
                    .ins()
                    .load(self.ptr, mem(), ctx, Self::ctx_offset_globals())
            }
        }
    }

    /// The running function's builtins dict (likewise).
    pub fn builtins_ptr(&mut self) -> Value {
        match self.s.ctx_fill {
            Some(f) => self.dicts_of(&f).1,
            None => {
                let ctx = self.ctx();
                self.b
                    .ins()
                    .load(self.ptr, mem(), ctx, Self::ctx_offset_builtins())
            }
        }
    }
    /// The `out` argument: where the result goes.
    pub fn out(&self) -> Value {
        self.s.out_v.expect("prologue ran")
    }
    /// The `regs` argument: this function's register file.
    pub fn regs(&self) -> Value {
        self.s.regs_v.expect("prologue ran")
    }

    /// Register `r`'s tag.
    pub fn tag(&mut self, r: u32) -> Value {
        if let Some(v) = self.s.cached[r as usize] {
            return self.b.use_var(v.tag);
        }
        let regs = self.regs();
        self.b.ins().load(types::I64, mem(), regs, (r * 16) as i32)
    }
    /// Register `r`'s payload as `ty`.
    pub fn payload(&mut self, r: u32, ty: Type) -> Value {
        if let Some(v) = self.s.cached[r as usize] {
            if ty == types::F64 {
                return self.b.use_var(v.float);
            }
            let p = self.b.use_var(v.payload);
            return match ty {
                types::I64 => p,
                t if t.is_int() => self.b.ins().ireduce(t, p),
                t => unreachable!("register payloads are read as ints or f64, not {t}"),
            };
        }
        let regs = self.regs();
        self.b.ins().load(ty, mem(), regs, (r * 16 + 8) as i32)
    }
    /// Writes register `r`'s tag and payload (no drop), in memory and in its cache;
    /// returns the two stores.
    pub fn store_reg(&mut self, r: u32, t: Value, payload: Value) -> [Inst; 2] {
        let regs = self.regs();
        let store_tag = self.b.ins().store(mem(), t, regs, (r * 16) as i32);
        let store_payload = self
            .b
            .ins()
            .store(mem(), payload, regs, (r * 16 + 8) as i32);
        if let Some(v) = self.s.cached[r as usize] {
            self.b.def_var(v.tag, t);
            // Both views of the payload; whichever is unused is dead code.
            match self.b.func.dfg.value_type(payload) {
                types::F64 => {
                    let bits = self
                        .b
                        .ins()
                        .bitcast(types::I64, MemFlagsData::new(), payload);
                    self.b.def_var(v.payload, bits);
                    self.b.def_var(v.float, payload);
                }
                types::I64 => {
                    let x = self
                        .b
                        .ins()
                        .bitcast(types::F64, MemFlagsData::new(), payload);
                    self.b.def_var(v.payload, payload);
                    self.b.def_var(v.float, x);
                }
                // A narrower payload (a bool's byte) leaves the word's upper bytes as
                // they were in memory; readers of such a register read only its width,
                // and the float view is only read under a float tag.
                _ => {
                    let p = self.b.ins().uextend(types::I64, payload);
                    self.b.def_var(v.payload, p);
                }
            }
        }
        [store_tag, store_payload]
    }
    /// Reloads every cached register from the register file (after a call, which may
    /// have written it).
    fn reload_cached(&mut self) {
        let Some(regs) = self.s.regs_v else { return };
        for r in 0..self.s.cached.len() as u32 {
            self.reload_register(regs, r);
        }
    }
    /// Reloads register `r`'s cached words, if it has them, from the register file.
    fn reload_register(&mut self, regs: Value, r: u32) {
        if let Some(v) = self.s.cached[r as usize] {
            let (t, p) = self.load_words(regs, r);
            let x = self.b.ins().bitcast(types::F64, MemFlagsData::new(), p);
            self.b.def_var(v.tag, t);
            self.b.def_var(v.payload, p);
            self.b.def_var(v.float, x);
        }
    }
    /// Overwrites register `r` (dropping its old content) with `tag` and `payload`.
    ///
    /// The old content is read first and released after the store: the release may call
    /// a deallocator, and a result computed before it would have to survive that call
    /// (a float in an XMM register is spilled across any call on x86-64, which put a
    /// stack round trip into every float loop's dependency chain).
    pub fn set(&mut self, r: u32, t: u8, payload: Value) {
        // The old payload comes from memory even for a cached register: the cached word
        // would otherwise stay live across the loop just for this (a float register's
        // integer view, spilled every iteration).
        let old = self.may_hold_old(r, self.s.pc).then(|| {
            let regs = self.regs();
            let p = self
                .b
                .ins()
                .load(self.ptr, mem(), regs, (r * 16 + 8) as i32);
            (self.tag(r), p)
        });
        let tv = self.b.ins().iconst(types::I64, t as i64);
        let stores = self.store_reg(r, tv, payload);
        if let Some((old_tag, old_payload)) = old {
            self.drop_loaded(old_tag, old_payload);
        }
        self.s.last_bool = match (t, self.b.current_block()) {
            (tag::BOOL, Some(block)) => Some((r, payload, block, stores)),
            _ => None,
        };
    }
    /// Empties register `r` (dropping its content) before an op writes it in memory.
    pub fn reset(&mut self, r: u32) {
        if self.may_hold_old(r, self.s.pc) {
            self.drop_reg(r);
        }
        self.clear(r);
    }
    /// Stores the NULL tag without dropping (after the content was moved out).
    pub fn clear(&mut self, r: u32) {
        let regs = self.regs();
        let z = self.b.ins().iconst(types::I64, tag::NULL as i64);
        self.b.ins().store(mem(), z, regs, (r * 16) as i32);
        if let Some(v) = self.s.cached[r as usize] {
            self.b.def_var(v.tag, z);
        }
    }

    /// Boxes register `r` in place if it holds an unboxed int or float (as tier 1 boxes
    /// the operands of ops that hand them to CPython), so it then holds an object unless
    /// it held something else (a bool, NULL). Out of memory branches to `slow` with the
    /// error cleared: the generic op there boxes again and raises it properly. The boxing
    /// is a call out of line (`helpers::box_register`): inline, it was about 40 Cranelift
    /// instructions per operand, most of a small function's code and compile time.
    pub fn box_number(&mut self, r: u32, slow: Block) {
        let t = self.tag(r);
        // INT and FLOAT are adjacent tags: one unsigned comparison.
        let k = self.b.ins().iadd_imm_s(t, -(tag::INT as i64));
        let number = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, k, 1);
        let (boxing, done) = (self.b.create_block(), self.b.create_block());
        self.b.set_cold_block(boxing);
        self.b.ins().brif(number, boxing, &[], done, &[]);
        self.b.switch_to_block(boxing);
        let failed = self.box_out_of_line(r, super::helpers::box_register as *const () as usize);
        self.b.ins().brif(failed, slow, &[], done, &[]);
        self.b.switch_to_block(done);
    }

    /// Calls `helper` (`box_register` or `operand_object`) on register `r` in memory and
    /// returns its result; the register's cached words are reloaded, as the helper may
    /// have boxed it.
    fn box_out_of_line(&mut self, r: u32, helper: usize) -> Value {
        let regs = self.regs();
        let reg = self.b.ins().iadd_imm_s(regs, (r * 16) as i64);
        let x = self
            .call(helper, &[self.ptr], Some(self.ptr), &[reg])
            .expect("returns");
        self.reload_register(regs, r);
        x
    }

    /// A new reference to the int `v` (an i64), or NULL with MemoryError set:
    /// `PyLong_FromLongLong` with its common cases inline, as 3.11 does them: a small int
    /// from CPython's own table (when `cpy::small_ints` found it), or a one-digit int
    /// allocated and initialized here. Larger ints take the call.
    pub fn new_int(&mut self, v: Value) -> Value {
        use crate::cpy::{DIGIT_MASK, ONE_DIGIT_INT_SIZE};
        let ptr = self.ptr;
        let done = self.b.create_block();
        self.b.append_block_param(done, ptr);
        let one_digit = self.b.create_block();
        let call = self.b.create_block();
        self.b.set_cold_block(call);
        // -MASK <= v <= MASK, as one unsigned comparison.
        let biased = self.b.ins().iadd_imm_s(v, DIGIT_MASK);
        let fits = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, biased, 2 * DIGIT_MASK);
        self.b.ins().brif(fits, one_digit, &[], call, &[]);
        self.b.switch_to_block(one_digit);
        // SAFETY: GIL held while compiling (compile's contract).
        if let Some(base) = unsafe { crate::cpy::small_ints() } {
            let idx = self.b.ins().iadd_imm_s(v, 5);
            let small = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, idx, 261);
            let cached = self.b.create_block();
            let alloc = self.b.create_block();
            self.b.ins().brif(small, cached, &[], alloc, &[]);
            self.b.switch_to_block(cached);
            let off = self.b.ins().imul_imm_s(idx, ONE_DIGIT_INT_SIZE as i64);
            let p = self.b.ins().iadd_imm_s(off, base as i64);
            self.incref(p);
            self.b.ins().jump(done, &[BlockArg::Value(p)]);
            self.b.switch_to_block(alloc);
        }
        let size = self.b.ins().iconst(ptr, ONE_DIGIT_INT_SIZE as i64);
        let p = self
            .call(
                pyo3_ffi::PyObject_Malloc as *const () as usize,
                &[ptr],
                Some(ptr),
                &[size],
            )
            .expect("returns");
        let init = self.b.create_block();
        // Out of memory: the call below fails the same way and sets MemoryError.
        self.b.ins().brif(p, init, &[], call, &[]);
        self.b.switch_to_block(init);
        // 3.11's _PyLong_FromMedium: the (static) type, the sign as the size, the digit,
        // then the first reference.
        let long_type = std::ptr::addr_of_mut!(pyo3_ffi::PyLong_Type) as i64;
        let tp = self.b.ins().iconst(ptr, long_type);
        self.b.ins().store(mem(), tp, p, 8);
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, v, 0);
        let minus = self.b.ins().iconst(types::I64, -1);
        let plus = self.b.ins().iconst(types::I64, 1);
        let sign = self.b.ins().select(neg, minus, plus);
        self.b.ins().store(mem(), sign, p, 16);
        let mag = self.b.ins().iabs(v);
        let digit = self.b.ins().ireduce(types::I32, mag);
        self.b.ins().store(mem(), digit, p, 24);
        self.call(
            crate::cpy::_Py_NewReference as *const () as usize,
            &[ptr],
            None,
            &[p],
        );
        self.b.ins().jump(done, &[BlockArg::Value(p)]);
        self.b.switch_to_block(call);
        let p = self
            .call(
                pyo3_ffi::PyLong_FromLongLong as *const () as usize,
                &[types::I64],
                Some(ptr),
                &[v],
            )
            .expect("returns");
        self.b.ins().jump(done, &[BlockArg::Value(p)]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// Register `r` as a borrowed object pointer, for handing to CPython: an object is
    /// read inline; anything else calls `helpers::operand_object` out of line (numbers
    /// boxed in place, bools their singletons); NULL (or boxing out of memory) branches
    /// to `slow`.
    pub fn object_of(&mut self, r: u32, slow: Block) -> Value {
        let t = self.tag(r);
        let is_obj = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let (obj, other, put) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.append_block_param(put, self.ptr);
        self.b.set_cold_block(other);
        self.b.ins().brif(is_obj, obj, &[], other, &[]);
        self.b.switch_to_block(other);
        let helper = super::helpers::operand_object as *const () as usize;
        let o = self.box_out_of_line(r, helper);
        self.b.ins().brif(o, put, &[BlockArg::Value(o)], slow, &[]);
        self.b.switch_to_block(obj);
        let o = self.payload(r, self.ptr);
        self.b.ins().jump(put, &[BlockArg::Value(o)]);
        self.b.switch_to_block(put);
        self.b.block_params(put)[0]
    }

    /// Instruction `pc`'s operands as objects (`object_of`), as tier 1 boxes an op's
    /// operands before running it; anything unusual takes the op's generic path.
    pub fn operand_objects(&mut self, pc: usize) -> Vec<Value> {
        let inst = self.c.linear.insts[pc];
        let slow = self.slow_block();
        (inst.args..inst.args + inst.nargs)
            .map(|i| {
                let r = self.c.linear.operands[i as usize];
                self.object_of(r, slow)
            })
            .collect()
    }

    /// Branches to `fail` unless object `p`'s type is exactly `tp`.
    pub fn guard_type(&mut self, p: Value, tp: *mut pyo3_ffi::PyTypeObject, fail: Block) {
        let ty = self.b.ins().load(self.ptr, mem(), p, 8);
        self.guard_eq(ty, tp as i64, fail);
    }

    /// Register `r` as an object of exactly type `tp` (its pointer), else branches to
    /// `fail`: the guard most templates start with.
    pub fn object_of_type(
        &mut self,
        r: u32,
        tp: *mut pyo3_ffi::PyTypeObject,
        fail: Block,
    ) -> Value {
        let t = self.tag(r);
        self.guard_eq(t, tag::OBJ as i64, fail);
        let p = self.payload(r, self.ptr);
        self.guard_type(p, tp, fail);
        p
    }

    /// Branches to `fail` unless `v == k`.
    pub fn guard_eq(&mut self, v: Value, k: i64, fail: Block) {
        let ok = self.b.create_block();
        let c = self.b.ins().icmp_imm_s(IntCC::Equal, v, k);
        self.b.ins().brif(c, ok, &[], fail, &[]);
        self.b.switch_to_block(ok);
    }
    /// Branches to `fail` if `c` is non-zero.
    pub fn fail_if(&mut self, c: Value, fail: Block) {
        let ok = self.b.create_block();
        self.b.ins().brif(c, fail, &[], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// Where blocks made from now on start, for `cold_since`.
    pub fn cold_mark(&self) -> u32 {
        self.b.func.dfg.num_blocks() as u32
    }
    /// Lays out every block made since `mark` (a rare path a template emitted, with all
    /// the blocks its helpers made) with the cold blocks, after the function's hot code:
    /// what the hot path does not run then does not share its instruction cache lines.
    pub fn cold_since(&mut self, mark: u32) {
        for i in mark..self.b.func.dfg.num_blocks() as u32 {
            self.b.set_cold_block(Block::from_u32(i));
        }
    }

    /// `Py_INCREF(p)`.
    pub fn incref(&mut self, p: Value) {
        let rc = self.b.ins().load(types::I64, mem(), p, 0);
        let rc = self.b.ins().iadd_imm_s(rc, 1);
        self.b.ins().store(mem(), rc, p, 0);
    }
    /// `Py_DECREF(p)`.
    pub fn decref(&mut self, p: Value) {
        let rc = self.b.ins().load(types::I64, mem(), p, 0);
        let rc = self.b.ins().iadd_imm_s(rc, -1);
        self.b.ins().store(mem(), rc, p, 0);
        let free = self.b.create_block();
        self.b.set_cold_block(free);
        let done = self.b.create_block();
        self.b.ins().brif(rc, done, &[], free, &[]);
        self.b.switch_to_block(free);
        self.call(
            super::helpers::dealloc as *const () as usize,
            &[self.ptr],
            None,
            &[p],
        );
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }
    /// A Drop instruction: releases the registers whose values died, then goes on.
    fn drop_dead(&mut self, pc: usize, start: u32, len: u32) {
        self.release_dead(start, len, self.c.linear.in_cycle[pc], None);
        let next = self.s.blocks[pc + 1];
        self.b.ins().jump(next, &[]);
    }
    /// Releases registers `drops[start..start + len]`, each emptied before its object is
    /// released (a bool-only register owns nothing, nor does `skip`, known empty here);
    /// `in_loop`: where this runs is on a cycle.
    fn release_dead(&mut self, start: u32, len: u32, in_loop: bool, skip: Option<u32>) {
        for i in start..start + len {
            let r = self.c.linear.drops[i as usize];
            if self.s.bool_regs[r as usize] || skip == Some(r) {
                continue;
            }
            // Outside loops from memory even for a cached register (as `set` reads the
            // old value): its cached words would otherwise stay live across the loop just
            // for a release at its exit. (Inside, the cached words are at hand.)
            let (t, p) = if in_loop {
                (self.tag(r), self.payload(r, self.ptr))
            } else {
                let regs = self.regs();
                self.load_words(regs, r)
            };
            self.clear(r);
            self.drop_loaded(t, p);
        }
    }
    /// Drops whatever register `r` owns.
    pub fn drop_reg(&mut self, r: u32) {
        let t = self.tag(r);
        let p = self.payload(r, self.ptr);
        self.drop_loaded(t, p);
    }
    /// What a call into tiered code checks before entering it, as `Entry::call` does: no
    /// trace or profile function on thread state `ts` (they must see the call in
    /// CPython), the stack pointer above `limit`, and a recursion level left, which it
    /// then enters (`leave_recursion` leaves it). Anything else branches to `fail`.
    pub fn enter_checked(&mut self, ts: Value, limit: Value, fail: Block) {
        use crate::cpy::tstate_offset;
        let hooked = self.hooks_loaded(ts);
        self.fail_if(hooked, fail);
        let sp = self.b.ins().get_stack_pointer(self.ptr);
        let deep = self.b.ins().icmp(IntCC::UnsignedLessThan, sp, limit);
        self.fail_if(deep, fail);
        let left = self
            .b
            .ins()
            .load(types::I32, mem(), ts, tstate_offset::RECURSION_REMAINING);
        let none_left = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, left, 0);
        self.fail_if(none_left, fail);
        let left = self.b.ins().iadd_imm_s(left, -1);
        self.b
            .ins()
            .store(mem(), left, ts, tstate_offset::RECURSION_REMAINING);
    }
    /// Non-zero when a trace or profile function is set on thread state `ts`.
    fn hooks_loaded(&mut self, ts: Value) -> Value {
        use crate::cpy::tstate_offset;
        let prof = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, tstate_offset::PROFILEFUNC);
        let trace = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, tstate_offset::TRACEFUNC);
        self.b.ins().bor(prof, trace)
    }
    /// Leaves the recursion level `enter_checked` entered.
    pub fn leave_recursion(&mut self, ts: Value) {
        use crate::cpy::tstate_offset;
        let left = self
            .b
            .ins()
            .load(types::I32, mem(), ts, tstate_offset::RECURSION_REMAINING);
        let left = self.b.ins().iadd_imm_s(left, 1);
        self.b
            .ins()
            .store(mem(), left, ts, tstate_offset::RECURSION_REMAINING);
    }
    /// A native call's status once its code returned: when it left for tier 1 instead
    /// (2 + pc: its code was invalidated meanwhile, or a trace or profile hook came on),
    /// the call is finished there (`helpers::resume`), whose status (0 or 1) is the call's;
    /// with `report_hooks`, a call that returned with a hook on is status 2 (the caller
    /// then leaves for tier 1 too: `tracing`).
    pub fn finish_if_left(
        &mut self,
        status: Value,
        ctx: Value,
        regs: Value,
        out: Value,
        report_hooks: bool,
    ) -> Value {
        let ran = self.b.create_block();
        self.b.append_block_param(ran, types::I64);
        let resume = self.b.create_block();
        self.b.set_cold_block(resume);
        let left = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, status, 2);
        self.b
            .ins()
            .brif(left, resume, &[], ran, &[BlockArg::Value(status)]);
        self.b.switch_to_block(resume);
        let resumed = self.finish_in_tier1(status, ctx, regs, out, report_hooks);
        self.b.ins().jump(ran, &[BlockArg::Value(resumed)]);
        self.b.switch_to_block(ran);
        self.b.block_params(ran)[0]
    }

    /// Tier 1 runs the rest of a callee that left its native code with `status` (2 +
    /// the instruction to go on at), with its frame still linked; returns the status it
    /// finished with, made 2 when `report_hooks` and a hook is on then.
    fn finish_in_tier1(
        &mut self,
        status: Value,
        ctx: Value,
        regs: Value,
        out: Value,
        report_hooks: bool,
    ) -> Value {
        let ptr = self.ptr;
        let resumed = self
            .call(
                super::helpers::resume as *const () as usize,
                &[ptr, ptr, types::I64, ptr],
                Some(types::I64),
                &[ctx, regs, status, out],
            )
            .expect("returns");
        if !report_hooks {
            return resumed;
        }
        let ts = self
            .b
            .ins()
            .load(ptr, mem(), ctx, std::mem::offset_of!(Ctx, tstate) as i32);
        self.hooked_status(resumed, ts)
    }

    /// This function's CPython frame (see `cpy::frame`).
    pub(crate) fn frame_ptr(&mut self) -> Value {
        match self.s.ctx_fill {
            Some(f) => f.frame,
            None => {
                let ctx = self.s.ctx_v.expect("prologue ran");
                self.b.ins().load(
                    self.ptr,
                    mem(),
                    ctx,
                    std::mem::offset_of!(Ctx, frame) as i32,
                )
            }
        }
    }

    /// Marks the running instruction in this function's frame (`prev_instr`), as CPython
    /// does before anything can look: emitted before every call out of native code, and
    /// before a callee's frame is pushed on top of this one (an inlined callee's own frame
    /// is pushed here first, if it is not yet).
    pub fn set_prev_instr(&mut self) {
        if !self.s.has_frame {
            return;
        }
        // An inlined callee's frame, pushed on first use.
        self.link_inline();
        self.store_prev_instr();
    }

    /// Writes the current instruction's code unit into this function's frame.
    fn store_prev_instr(&mut self) {
        let off = self.c.linear.insts[self.s.pc].offset;
        let unit = self.c.code_unit(off) as i64;
        let frame = self.frame_ptr();
        let v = self.b.ins().iconst(self.ptr, unit);
        self.b
            .ins()
            .store(mem(), v, frame, crate::cpy::frame::offset::PREV_INSTR);
    }

    /// `cpy::frame::push`, inline: fills in the frame at `frame` for a call of `callee`'s
    /// function `func` (with its dicts), writes the word before it (its context `ctx`,
    /// see `activation`) and links it as thread `ts`'s innermost frame.
    pub fn push_frame(
        &mut self,
        frame: Value,
        ctx: Value,
        ts: Value,
        callee: &Compiled,
        func: Value,
        (globals, builtins): (Value, Value),
    ) {
        use crate::cpy::frame::{self as cf, offset};
        let code = callee.objects.code.ptr();
        // SAFETY: reading a live code object's first traceable instruction (compiling
        // runs with the GIL held).
        let first = unsafe { cf::first_traceable(code) } as i64;
        let cframe = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, crate::cpy::tstate_offset::CFRAME);
        let prev = self
            .b
            .ins()
            .load(self.ptr, mem(), cframe, cf::CFRAME_CURRENT);
        let zero = self.b.ins().iconst(self.ptr, 0);
        let code_v = self.b.ins().iconst(self.ptr, code as i64);
        let first_v = self.b.ins().iconst(self.ptr, first);
        let tail = self.b.ins().iconst(types::I64, cf::tail_word());
        for (v, off) in [
            (func, offset::FUNC),
            (globals, offset::GLOBALS),
            (builtins, offset::BUILTINS),
            (zero, offset::LOCALS),
            (code_v, offset::CODE),
            (zero, offset::FRAME_OBJ),
            (prev, offset::PREVIOUS),
            (first_v, offset::PREV_INSTR),
            (tail, offset::TAIL),
        ] {
            self.b.ins().store(mem(), v, frame, off);
        }
        for i in 0..callee.nlocalsplus as i32 {
            self.b
                .ins()
                .store(mem(), zero, frame, offset::LOCALSPLUS + 8 * i);
        }
        self.b
            .ins()
            .store(mem(), ctx, frame, -(crate::activation::BACK_POINTER as i32));
        self.b.ins().store(mem(), frame, cframe, cf::CFRAME_CURRENT);
    }

    /// `cpy::frame::pop`, inline: unlinks the frame at `frame` from thread `ts`'s chain;
    /// one that something looked at (a frame object, a locals dict) is finished in Rust.
    pub fn pop_frame(&mut self, frame: Value, ts: Value) {
        use crate::cpy::frame::{self as cf, offset};
        let cframe = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, crate::cpy::tstate_offset::CFRAME);
        let prev = self.b.ins().load(self.ptr, mem(), frame, offset::PREVIOUS);
        self.b.ins().store(mem(), prev, cframe, cf::CFRAME_CURRENT);
        // A frame object, a locals dict, or synced slots (stacktop) need the slow pop.
        let fo = self.b.ins().load(self.ptr, mem(), frame, offset::FRAME_OBJ);
        let dict = self.b.ins().load(self.ptr, mem(), frame, offset::LOCALS);
        let tail = self.b.ins().load(types::I64, mem(), frame, offset::TAIL);
        let seen = self.b.ins().bor(fo, dict);
        let seen = self.b.ins().bor(seen, tail);
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let done = self.b.create_block();
        self.b.ins().brif(seen, slow, &[], done, &[]);
        self.b.switch_to_block(slow);
        let had = std::mem::replace(&mut self.s.has_frame, false);
        self.call(
            super::helpers::finish_pop as *const () as usize,
            &[self.ptr],
            None,
            &[frame],
        );
        self.s.has_frame = had;
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Counts a call of a `@tiered` wrapper that ran native code, in the wrapper's own
    /// counters (`stats(f)`), as its Rust entry counts one; `entry` is its `Entry`.
    pub fn count_native_call(&mut self, entry: Value) {
        use crate::runtime::Entry;
        for off in [Entry::CALLS_OFFSET, Entry::NATIVE_CALLS_OFFSET] {
            let n = self.b.ins().load(types::I64, mem(), entry, off);
            let n = self.b.ins().iadd_imm_s(n, 1);
            self.b.ins().store(mem(), n, entry, off);
        }
    }

    /// Drops what a finished call of `callee` left in its register file `regs`: after it
    /// returned (`status` 0), only what a return leaves (`Linear::at_return`) but for
    /// registers that never own anything (a small int or bool constant, which native code
    /// keeps unboxed; NULL's), inline; else every register that may own something
    /// (`Linear::owning`), out of line.
    pub fn release_registers(&mut self, callee: &Compiled, regs: Value, status: Value) {
        let lin = &callee.linear;
        let returned = self.b.create_block();
        let other = self.b.create_block();
        let done = self.b.create_block();
        self.b.set_cold_block(other);
        self.b.ins().brif(status, other, &[], returned, &[]);
        self.b.switch_to_block(returned);
        let unboxed = ops::values::const_int_registers(callee);
        let null = ops::values::null_registers(callee);
        let owning = lin
            .at_return
            .iter()
            .copied()
            .filter(|&r| unboxed[r as usize].is_none() && !null[r as usize]);
        self.release_each(regs, owning);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(other);
        let c = self
            .b
            .ins()
            .iconst(self.ptr, callee as *const Compiled as i64);
        self.call(
            super::helpers::release_all as *const () as usize,
            &[self.ptr, self.ptr],
            None,
            &[c, regs],
        );
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }
    /// Drops registers `rs` of register file `regs` (another function's).
    fn release_each(&mut self, regs: Value, rs: impl Iterator<Item = u32>) {
        for r in rs {
            let (t, p) = self.load_words(regs, r);
            self.drop_loaded(t, p);
        }
    }
    /// Register `r`'s tag and payload, read from register file `regs` in memory (both
    /// words are always readable; the payload means something only for some tags).
    fn load_words(&mut self, regs: Value, r: u32) -> (Value, Value) {
        let t = self.b.ins().load(types::I64, mem(), regs, (r * 16) as i32);
        let p = self
            .b
            .ins()
            .load(self.ptr, mem(), regs, (r * 16 + 8) as i32);
        (t, p)
    }
    /// Increfs a `Value` read out of a register (tag and payload) if it is an object: a
    /// second owner for it.
    pub fn incref_loaded(&mut self, t: Value, payload: Value) {
        let is_obj = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let obj = self.b.create_block();
        let go = self.b.create_block();
        self.b.ins().brif(is_obj, obj, &[], go, &[]);
        self.b.switch_to_block(obj);
        self.incref(payload);
        self.b.ins().jump(go, &[]);
        self.b.switch_to_block(go);
    }
    /// Drops a `Value` already read out of its register (tag and payload).
    fn drop_loaded(&mut self, t: Value, payload: Value) {
        let is_obj = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let obj = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(is_obj, obj, &[], done, &[]);
        self.b.switch_to_block(obj);
        self.decref(payload);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Calls a helper at `addr` with the given parameter types and optional i64 result.
    pub fn call(
        &mut self,
        addr: usize,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        let f = self.b.ins().iconst(self.ptr, addr as i64);
        self.call_value(addr, f, params, ret, args)
    }

    /// Calls the function pointer `f` (a runtime value); `key` names its signature (the
    /// helper's address, or any other number unique to the signature).
    pub fn call_value(
        &mut self,
        key: usize,
        f: Value,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        // Whatever runs out there may look at the stack: this frame's line is current.
        self.set_prev_instr();
        self.call_unmarked(key, f, params, ret, args)
    }

    /// `call_value` without marking this frame's instruction first (for what links it, or
    /// what marked it already).
    pub(crate) fn call_unmarked(
        &mut self,
        key: usize,
        f: Value,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        let result = self.call_unreloaded(key, f, params, ret, args);
        // After every call, not only those given the register file: a cached value
        // live across any call gets spilled by the register allocator, which measured
        // slower than these reloads (pysum 2.4 -> 2.9 us).
        self.reload_cached();
        result
    }

    /// `call_unmarked` without the reload of cached registers after it: for a call whose paths
    /// all join at a block that reloads them once (`op`'s slow paths).
    fn call_unreloaded(
        &mut self,
        key: usize,
        f: Value,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        let addr = key;
        let sig = match self.sig_cache.iter().find(|(a, _)| *a == addr) {
            Some(&(_, s)) => s,
            None => {
                let mut sig = Signature::new(self.b.func.signature.call_conv);
                sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
                sig.returns.extend(ret.map(AbiParam::new));
                let s = self.b.import_signature(sig);
                self.sig_cache.push((addr, s));
                s
            }
        };
        let call = self.b.ins().call_indirect(sig, f, args);
        self.b.inst_results(call).first().copied()
    }

    /// Calls a helper taking (ctx, regs, pc[, extra]) and returning an i64 status.
    pub fn call_pc_helper(&mut self, addr: usize, pc: usize, extra: Option<u32>) -> Value {
        self.pc_helper_call(addr, pc, extra, true)
    }

    /// `call_pc_helper`, with the cached registers reloaded after it only if `reload`.
    fn pc_helper_call(
        &mut self,
        addr: usize,
        pc: usize,
        extra: Option<u32>,
        reload: bool,
    ) -> Value {
        let ctx = self.ctx();
        let regs = self.regs();
        let pcv = self.b.ins().iconst(types::I32, pc as i64);
        let mut params = vec![self.ptr, self.ptr, types::I32];
        let mut args = vec![ctx, regs, pcv];
        if let Some(x) = extra {
            params.push(types::I32);
            args.push(self.b.ins().iconst(types::I32, x as i64));
        }
        // Whatever runs out there may look at the stack: this frame's line is current.
        self.set_prev_instr();
        let f = self.b.ins().iconst(self.ptr, addr as i64);
        let r = self.call_unreloaded(addr, f, &params, Some(types::I64), &args);
        if reload {
            self.reload_cached();
        }
        r.expect("returns")
    }

    fn call_unreachable_and_fail(&mut self) {
        let r = self
            .call(
                super::helpers::unreachable as *const () as usize,
                &[],
                Some(types::I64),
                &[],
            )
            .expect("returns");
        self.leave(r);
    }

    /// Once this code was replaced (`Compiled::invalidate`: too many deopts, or an op
    /// quickened late), leaves it for tier 1 at instruction `at`, which continues there
    /// (and recompiles once hot). Emitted only after the helper calls that may replace it
    /// (deopts; ops in loops that may quicken late), so the check costs nothing on hot
    /// paths; not in a trampoline, nor inside a callee emitted inline (whose instructions
    /// are not this code's).
    fn leave_if_replaced(&mut self, at: usize) {
        if self.invalid_flag == 0 || self.inlining {
            return;
        }
        let fa = self.b.ins().iconst(self.ptr, self.invalid_flag as i64);
        let invalid = self.b.ins().load(types::I8, mem(), fa, 0);
        self.leave_if(invalid, at);
    }

    /// Leaves for tier 1 at instruction `at` when `cond` is non-zero (a cold exit), else
    /// goes on in a fresh block.
    fn leave_if(&mut self, cond: Value, at: usize) {
        let leave = self.b.create_block();
        self.b.set_cold_block(leave);
        self.fail_if(cond, leave);
        let go = self.b.current_block().expect("in a block");
        self.b.switch_to_block(leave);
        self.leave_for_tier1(at);
        self.b.switch_to_block(go);
    }

    /// Leaves for tier 1 at instruction `at`: status 2 + `at`. A callee emitted inline
    /// writes its context first (tier 1 reads it; its frame is linked already, since
    /// only a call out of it can make it leave), and its caller's exit block has tier 1
    /// finish it (`inline_body`).
    fn leave_for_tier1(&mut self, at: usize) {
        if self.inlining {
            self.ctx();
        }
        self.return_status(2 + at as i64);
    }

    /// Status `status` of a finished call (0 or 1), made 2 when it returned with a trace or
    /// profile hook on thread state `ts` (slow paths only).
    fn hooked_status(&mut self, status: Value, ts: Value) -> Value {
        let on = self.hooks_loaded(ts);
        let returned = self.b.ins().icmp_imm_s(IntCC::Equal, status, 0);
        let on = self.b.ins().icmp_imm_s(IntCC::NotEqual, on, 0);
        let both = self.b.ins().band(returned, on);
        let two = self.b.ins().iconst(types::I64, 2);
        self.b.ins().select(both, two, status)
    }

    /// Leaves for tier 1 at instruction `at` if a trace or profile hook is on (`tracing`).
    pub fn leave_if_hooked(&mut self, at: usize) {
        let ts = self.thread_state();
        let on = self.hooks_loaded(ts);
        self.leave_if(on, at);
    }

    /// The `_PyCFrame` loaded at the entry (`Scope::cframe`; the prologue loads it where an
    /// EvalBreaker checks for hooks).
    pub(crate) fn cframe(&mut self) -> Value {
        let var = self.s.cframe.expect("the prologue loaded the cframe");
        self.b.use_var(var)
    }

    /// The thread state this code runs on.
    pub(crate) fn thread_state(&mut self) -> Value {
        match self.s.ctx_fill {
            // An inlined callee's context is written only where something reads it.
            Some(fill) => fill.thread.0,
            None => {
                let ctx = self.s.ctx_v.expect("prologue ran");
                self.b.ins().load(
                    self.ptr,
                    mem(),
                    ctx,
                    std::mem::offset_of!(Ctx, tstate) as i32,
                )
            }
        }
    }

    fn return_status(&mut self, status: i64) {
        let v = self.b.ins().iconst(types::I64, status);
        self.leave(v);
    }

    /// `helper(ctx, regs, pc)` (`exec` or `deopt_exec`) for `op`'s slow paths: cached
    /// registers are reloaded where the paths join (`after_slow_path`).
    fn slow_call(&mut self, helper: usize, pc: usize) -> Value {
        self.pc_helper_call(helper, pc, None, false)
    }

    /// After a slow path ran instruction `pc` in tier 1 and returned status `r`: the next
    /// instruction, the handler (if it raised and one covers it), or leaving with status 1.
    fn after_slow_path(&mut self, pc: usize, r: Value) {
        self.reload_cached();
        self.check_status(pc, r);
        // An op in a loop that quickened only now may have replaced this code
        // (`Compiled::specialized_late`): the loop continues in tier 1 from the next op.
        if let crate::lower::LKind::Op(op) = self.c.linear.insts[pc].kind {
            if self.c.linear.in_cycle[pc] && !crate::quick::tiers_of(op.kind()).1.is_empty() {
                self.leave_if_replaced(pc + 1);
            }
            // A trace or profile hook installed meanwhile (by a signal handler, or by
            // something a call ran): its events come from tier 1.
            if matches!(op, Op::EvalBreaker {} | Op::Call { .. } | Op::CallEx { .. }) {
                self.leave_if_hooked(pc + 1);
            }
        }
        let next = self.s.blocks[pc + 1];
        self.b.ins().jump(next, &[]);
    }

    /// After a helper ran instruction `pc` and returned `r` (0 done, 1 exception leaves,
    /// 2 + handler): continues in a fresh block when 0, else goes to the function's status
    /// exit, which leaves or enters the handler. One exit per function, not a cold block
    /// or two per op (a 65-op loop body's machine code: 36,792 -> 33,656 bytes).
    pub fn check_status(&mut self, pc: usize, r: Value) {
        let unwind = self.c.linear.insts[pc].unwind;
        let handler = (unwind != NO_EDGE).then(|| self.c.linear.edges[unwind as usize].target);
        let (exit, handlers) = match &mut self.s.status_exit {
            Some(x) => x,
            None => {
                let b = self.b.create_block();
                self.b.set_cold_block(b);
                self.b.append_block_param(b, types::I64);
                self.s.status_exit.insert((b, Vec::new()))
            }
        };
        if let Some(h) = handler.filter(|h| !handlers.contains(h)) {
            handlers.push(h);
        }
        let exit = *exit;
        let ok = self.b.create_block();
        self.b.ins().brif(r, exit, &[BlockArg::Value(r)], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// The status exit (`check_status`), once the body is emitted: 2 + a handler's
    /// instruction enters that handler (the helper unwound to it); 1 leaves with the
    /// exception.
    fn emit_status_exit(&mut self) {
        let Some((exit, handlers)) = self.s.status_exit.take() else {
            return;
        };
        self.b.switch_to_block(exit);
        let r = self.b.block_params(exit)[0];
        for h in handlers {
            let other = self.b.create_block();
            self.b.set_cold_block(other);
            let is = self.b.ins().icmp_imm_s(IntCC::Equal, r, 2 + h as i64);
            self.b
                .ins()
                .brif(is, self.s.blocks[h as usize], &[], other, &[]);
            self.b.switch_to_block(other);
        }
        self.return_status(1);
    }

    /// After an op's C call at `pc` raised (outside any tier-1 helper): the traceback
    /// line, then the handler covering `pc` or leaving with status 1.
    pub fn raise_at(&mut self, pc: usize) {
        let r = self.call_pc_helper(super::helpers::call_failed as *const () as usize, pc, None);
        self.check_status(pc, r);
    }

    /// After an op's C call at `pc`: if `failed` is non-zero the call raised, and that goes
    /// as `raise_at` says; otherwise code continues in a fresh block.
    pub fn raise_if(&mut self, pc: usize, failed: Value) {
        self.raise_if_after(pc, failed, |_| {});
    }

    /// `raise_if`, with `undo` emitted first on the raising path (what the op had entered
    /// or taken before its C call, such as a recursion level).
    pub fn raise_if_after(&mut self, pc: usize, failed: Value, undo: impl FnOnce(&mut Self)) {
        let raised = self.b.create_block();
        self.b.set_cold_block(raised);
        let ok = self.b.create_block();
        self.b.ins().brif(failed, raised, &[], ok, &[]);
        self.b.switch_to_block(raised);
        undo(self);
        self.raise_at(pc);
        // raise_at never continues here (the status after a raise is never 0).
        self.b.ins().jump(ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// Op `pc`'s C call `f(args...)` (pointer arguments) returning a new reference: NULL
    /// raised (`raise_if`), anything else is the op's result.
    pub fn call_for_result(&mut self, pc: usize, f: usize, args: &[Value]) {
        let params = vec![self.ptr; args.len()];
        let r = self
            .call(f, &params, Some(self.ptr), args)
            .expect("returns");
        let failed = self.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
        self.raise_if(pc, failed);
        let dst = self.c.linear.insts[pc].dst;
        self.set(dst, tag::OBJ, r);
    }

    /// The end of a direct call at `pc` whose callee's status is `status` (0 returned, 1
    /// raised, 2 returned with a trace or profile hook on) and result is in `out`: raises
    /// as `raise_if` does; else stores the result in `dst` and goes to `done`, except that
    /// with a hook on this function goes on in tier 1 from the next instruction (`tracing`;
    /// a callee emitted inline leaves to its exit, where tier 1 finishes it).
    pub fn finish_direct_call(
        &mut self,
        pc: usize,
        status: Value,
        out: Value,
        dst: u32,
        done: Block,
    ) {
        let not_ok = self.b.create_block();
        self.b.set_cold_block(not_ok);
        let ok = self.b.create_block();
        self.b.ins().brif(status, not_ok, &[], ok, &[]);
        self.b.switch_to_block(not_ok);
        let raised = self.b.ins().icmp_imm_s(IntCC::Equal, status, 1);
        let hooked = self.b.create_block();
        self.b.set_cold_block(hooked);
        self.raise_if(pc, raised);
        self.b.ins().jump(hooked, &[]);
        self.b.switch_to_block(hooked);
        self.store_out(out, dst);
        self.leave_for_tier1(pc + 1);
        self.b.switch_to_block(ok);
        self.store_out(out, dst);
        self.b.ins().jump(done, &[]);
    }

    /// Moves the Value at `out` into register `dst`, releasing the old value after it
    /// (as CPython stores a call's result).
    fn store_out(&mut self, out: Value, dst: u32) {
        let t = self.b.ins().load(types::I64, mem(), out, 0);
        let p = self.b.ins().load(types::I64, mem(), out, 8);
        self.reset(dst);
        self.store_reg(dst, t, p);
    }

    /// Calls a helper running instruction `pc` with the status protocol, where -1 means
    /// its guard failed (branch to `fail`).
    pub fn call_guarded_helper(&mut self, pc: usize, helper: usize, fail: Block) {
        let r = self.call_pc_helper(helper, pc, None);
        let missed = self.b.ins().icmp_imm_s(IntCC::Equal, r, -1);
        self.fail_if(missed, fail);
        self.check_status(pc, r);
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
            Op::Compare { op } => ops::compare::emit_compare(self, pc, op, q, slow),
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
            | Op::CallEx { .. }
            | Op::MakeFunction { .. }
            | Op::BuildSet {}
            | Op::BuildMap {}
            | Op::BuildConstKeyMap {}
            | Op::ListExtend {}
            | Op::SetUpdate {}
            | Op::DictUpdate {}
            | Op::DictMerge {}
            | Op::ListToTuple {}
            | Op::UnpackEx { .. }
            | Op::MakeCell {}
            | Op::LoadClosure { .. }
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

    /// Takes edge `e` from instruction `pc`: its moves (inline when all are moves of
    /// values dead afterwards, else through the helper), then the jump.
    fn edge(&mut self, pc: usize, ei: u32) {
        let e: Edge = self.c.linear.edges[ei as usize];
        let moves =
            &self.c.linear.moves[e.moves_start as usize..(e.moves_start + e.moves_len) as usize];
        // Copies of unboxed numbers must box them first (one object per value): that, and
        // only that, takes the helper; everything else moves or increfs inline.
        let done = self.b.create_block();
        let inline = self.b.create_block();
        let helper = self.b.create_block();
        self.b.set_cold_block(helper);
        let copies: Vec<u32> = moves.iter().filter(|m| !m.2).map(|m| m.0).collect();
        if copies.is_empty() {
            self.b.ins().jump(inline, &[]);
        } else {
            let mut any_unboxed = self.b.ins().iconst(types::I8, 0);
            for &s in &copies {
                let t = self.tag(s);
                let is_num =
                    self.b
                        .ins()
                        .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, t, tag::INT as i64);
                any_unboxed = self.b.ins().bor(any_unboxed, is_num);
            }
            self.b.ins().brif(any_unboxed, helper, &[], inline, &[]);
        }
        self.b.switch_to_block(inline);
        for &(s, d, movable) in moves {
            let t = self.tag(s);
            let p = self.payload(s, types::I64);
            if !movable {
                self.incref_loaded(t, p);
            }
            if self.may_hold_old(d, e.target as usize) {
                self.drop_reg(d);
            }
            self.store_reg(d, t, p);
            if movable {
                self.clear(s);
            }
        }
        self.release_dead(
            e.drops_start,
            e.drops_len,
            self.c.linear.in_cycle[e.target as usize],
            None,
        );
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(helper);
        if !copies.is_empty() {
            let r = self.call_pc_helper(super::helpers::edge as *const () as usize, pc, Some(ei));
            let fail = self.b.create_block();
            self.b.ins().brif(r, fail, &[], done, &[]);
            self.b.switch_to_block(fail);
            self.return_status(1);
        } else {
            self.b.ins().jump(done, &[]);
        }
        self.b.switch_to_block(done);
        let target = self.s.blocks[e.target as usize];
        self.b.ins().jump(target, &[]);
    }

    /// A Jump terminator.
    pub fn jump(&mut self, pc: usize, edge: u32) {
        self.edge(pc, edge);
    }

    /// A Branch terminator: unboxed bools are tested inline, anything else by the helper.
    pub fn branch(&mut self, pc: usize, cond: u32, then_edge: u32, else_edge: u32) {
        if self.s.bool_regs[cond as usize] {
            // Always an unboxed bool here: test its payload directly.
            let v = self.payload(cond, types::I8);
            let (on_true, on_false) = self.branch_sides(pc);
            self.b.ins().brif(v, on_true, &[], on_false, &[]);
            self.b.switch_to_block(on_true);
            self.edge(pc, then_edge);
            self.b.switch_to_block(on_false);
            self.edge(pc, else_edge);
            return;
        }
        let t = self.tag(cond);
        let is_bool = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::BOOL as i64);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let decide = self.b.create_block();
        self.b.append_block_param(decide, types::I64);
        self.b.ins().brif(is_bool, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let v = self.payload(cond, types::I8);
        let v = self.b.ins().uextend(types::I64, v);
        self.b.ins().jump(decide, &[BlockArg::Value(v)]);
        self.b.switch_to_block(slow);
        let r = self.call_pc_helper(super::helpers::truth as *const () as usize, pc, Some(cond));
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
        let fail = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(neg, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        self.return_status(1);
        self.b.switch_to_block(ok);
        self.b.ins().jump(decide, &[BlockArg::Value(r)]);
        self.b.switch_to_block(decide);
        let truth = self.b.block_params(decide)[0];
        let on_true = self.b.create_block();
        let on_false = self.b.create_block();
        self.b.ins().brif(truth, on_true, &[], on_false, &[]);
        self.b.switch_to_block(on_true);
        self.edge(pc, then_edge);
        self.b.switch_to_block(on_false);
        self.edge(pc, else_edge);
    }

    /// The Drop right after instruction `pc`, if any (its range of `drops`), and the
    /// instruction after that.
    fn drops_after(&self, pc: usize) -> (Option<(u32, u32)>, usize) {
        match self.c.linear.insts[pc + 1].kind {
            crate::lower::LKind::Drop { start, len } => (Some((start, len)), pc + 2),
            _ => (None, pc + 1),
        }
    }

    /// On a path of its own where the template at `pc` wrote the constant bool `value`
    /// into `r` (a loop's end): when the instruction after it (past a Drop) is the
    /// Branch on `r`, that side is taken directly, the dead values released on the way as
    /// `continue_after` releases them; otherwise on to the next instruction.
    pub fn continue_known(&mut self, pc: usize, r: u32, value: bool) {
        let (drops, branch_pc) = self.drops_after(pc);
        match self.c.linear.insts[branch_pc].kind {
            crate::lower::LKind::Branch { cond, .. } if cond == r => {
                if let Some((start, len)) = drops {
                    self.release_dead(start, len, self.c.linear.in_cycle[pc + 1], None);
                }
                let (on_true, on_false) = self.branch_sides(branch_pc);
                self.b
                    .ins()
                    .jump(if value { on_true } else { on_false }, &[]);
            }
            _ => {
                let next = self.s.blocks[pc + 1];
                self.b.ins().jump(next, &[]);
            }
        }
    }

    /// The true and false sides of the Branch at `pc` (on a bool-only register).
    fn branch_sides(&mut self, pc: usize) -> (Block, Block) {
        if let Some(&sides) = self.s.branch_sides.get(&pc) {
            return sides;
        }
        let sides = (self.b.create_block(), self.b.create_block());
        self.s.branch_sides.insert(pc, sides);
        sides
    }

    /// Where instruction `pc`'s template continues: the next instruction, or, when that
    /// is a Branch on the bool the template just wrote, straight to the Branch's side
    /// (the value is in a machine register already; the register file has it too).
    fn continue_after(&mut self, pc: usize) {
        let (pc, skip) = match self.fuse_truth(pc) {
            Some(r) => (pc + 1, Some(r)),
            None => (pc, None),
        };
        let next = self.s.blocks[pc + 1];
        // Values the template's op consumed die before the Branch: released on the way.
        let (drops, branch_pc) = self.drops_after(pc);
        let fused = match (self.s.last_bool, self.c.linear.insts[branch_pc].kind) {
            (Some((r, v, block, stores)), crate::lower::LKind::Branch { cond, .. })
                if r == cond
                    && self.s.bool_regs[r as usize]
                    && self.b.current_block() == Some(block) =>
            {
                Some((r, v, stores))
            }
            _ => None,
        };
        match fused {
            Some((r, v, stores)) => {
                if self.s.reads[r as usize] == 1 {
                    // The Branch is the register's only reader and takes the value from
                    // here: nothing will read what the template stored (the slow path
                    // stores its own), so the stores go.
                    for st in stores {
                        self.b.func.layout.remove_inst(st);
                    }
                }
                if let Some((start, len)) = drops {
                    self.release_dead(start, len, self.c.linear.in_cycle[pc + 1], skip);
                }
                let (on_true, on_false) = self.branch_sides(branch_pc);
                self.b.ins().brif(v, on_true, &[], on_false, &[]);
            }
            None => {
                self.b.ins().jump(next, &[]);
            }
        }
    }

    /// When the template at `pc` just wrote an unboxed bool that the next instruction, a
    /// Truth, is the only reader of (`Compare[CompareInt]` before an `if`): the Truth's
    /// result is that very value, written here on the template's fast path, and the
    /// bool's own stores go (no frame state holds it, so nothing else ever reads them; its
    /// register stays empty, as it was). Returns that register (the Drop releasing it
    /// after the Truth has nothing to do on this path); the caller goes on after the Truth.
    /// The Truth's own code still runs for the template's slow path.
    fn fuse_truth(&mut self, pc: usize) -> Option<u32> {
        let (r, v, block, stores) = self.s.last_bool?;
        let inst = self.c.linear.insts[pc + 1];
        let crate::lower::LKind::Op(Op::Truth {}) = inst.kind else {
            return None;
        };
        let fusable = self.b.current_block() == Some(block)
            && self.c.linear.operands[inst.args as usize] == r
            && self.s.reads[r as usize] == 1
            && !self.s.in_state[r as usize]
            && !self.c.linear.reused[r as usize];
        if !fusable {
            return None;
        }
        for st in stores {
            self.b.func.layout.remove_inst(st);
        }
        let at = std::mem::replace(&mut self.s.pc, pc + 1);
        self.count_template(Op::Truth {});
        self.set(inst.dst, tag::BOOL, v);
        self.s.pc = at;
        Some(r)
    }

    /// A Return terminator: the value moves to `*out`, or is copied when `kept` (the
    /// register holds a local the frame returns with; an unboxed number is copied as it
    /// is); status 0.
    pub fn ret(&mut self, r: u32, kept: bool) {
        if !self.inlining {
            // The frame is at its RETURN_VALUE: a frame object that outlives the call
            // keeps the locals of this Return's state (`activation::sync_at_pop`).
            self.store_prev_instr();
        }
        let t = self.tag(r);
        let p = self.payload(r, types::I64);
        let out = self.s.out_v.expect("prologue ran");
        self.b.ins().store(mem(), t, out, 0);
        self.b.ins().store(mem(), p, out, 8);
        if kept {
            self.incref_loaded(t, p);
        } else {
            self.clear(r);
        }
        self.return_status(0);
    }

    /// An Unreachable terminator.
    pub fn unreachable(&mut self) {
        self.call_unreachable_and_fail();
    }

    /// The address of this function's frame area for direct calls (see
    /// `ops::calls::direct_frame_size`), made on first use.
    pub fn call_frame(&mut self) -> Value {
        let slot = match self.s.call_slot {
            Some(s) => s,
            None => {
                let size = ops::calls::direct_frame_size(self.c);
                let s = self.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    size,
                    4,
                ));
                self.s.call_slot = Some(s);
                s
            }
        };
        self.b.ins().stack_addr(self.ptr, slot, 0)
    }

    /// The address of this function's argument array for native builtin calls (16
    /// words: the vectorcall offset slot and up to 15 arguments), made on first use.
    pub fn call_args_array(&mut self) -> Value {
        let slot = match self.args_slot {
            Some(s) => s,
            None => {
                let s = self.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    16 * 8,
                    3,
                ));
                self.args_slot = Some(s);
                s
            }
        };
        self.b.ins().stack_addr(self.ptr, slot, 0)
    }

    /// Offset of a `Ctx` field, for templates reading it.
    pub fn ctx_offset_globals() -> i32 {
        std::mem::offset_of!(Ctx, globals) as i32
    }
    /// Offset of `Ctx::builtins`.
    pub fn ctx_offset_builtins() -> i32 {
        std::mem::offset_of!(Ctx, builtins) as i32
    }
}
