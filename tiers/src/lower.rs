//! Lowers an SSA function to the interpreter's compact linear form: one register per SSA
//! value, instructions in a flat array, block parameters turned into move lists on edges.
//! The interpreter never touches petgraph or the slotmaps at run time.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
mod coalesce;
mod plan;
mod suspend;

pub use suspend::Suspension;
use suspend::{coalesce_resume_params, lasti_values};
use tiered_ir::{Block, BlockCall, Function, Op, Terminator, Value};

/// "No unwind edge".
pub const NO_EDGE: u32 = u32::MAX;

/// What one linear instruction does.
#[derive(Clone, Copy, Debug)]
pub enum LKind {
    /// An IR op; results go to `dst..dst + n`.
    Op(Op),
    /// Take edge `0`.
    Jump(u32),
    /// Branch on register `cond`: edge `then_edge` if true, else `else_edge`.
    Branch {
        /// The condition register.
        cond: u32,
        /// Edge when true.
        then_edge: u32,
        /// Edge when false.
        else_edge: u32,
    },
    /// Release registers `drops[start..start + len]`: values that died here (see `lower`).
    Drop {
        /// Start in `Linear::drops`.
        start: u32,
        /// How many.
        len: u32,
    },
    /// Return register `reg`: moved out, or copied when `kept` (a local of the frame
    /// state it returns with, which a profiler's `return` event may still read).
    Return {
        /// The returned register.
        reg: u32,
        /// Whether the register keeps its value.
        kept: bool,
    },
    /// Suspend the generator (`Linear::suspensions[index]`): its operands (the frame's
    /// slots, then its value stack) move into the frame, and `value` (a YIELD_VALUE's;
    /// `NO_VALUE` for RETURN_GENERATOR, whose result is the new generator) is returned.
    Suspend {
        /// The yielded register, or `NO_VALUE`.
        value: u32,
        /// Index into `Linear::suspensions`.
        index: u32,
    },
    /// Control cannot get here.
    Unreachable,
}

/// `LKind::Suspend::value` of a RETURN_GENERATOR.
pub const NO_VALUE: u32 = u32::MAX;

/// One linear instruction.
#[derive(Clone, Copy, Debug)]
pub struct LInst {
    /// What it does.
    pub kind: LKind,
    /// First result register.
    pub dst: u32,
    /// Start of its operand registers in `Linear::operands`.
    pub args: u32,
    /// Number of operands.
    pub nargs: u32,
    /// Unwind edge index, or `NO_EDGE`.
    pub unwind: u32,
    /// Bytecode offset, for line numbers.
    pub offset: u32,
    /// Its frame state: index into `Linear::states`, or `NO_STATE` (terminators).
    pub state: u32,
}

/// "No frame state".
pub const NO_STATE: u32 = u32::MAX;

/// A control edge: where to go and which registers to copy into the target's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    /// Target instruction index.
    pub target: u32,
    /// Range of `Linear::moves`.
    pub moves_start: u32,
    /// Number of moves.
    pub moves_len: u32,
    /// For unwind edges, the register receiving the exception.
    pub exc_reg: u32,
    /// Whether the edge goes backwards (a loop): where the interpreter polls for signals.
    pub backward: bool,
    /// Range of `Linear::drops`: registers released after the moves, whose values die on
    /// this edge (live in another successor, or, on an unwind edge, stack values above
    /// the handler's depth).
    pub drops_start: u32,
    /// Number of drops.
    pub drops_len: u32,
}

/// The compact linear form of a function.
#[derive(Clone, Debug, Default)]
pub struct Linear {
    /// Instructions; execution starts at 0.
    pub insts: Vec<LInst>,
    /// Operand registers.
    pub operands: Vec<u32>,
    /// Per operand: whether this is the value's last use (nothing reads it afterwards, not
    /// even a handler), so an op may consume it (e.g. append to a str in place).
    pub last_use: Vec<bool>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// Edge moves in execution order: (source, destination, whether the source can be
    /// moved out rather than copied because nothing reads it afterwards).
    pub moves: Vec<(u32, u32, bool)>,
    /// Number of registers.
    pub nregs: u32,
    /// Registers `0..nparams` receive the arguments.
    pub nparams: u32,
    /// Per instruction: whether it lies on a cycle (a loop, through handlers too), i.e. may
    /// run more than once per call. Registers written only outside cycles are still NULL
    /// when written, whatever tier ran the call so far.
    pub in_cycle: Vec<bool>,
    /// Per register: whether it may ever own an object: a parameter, a result of an op
    /// other than Null, the destination of a move or of a caught exception. The others
    /// stay NULL throughout a call, so nothing needs to release them.
    pub owning: Vec<bool>,
    /// Frame states: per locals-plus slot, the register holding its value (see
    /// `tiered_ir::InstData::state`).
    pub states: Vec<Vec<u32>>,
    /// Registers released by `LKind::Drop` instructions and edges.
    pub drops: Vec<u32>,
    /// The linear instruction of each IR instruction (for printing quickened IR).
    pub pc_of: HashMap<tiered_ir::Inst, u32>,
    /// Per register: whether a write may find it holding a value. Every value is released
    /// where it dies, so a register is empty whenever the one value written there is
    /// written again, or the next of a class of values that never live at once
    /// (`coalesce`), unless an op writes over a value it reads there (`loop_carried` and
    /// `coalesce::writes_after_reading` allow that), other values share it (a resume
    /// parameter), edge moves or the unwinder write it (block parameters), it is the move
    /// scratch register, or it holds a constant or NULL (never released early).
    pub reused: Vec<bool>,
    /// The registers that may still own something once a Return ran: those of the frame
    /// state it returns with, and constants' (every other value was released where it
    /// died, and a returned temporary moved out), so a caller releases only these after
    /// a return, in this order (the locals' slot order, as CPython clears a frame). After
    /// an exception any register that may own something at all may (`unwound`).
    pub at_return: Vec<u32>,
    /// The other registers that may own something (`owning`), top down: after an
    /// exception a caller releases these first, as the unwinder pops the stack (registers
    /// are numbered in the order their values are made), then `at_return`'s.
    pub unwound: Vec<u32>,
    /// The generator's suspensions (empty for other code).
    pub suspensions: Vec<Suspension>,
    /// Per bytecode offset up to the last suspension's: 1 + the index of the suspension
    /// there, or 0 (`suspension_at`).
    pub suspension_index: Vec<u32>,
    /// The entry block's Const, Null and Lasti instructions: a resumed generator runs them first
    /// (every register is empty then), since every later block uses their registers.
    pub prologue: Vec<u32>,
}

impl Linear {
    /// The suspension at bytecode offset `offset`, if any (every step of a generator asks:
    /// by index rather than a search).
    pub fn suspension_at(&self, offset: u32) -> Option<&Suspension> {
        match self.suspension_index.get(offset as usize) {
            Some(&i) if i != 0 => self.suspensions.get(i as usize - 1),
            _ => None,
        }
    }

    /// Per instruction: whether code may start running there other than at 0: a loop
    /// header (a back edge's target, where tier 1 enters native code: OSR) or a
    /// generator's resume point. Native code is entered nowhere else, so only these need
    /// a way in from its entry.
    pub fn entries(&self) -> Vec<bool> {
        let mut at = vec![false; self.insts.len()];
        for e in self.edges.iter().filter(|e| e.backward) {
            at[e.target as usize] = true;
        }
        for s in &self.suspensions {
            at[s.resume as usize] = true;
        }
        at
    }
}

/// Lowers `f` (which must have no `Unsupported` ops to be executable; they lower anyway).
pub fn lower(f: &Function) -> Linear {
    let live_in = liveness(f);
    let shared = loop_carried(f, &live_in);
    // Constants, NULLs and `lasti`s: the code object keeps constants alive, so when a
    // register lets go of one cannot be observed; they are never released early (`plan`)
    // and go at the exit (or when rewritten).
    let kept: HashSet<Value> = f
        .insts
        .iter()
        .filter(|(_, d)| matches!(d.op, Op::Null {} | Op::Lasti {} | Op::Const { .. }))
        .flat_map(|(_, d)| d.results.iter().copied())
        .collect();
    let mut excluded: HashSet<Value> = kept.clone();
    excluded.extend(shared.iter().flat_map(|(&a, &(p, _))| [a, p]));
    excluded.extend(
        f.insts
            .iter()
            .filter(|(_, d)| d.results.len() > 1)
            .flat_map(|(_, d)| d.results.iter().copied()),
    );
    let class = coalesce::share_registers(f, &live_in, &excluded);
    let mut class_reg: HashMap<Value, u32> = HashMap::default();
    let mut reg: HashMap<Value, u32> = HashMap::default();
    let mut next = 0u32;
    // A value's register: its class's, else a new one.
    let mut fresh = |v: Value, next: &mut u32| {
        let mut new = || {
            *next += 1;
            *next - 1
        };
        match class.get(&v) {
            Some(c) => *class_reg.entry(*c).or_insert_with(new),
            None => new(),
        }
    };
    let entry_block = f.entry();
    for &b in &f.layout {
        for &p in &f.blocks[b].params {
            // A parameter taking a multi-result op's register gets it below (results stay
            // consecutive); the entry's (the arguments) stay 0..n (the first block's
            // parameters are the first values given registers, and no two of them share).
            if b == entry_block
                || !shared
                    .values()
                    .any(|&(q, into_param)| q == p && !into_param)
            {
                reg.insert(p, fresh(p, &mut next));
            }
        }
        for &i in &f.blocks[b].insts {
            for &r in &f.insts[i].results {
                match shared.get(&r).copied() {
                    Some((p, true)) if reg.contains_key(&p) => {
                        let pr = reg[&p];
                        reg.insert(r, pr);
                    }
                    _ => {
                        reg.insert(r, fresh(r, &mut next));
                    }
                }
            }
        }
    }
    for (&a, &(p, into_param)) in &shared {
        if !into_param {
            reg.insert(p, reg[&a]);
        }
    }
    coalesce_resume_params(f, &live_in, &mut reg);
    let lasti_values = lasti_values(f);
    // Which registers die where: per block, from the liveness below (`kept` left out).
    let mut planner = plan::Planner::new(f, &live_in, &reg, &kept, next + 1);
    let plans: HashMap<Block, plan::BlockPlan> = f
        .layout
        .iter()
        .map(|&b| (b, planner.plan_block(b)))
        .collect();
    // Instruction index of each block's first instruction (its entry drops, if any).
    let mut start = HashMap::default();
    let mut pc = 0u32;
    for &b in &f.layout {
        start.insert(b, pc);
        let p = &plans[&b];
        let drops = usize::from(!p.entry_drops.is_empty())
            + p.insts.iter().filter(|i| !i.drops.is_empty()).count();
        pc += (f.blocks[b].insts.len() + drops) as u32 + 1;
    }
    let r = |v: &Value| reg.get(v).copied().unwrap_or(0);
    // One scratch register breaks cycles of moves (a swap of two loop variables).
    let tmp = next;
    let mut out = Linear {
        nregs: next + 1,
        nparams: f.blocks[f.entry()].params.len() as u32,
        ..Linear::default()
    };
    out.owning = (0..out.nregs).map(|x| x < out.nparams).collect();
    // Per block, the registers of its live-ins and parameters (what an edge into it keeps),
    // sorted, made once: unwind edges (one per raising instruction) share a few targets.
    let target_regs: HashMap<Block, Vec<u32>> = f
        .layout
        .iter()
        .map(|&b| {
            let mut keeps: Vec<u32> = live_in[&b]
                .iter()
                .chain(&f.blocks[b].params)
                .map(r)
                .collect();
            keeps.sort_unstable();
            keeps.dedup();
            (b, keeps)
        })
        .collect();
    let edge = |out: &mut Linear, c: &BlockCall, from: u32, exc: bool, drops: &[u32]| -> u32 {
        let params = &f.blocks[c.block].params;
        let moves_start = out.moves.len() as u32;
        let parallel: Vec<(u32, u32)> = c
            .args
            .iter()
            .zip(params.iter())
            .map(|(a, p)| (r(a), r(p)))
            .collect();
        let seq = sequentialize(parallel, tmp);
        // Parameters no move writes keep their value, so they count as read afterwards.
        let live_regs = &target_regs[&c.block];
        let live_after = |x: u32| x != tmp && live_regs.binary_search(&x).is_ok();
        for (i, &(s, d)) in seq.iter().enumerate() {
            let next_touch = seq[i + 1..].iter().find(|(s2, d2)| *s2 == s || *d2 == s);
            let movable = match next_touch {
                Some((s2, _)) if *s2 == s => false,
                Some(_) => true,
                None => !live_after(s),
            };
            out.moves.push((s, d, movable));
        }
        let target = start[&c.block];
        if exc {
            if let Some(p) = params.last() {
                out.owning[r(p) as usize] = true;
            }
        }
        let drops_start = out.drops.len() as u32;
        out.drops.extend_from_slice(drops);
        out.edges.push(Edge {
            target,
            moves_start,
            moves_len: out.moves.len() as u32 - moves_start,
            exc_reg: if exc {
                params.last().map(r).unwrap_or(0)
            } else {
                0
            },
            backward: target <= from,
            drops_start,
            drops_len: drops.len() as u32,
        });
        out.edges.len() as u32 - 1
    };
    // A Drop instruction releasing `drops`, with the frame state of what follows it (the
    // values it releases are in no later state, so that state is the frame as CPython
    // has it there: what a line event's tracer sees).
    let drop_inst = |out: &mut Linear, drops: &[u32], offset: u32, state: Option<u32>| {
        let start = out.drops.len() as u32;
        out.drops.extend_from_slice(drops);
        out.insts.push(LInst {
            kind: LKind::Drop {
                start,
                len: drops.len() as u32,
            },
            dst: 0,
            args: 0,
            nargs: 0,
            unwind: NO_EDGE,
            offset,
            state: state.unwrap_or(NO_STATE),
        });
    };
    let cyclic = f.blocks_in_cycles();
    for (bi, &b) in f.layout.iter().enumerate() {
        let data = &f.blocks[b];
        let plan = &plans[&b];
        let term_offset = data.term_offset.unwrap_or_else(|| {
            data.insts
                .last()
                .map(|&i| f.insts[i].offset)
                .unwrap_or(data.offset)
        });
        let state_from = |k: usize| match data.insts.get(k) {
            Some(&i) => f.insts[i].state,
            None => data.term_state,
        };
        let first = out.insts.len();
        if !plan.entry_drops.is_empty() {
            let offset = data
                .insts
                .first()
                .map_or(term_offset, |&i| f.insts[i].offset);
            drop_inst(&mut out, &plan.entry_drops, offset, state_from(0));
        }
        for (k, (&i, ip)) in data.insts.iter().zip(&plan.insts).enumerate() {
            let inst = &f.insts[i];
            let here = out.insts.len() as u32;
            let args = out.operands.len() as u32;
            out.operands.extend(inst.args.iter().map(r));
            out.last_use.extend(ip.last_use.iter().copied());
            let unwind = match &inst.unwind {
                Some(c) => edge(&mut out, c, here, true, &ip.unwind_drops),
                None => NO_EDGE,
            };
            if !matches!(inst.op, Op::Null {} | Op::Lasti {}) {
                for v in &inst.results {
                    out.owning[r(v) as usize] = true;
                }
            }
            out.pc_of.insert(i, here);
            out.insts.push(LInst {
                kind: LKind::Op(inst.op),
                dst: inst.results.first().map(r).unwrap_or(0),
                args,
                nargs: inst.args.len() as u32,
                unwind,
                offset: inst.offset,
                state: inst.state.unwrap_or(NO_STATE),
            });
            if !ip.drops.is_empty() {
                drop_inst(&mut out, &ip.drops, inst.offset, state_from(k + 1));
            }
        }
        let here = out.insts.len() as u32;
        let succ = data.term.successors();
        let mut suspend_args = None;
        let kind = match &data.term {
            Terminator::Jump(c) => LKind::Jump(edge(&mut out, c, here, false, &plan.edge_drops[0])),
            Terminator::Branch {
                cond,
                then_to,
                else_to,
            } => LKind::Branch {
                cond: r(cond),
                then_edge: edge(&mut out, then_to, here, false, &plan.edge_drops[0]),
                else_edge: edge(&mut out, else_to, here, false, &plan.edge_drops[1]),
            },
            Terminator::Return(v) => LKind::Return {
                reg: r(v),
                kept: data
                    .term_state
                    .is_some_and(|s| f.states[s as usize].contains(v)),
            },
            Terminator::Suspend { value, resume } => {
                // The frame takes the arguments, in its own layout; nothing else
                // survives in registers (resume blocks' parameters are never pruned).
                debug_assert!(live_in[&resume.block]
                    .iter()
                    .all(|v| kept.contains(v) || f.blocks[resume.block].params.contains(v)));
                let args = out.operands.len() as u32;
                out.operands.extend(resume.args.iter().map(r));
                out.last_use.extend(resume.args.iter().map(|_| false));
                let params: Vec<u32> = f.blocks[resume.block].params.iter().map(r).collect();
                for &p in &params {
                    out.owning[p as usize] = true;
                }
                let mut release: Vec<u32> = resume
                    .args
                    .iter()
                    .filter(|v| !kept.contains(v))
                    .map(r)
                    .collect();
                release.sort_unstable();
                release.dedup();
                let lasti: Vec<u32> = (0..resume.args.len() as u32)
                    .filter(|&k| lasti_values.contains(&resume.args[k as usize]))
                    .collect();
                let send = suspend::delegates(f, resume.block, term_offset, resume.args.len());
                let slots = &out.operands[args as usize..];
                let in_place = value.is_some()
                    && send.is_none()
                    && lasti.is_empty()
                    && release.len() == slots.len()
                    && params.len() == slots.len() + 1;
                out.suspensions.push(Suspension {
                    offset: term_offset,
                    resume: start[&resume.block],
                    params,
                    release,
                    lasti,
                    keeps_value: value.as_ref().is_some_and(|v| kept.contains(v)),
                    send,
                    in_place,
                });
                suspend_args = Some((args, resume.args.len() as u32));
                LKind::Suspend {
                    value: value.as_ref().map_or(NO_VALUE, r),
                    index: out.suspensions.len() as u32 - 1,
                }
            }
            Terminator::Unreachable => LKind::Unreachable,
        };
        debug_assert_eq!(succ.len(), plan.edge_drops.len());
        let (args, nargs) = suspend_args.unwrap_or((0, 0));
        out.insts.push(LInst {
            kind,
            dst: 0,
            args,
            nargs,
            unwind: NO_EDGE,
            offset: term_offset,
            state: data.term_state.unwrap_or(NO_STATE),
        });
        let n = out.insts.len() - first;
        out.in_cycle.extend(std::iter::repeat_n(cyclic[bi], n));
    }
    for &(_, d, _) in &out.moves {
        out.owning[d as usize] = true;
    }
    out.reused = vec![false; out.nregs as usize];
    out.reused[tmp as usize] = true;
    // Values of one class (`coalesce`) are never live at once and each is released where
    // it dies, so their register is empty when the next one is written, but where an op
    // writes its result over a value it reads (below); other sharing
    // (`loop_carried`, resume parameters) counts.
    let mut others = vec![0u8; out.nregs as usize];
    let mut in_class = vec![false; out.nregs as usize];
    for (v, &x) in &reg {
        match class.contains_key(v) {
            true => in_class[x as usize] = true,
            false => others[x as usize] = others[x as usize].saturating_add(1),
        }
        if kept.contains(v) {
            out.reused[x as usize] = true;
        }
    }
    for x in 0..out.nregs as usize {
        if others[x] >= 2 || (others[x] == 1 && in_class[x]) {
            out.reused[x] = true;
        }
    }
    // (What the op reads includes its frame state: a local the op's result rebinds may
    // share the result's register too, and the write must release it.)
    for (_, d) in f.insts.iter() {
        if let [res] = d.results.as_slice() {
            if coalesce::writes_after_reading(d.op)
                && reads(f, d).any(|a| reg.get(&a) == reg.get(res))
            {
                out.reused[r(res) as usize] = true;
            }
        }
    }
    for &(_, d, _) in &out.moves {
        out.reused[d as usize] = true;
    }
    for e in &out.edges {
        out.reused[e.exc_reg as usize] = true;
    }
    // In the order CPython's frame clear releases them: the returned state's locals in
    // slot order, then the rest (constants).
    let mut returned: Vec<Value> = Vec::new();
    for &b in &f.layout {
        let data = &f.blocks[b];
        if let (Terminator::Return(_), Some(s)) = (&data.term, data.term_state) {
            returned.extend_from_slice(&f.states[s as usize]);
        }
    }
    // (A returned value that is no local moves out: its register is empty then.)
    let mut consts: Vec<Value> = kept.iter().copied().collect();
    consts.sort_unstable_by_key(|v| reg.get(v).copied());
    returned.extend(consts);
    let mut at_return = vec![false; out.nregs as usize];
    for x in returned.iter().filter_map(|v| reg.get(v).copied()) {
        if out.owning[x as usize] && !std::mem::replace(&mut at_return[x as usize], true) {
            out.at_return.push(x);
        }
    }
    out.unwound = (0..out.nregs)
        .rev()
        .filter(|&x| out.owning[x as usize] && !at_return[x as usize])
        .collect();
    out.states = f
        .states
        .iter()
        .map(|st| st.iter().map(r).collect())
        .collect();
    out.prologue = f.blocks[entry_block]
        .insts
        .iter()
        .filter(|&&i| matches!(f.insts[i].op, Op::Const { .. } | Op::Null {} | Op::Lasti {}))
        .map(|i| out.pc_of[i])
        .collect();
    let last = out.suspensions.iter().map(|s| s.offset as usize + 1).max();
    out.suspension_index = vec![0; last.unwrap_or(0)];
    for (i, s) in out.suspensions.iter().enumerate() {
        out.suspension_index[s.offset as usize] = i as u32 + 1;
    }
    out
}

/// The values an instruction reads: its operands, then its frame state's.
fn reads<'f>(f: &'f Function, inst: &'f tiered_ir::InstData) -> impl Iterator<Item = Value> + 'f {
    let state: &[Value] = match inst.state {
        Some(s) => &f.states[s as usize],
        None => &[],
    };
    inst.args.iter().chain(state).copied()
}

/// The values block `b`'s terminator reads: a Branch's condition; a Return's value and its
/// frame state's (the locals the frame holds until it is cleared).
fn term_reads(f: &Function, b: Block) -> Vec<Value> {
    let data = &f.blocks[b];
    match &data.term {
        Terminator::Branch { cond, .. } => vec![*cond],
        Terminator::Return(v) => {
            let mut out = vec![*v];
            if let Some(s) = data.term_state {
                out.extend_from_slice(&f.states[s as usize]);
            }
            out
        }
        Terminator::Suspend { value, resume } => {
            value.iter().chain(&resume.args).copied().collect()
        }
        Terminator::Jump(_) | Terminator::Unreachable => vec![],
    }
}

/// Orders a parallel copy `dst_i <- src_i` into sequential moves, using `tmp` to break
/// cycles; moves onto themselves vanish.
fn sequentialize(parallel: Vec<(u32, u32)>, tmp: u32) -> Vec<(u32, u32)> {
    let mut pending: Vec<(u32, u32)> = parallel.into_iter().filter(|(s, d)| s != d).collect();
    let mut out = Vec::with_capacity(pending.len() + 1);
    while !pending.is_empty() {
        // A move whose destination no pending move still reads can go now.
        match (0..pending.len()).find(|&i| !pending.iter().any(|(s, _)| *s == pending[i].1)) {
            Some(i) => out.push(pending.remove(i)),
            None => {
                // Only cycles remain: park one source in tmp and read it from there.
                let s = pending[0].0;
                out.push((s, tmp));
                for m in pending.iter_mut() {
                    if m.0 == s {
                        m.0 = tmp;
                    }
                }
            }
        }
    }
    out
}

/// Loop-carried values that can live in their loop parameter's register, so the back
/// edge has no move (and native code no load-store round trip): `s = s + x` in a loop
/// body writes `s`'s register directly, and so does a `for` loop's next item. For a back
/// edge (a jump or a branch to a loop header `H` laid out before the block) giving `a` to
/// parameter `p`, `a` must be the result of a Binary or the item of a ForIter (tier 1 and
/// their templates compute results before writing them, so reading `p` meanwhile, as an
/// operand or for the frame state, and writing the same register is safe), and `p` must
/// be dead once `a` is made: no later instruction of `a`'s block reads it (operands,
/// frame states, the handlers they may raise to), nor its terminator, nor any successor
/// (except through this very edge argument). Returns `a -> (p, into_param)`: a Binary's
/// result is written into `p`'s register (`into_param`); `p` takes a ForIter item's
/// register instead, since an op's results must stay consecutive.
fn loop_carried(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
) -> HashMap<Value, (Value, bool)> {
    let pos: HashMap<Block, usize> = f.layout.iter().enumerate().map(|(i, &b)| (b, i)).collect();
    // Where each instruction result is defined: (block, index in it).
    let mut def: HashMap<Value, (Block, usize)> = HashMap::default();
    for &b in &f.layout {
        for (k, &i) in f.blocks[b].insts.iter().enumerate() {
            for &r in &f.insts[i].results {
                def.insert(r, (b, k));
            }
        }
    }
    let mut shared = HashMap::default();
    let mut taken: HashSet<Value> = HashSet::default();
    for (bi, &b) in f.layout.iter().enumerate() {
        let term = &f.blocks[b].term;
        if matches!(
            term,
            Terminator::Return(_) | Terminator::Unreachable | Terminator::Suspend { .. }
        ) {
            continue;
        }
        let succ = term.successors();
        // Only back edges: the parameter's register is assigned before the body's values.
        for (ci, c) in succ.iter().enumerate().filter(|(_, c)| pos[&c.block] <= bi) {
            for (k, (&a, &p)) in c.args.iter().zip(&f.blocks[c.block].params).enumerate() {
                let Some(&(d, at)) = def.get(&a) else {
                    continue;
                };
                let inst = &f.insts[f.blocks[d].insts[at]];
                let computes_first = match inst.op {
                    Op::Binary { .. } => true,
                    Op::ForIter {} => inst.results[0] == a,
                    _ => false,
                };
                if !computes_first
                    || taken.contains(&p)
                    || shared.contains_key(&a)
                    || pos[&d] < pos[&c.block]
                {
                    continue;
                }
                // A ForIter ending its block leaves the item register alone when the
                // iterator is exhausted, so the side taken then may still read `p`
                // there (the loop variable keeps its last item after the loop).
                let exhausted = match (&inst.op, &f.blocks[d].term) {
                    (Op::ForIter {}, Terminator::Branch { cond, .. })
                        if *cond == inst.results[1] && at + 1 == f.blocks[d].insts.len() =>
                    {
                        Some(0)
                    }
                    _ => None,
                };
                if dead_after(f, live_in, d, at, p, (b, ci, k), exhausted) {
                    shared.insert(a, (p, inst.results.len() == 1));
                    taken.insert(p);
                }
            }
        }
    }
    shared
}

/// Whether `p` is dead after instruction `at` of block `d` (see `loop_carried`), where
/// `edge` (block, successor index, argument index) is the one argument that may pass it,
/// and `d`'s successor `ignored`, if any, may read it too.
fn dead_after(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
    d: Block,
    at: usize,
    p: Value,
    edge: (Block, usize, usize),
    ignored: Option<usize>,
) -> bool {
    let insts = &f.blocks[d].insts;
    let read_later = insts[at + 1..]
        .iter()
        .any(|&j| needs(f, live_in, &f.insts[j], p));
    let term = &f.blocks[d].term;
    let cond_reads = term_reads(f, d).contains(&p);
    let succ_reads = term.successors().iter().enumerate().any(|(cj, s)| {
        let reads = s
            .args
            .iter()
            .enumerate()
            .any(|(j, &x)| x == p && (d, cj, j) != edge)
            || live_in[&s.block].contains(&p);
        reads && Some(cj) != ignored
    });
    !read_later && !cond_reads && !succ_reads
}

/// Whether instruction `inst` reads `v` (an operand, its frame state), or its handler
/// does if it raises.
fn needs(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
    inst: &tiered_ir::InstData,
    v: Value,
) -> bool {
    reads(f, inst).any(|x| x == v)
        || inst
            .unwind
            .as_ref()
            .is_some_and(|u| u.args.contains(&v) || live_in[&u.block].contains(&v))
}

/// Values live on entry to each block (block parameters are defined at entry; an unwind
/// edge makes its handler a successor of the whole block, conservatively).
fn liveness(f: &Function) -> HashMap<Block, HashSet<Value>> {
    let mut gen: HashMap<Block, HashSet<Value>> = HashMap::default();
    let mut kill: HashMap<Block, HashSet<Value>> = HashMap::default();
    for &b in &f.layout {
        let data = &f.blocks[b];
        let mut defined: HashSet<Value> = data.params.iter().copied().collect();
        let mut used = HashSet::default();
        let mut use_v = |v: Value, defined: &HashSet<Value>| {
            if !defined.contains(&v) {
                used.insert(v);
            }
        };
        for &i in &data.insts {
            let inst = &f.insts[i];
            for a in reads(f, inst) {
                use_v(a, &defined);
            }
            if let Some(u) = &inst.unwind {
                for &a in &u.args {
                    use_v(a, &defined);
                }
            }
            defined.extend(inst.results.iter().copied());
        }
        for v in term_reads(f, b) {
            use_v(v, &defined);
        }
        for c in data.term.successors() {
            for &a in &c.args {
                use_v(a, &defined);
            }
        }
        gen.insert(b, used);
        kill.insert(b, defined);
    }
    let mut live_in: HashMap<Block, HashSet<Value>> =
        f.layout.iter().map(|&b| (b, gen[&b].clone())).collect();
    // Successors once each (an unwind edge per raising instruction names the same
    // handler many times), and predecessors, for a worklist: a block is looked at again
    // only when a successor's live-ins grew.
    let mut succs: HashMap<Block, Vec<Block>> = HashMap::default();
    let mut preds: HashMap<Block, Vec<Block>> = HashMap::default();
    for &b in &f.layout {
        let mut s: Vec<Block> = Vec::new();
        for c in f.edges_from(b) {
            if !s.contains(&c.block) {
                s.push(c.block);
                preds.entry(c.block).or_default().push(b);
            }
        }
        succs.insert(b, s);
    }
    // Last block first, as the flow goes backwards.
    let mut work: Vec<Block> = f.layout.clone();
    let mut queued: HashSet<Block> = f.layout.iter().copied().collect();
    let mut new = Vec::new();
    while let Some(b) = work.pop() {
        queued.remove(&b);
        let k = &kill[&b];
        let li = &live_in[&b];
        new.clear();
        for s in &succs[&b] {
            new.extend(
                live_in[s]
                    .iter()
                    .filter(|v| !k.contains(v) && !li.contains(v))
                    .copied(),
            );
        }
        if new.is_empty() {
            continue;
        }
        live_in
            .get_mut(&b)
            .expect("every block has an entry")
            .extend(new.iter().copied());
        for &p in preds.get(&b).into_iter().flatten() {
            if queued.insert(p) {
                work.push(p);
            }
        }
    }
    live_in
}

#[cfg(test)]
mod tests {
    use super::{lower, sequentialize};
    use tiered_ir::{BinOp, BlockCall, Function, Op, Terminator};

    /// `s = 0; loop: s = s + x (x a parameter); if s: continue, else return s`, with
    /// `read_old` making the body also read the old `s` after the addition.
    fn accumulate(read_old: bool) -> Function {
        let mut f = Function::new("acc");
        let entry = f.entry();
        let x = f.add_param(entry);
        let head = f.add_block(2);
        let s = f.add_param(head);
        let body = f.add_block(4);
        let exit = f.add_block(8);
        let r = f.add_param(exit);
        f.blocks[entry].term = Terminator::Jump(BlockCall {
            block: head,
            args: vec![x],
        });
        f.blocks[head].term = Terminator::Jump(BlockCall {
            block: body,
            args: vec![],
        });
        let add = Op::Binary { op: BinOp::Add };
        let i = f.push_inst(body, add, vec![s, x], None, 4);
        let new = f.insts[i].results[0];
        let cond = if read_old {
            let j = f.push_inst(body, add, vec![s, s], None, 5);
            f.insts[j].results[0]
        } else {
            new
        };
        f.blocks[body].term = Terminator::Branch {
            cond,
            then_to: BlockCall {
                block: head,
                args: vec![new],
            },
            else_to: BlockCall {
                block: exit,
                args: vec![new],
            },
        };
        f.blocks[exit].term = Terminator::Return(r);
        f
    }

    #[test]
    fn loop_carried_result_shares_its_parameters_register() {
        let lin = lower(&accumulate(false));
        // The back edge moves nothing; the exit edge still moves the sum out.
        let back = lin.edges.iter().find(|e| e.backward).expect("a back edge");
        assert_eq!(back.moves_len, 0, "{lin:?}");
    }

    #[test]
    fn old_value_still_read_keeps_its_own_register() {
        let lin = lower(&accumulate(true));
        let back = lin.edges.iter().find(|e| e.backward).expect("a back edge");
        assert_eq!(back.moves_len, 1, "{lin:?}");
    }

    /// `s = x; loop: if c: s = s + x (left) else: (right); merge(s); if s: back to the
    /// loop, else return s`: the merge's parameter takes the sum on one side and `s` on
    /// the other, the loop's takes the merge's.
    fn accumulate_on_one_side() -> Function {
        let mut f = Function::new("acc");
        let entry = f.entry();
        let x = f.add_param(entry);
        let c = f.add_param(entry);
        let head = f.add_block(2);
        let s = f.add_param(head);
        let left = f.add_block(4);
        let right = f.add_block(6);
        let merge = f.add_block(8);
        let m = f.add_param(merge);
        let exit = f.add_block(10);
        let call = |block, args| BlockCall { block, args };
        f.blocks[entry].term = Terminator::Jump(call(head, vec![x]));
        f.blocks[head].term = Terminator::Branch {
            cond: c,
            then_to: call(left, vec![]),
            else_to: call(right, vec![]),
        };
        let i = f.push_inst(left, Op::Binary { op: BinOp::Add }, vec![s, x], None, 4);
        let sum = f.insts[i].results[0];
        f.blocks[left].term = Terminator::Jump(call(merge, vec![sum]));
        f.blocks[right].term = Terminator::Jump(call(merge, vec![s]));
        f.blocks[merge].term = Terminator::Branch {
            cond: m,
            then_to: call(head, vec![m]),
            else_to: call(exit, vec![]),
        };
        f.blocks[exit].term = Terminator::Return(m);
        f
    }

    #[test]
    fn merged_values_share_one_register() {
        let lin = lower(&accumulate_on_one_side());
        // Only the entry's edge moves (`x` stays live: the sum reads it).
        let moving: Vec<_> = lin.edges.iter().filter(|e| e.moves_len > 0).collect();
        assert_eq!(moving.len(), 1, "{lin:?}");
        assert_eq!(moving[0].target, 1, "{lin:?}");
    }

    #[test]
    fn swap_uses_the_scratch_register() {
        let seq = sequentialize(vec![(1, 2), (2, 1)], 9);
        let mut regs = [0, 10, 20, 0, 0, 0, 0, 0, 0, 0];
        for (s, d) in seq {
            regs[d as usize] = regs[s as usize];
        }
        assert_eq!((regs[1], regs[2]), (20, 10));
    }

    #[test]
    fn chains_run_back_to_front() {
        let seq = sequentialize(vec![(1, 2), (2, 3), (3, 3)], 9);
        assert_eq!(seq, vec![(2, 3), (1, 2)]);
    }
}
