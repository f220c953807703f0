//! Where each register dies: per instruction and edge, from the liveness `lower` computed.
//!
//! The walk goes backwards through a block keeping the live values and, per register, how
//! many live values hold it (registers are dense, so that is a vector). Each instruction
//! then costs what it reads, writes and, if it raises, what its handler keeps, rather than
//! a copy of everything live: copying and rehashing the live set at every instruction made
//! lowering a large function (argparse's `_parse_known_args`, 1,600 linear instructions,
//! most inside a `try`) take longer than compiling it.

use super::{reads, term_reads};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use tiered_ir::{Block, BlockCall, Function, Value};

/// What one instruction's liveness decides.
pub(super) struct InstPlan {
    /// Per operand: whether this is the value's last use (see `Linear::last_use`).
    pub(super) last_use: Vec<bool>,
    /// Registers whose values die once it has run (read here for the last time, or
    /// results nothing reads): released right after it, where CPython's own stack pops
    /// and stores would release them.
    pub(super) drops: Vec<u32>,
    /// Registers live as it starts that its handler does not get, released on its unwind
    /// edge if it raises.
    pub(super) unwind_drops: Vec<u32>,
}

/// Liveness of one block, per instruction and edge: where each value dies, so that its
/// register is released there, as CPython releases a local at `del`, rebinding or the
/// frame's end, and a temporary when the op that consumed it is done (a register kept
/// until it is next written, or until the exit, would delay `__del__`, weakref callbacks
/// and what `gc.collect()` finds).
pub(super) struct BlockPlan {
    /// Registers live into the block (or its parameters) that nothing in it reads: released
    /// before its first instruction.
    pub(super) entry_drops: Vec<u32>,
    /// Per instruction.
    pub(super) insts: Vec<InstPlan>,
    /// Per normal successor: registers live at the terminator that this edge's target
    /// does not get.
    pub(super) edge_drops: Vec<Vec<u32>>,
}

/// What the plans of one function share: its liveness, registers and, per edge target, the
/// registers it keeps whatever the edge passes.
pub(super) struct Planner<'a> {
    f: &'a Function,
    live_in: &'a HashMap<Block, HashSet<Value>>,
    /// The register each value owns: not the `kept` values' (never released early).
    owned: HashMap<Value, u32>,
    nregs: usize,
    /// Per edge target: the registers of its live-ins and parameters, sorted.
    kept_by_target: HashMap<Block, Vec<u32>>,
    /// `Live::held`'s and `Live::mark`'s vectors, all zero between blocks.
    held: Vec<u32>,
    mark: Vec<u8>,
}

/// The live values at a point of the backward walk, and per register how many of them
/// (values that own their register: not `kept`) hold it.
struct Live {
    values: HashSet<Value>,
    held: Vec<u32>,
    /// Per register, for the instruction being walked: 0 untouched, else whether no value
    /// live after the instruction held it (1) or one did (2); `touched` lists the
    /// registers marked, to clear them for the next instruction.
    mark: Vec<u8>,
    touched: Vec<u32>,
}

impl Live {
    /// Notes, before its count first changes at this instruction, whether register `r` was
    /// free after it.
    fn touch(&mut self, r: u32) {
        if self.mark[r as usize] == 0 {
            self.mark[r as usize] = if self.held[r as usize] == 0 { 1 } else { 2 };
            self.touched.push(r);
        }
    }

    /// Whether register `r` was free after the instruction (as `touch` noted).
    fn was_free(&self, r: u32) -> bool {
        self.mark[r as usize] == 1
    }

    /// Forgets the notes, for the next instruction.
    fn untouch(&mut self) {
        for &r in &self.touched {
            self.mark[r as usize] = 0;
        }
        self.touched.clear();
    }
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        f: &'a Function,
        live_in: &'a HashMap<Block, HashSet<Value>>,
        reg: &'a HashMap<Value, u32>,
        kept: &'a HashSet<Value>,
        nregs: u32,
    ) -> Planner<'a> {
        let owned = reg
            .iter()
            .filter(|(v, _)| !kept.contains(v))
            .map(|(&v, &r)| (v, r))
            .collect();
        Planner {
            f,
            live_in,
            owned,
            nregs: nregs as usize,
            kept_by_target: HashMap::default(),
            held: Vec::new(),
            mark: Vec::new(),
        }
    }

    /// The register value `v` owns: none for a `kept` value (never released early) or a
    /// value without one.
    fn owned_reg(&self, v: Value) -> Option<u32> {
        self.owned.get(&v).copied()
    }

    /// The registers edge target `block` keeps whatever the edge passes: its live-ins' and
    /// parameters', sorted.
    fn target_keeps(&mut self, block: Block) -> &[u32] {
        if !self.kept_by_target.contains_key(&block) {
            let f = self.f;
            let mut keeps: Vec<u32> = self.live_in[&block]
                .iter()
                .chain(&f.blocks[block].params)
                .filter_map(|&v| self.owned_reg(v))
                .collect();
            keeps.sort_unstable();
            keeps.dedup();
            self.kept_by_target.insert(block, keeps);
        }
        &self.kept_by_target[&block]
    }

    /// The registers held in `live` that edge `c` does not take to its target (its
    /// live-ins, the edge's arguments and its parameters), in ascending order.
    fn not_kept_by(&mut self, live: &Live, c: &BlockCall) -> Vec<u32> {
        let args: Vec<u32> = c.args.iter().filter_map(|&a| self.owned_reg(a)).collect();
        // The held registers: from the live values when they are few (a lookup each),
        // else by a scan of the counts (a few instructions per register).
        let mut held: Vec<u32> = match live.values.len() * 16 < live.held.len() {
            true => {
                let mut h: Vec<u32> = live
                    .values
                    .iter()
                    .filter_map(|&v| self.owned_reg(v))
                    .collect();
                h.sort_unstable();
                h.dedup();
                h
            }
            false => (0..live.held.len() as u32)
                .filter(|&r| live.held[r as usize] > 0)
                .collect(),
        };
        let keeps = self.target_keeps(c.block);
        held.retain(|r| keeps.binary_search(r).is_err() && !args.contains(r));
        held
    }

    fn insert(&self, live: &mut Live, v: Value) -> bool {
        let new = live.values.insert(v);
        if new {
            if let Some(r) = self.owned_reg(v) {
                live.touch(r);
                live.held[r as usize] += 1;
            }
        }
        new
    }

    fn remove(&self, live: &mut Live, v: Value) {
        if live.values.remove(&v) {
            if let Some(r) = self.owned_reg(v) {
                live.touch(r);
                live.held[r as usize] -= 1;
            }
        }
    }

    /// `b`'s `BlockPlan`. A value is live where a later instruction, frame state,
    /// terminator, successor or handler (if the instruction raises) reads it. Registers
    /// rather than values die: a register shared by two values (`loop_carried`) is live
    /// while either is; the values in `kept` are never released early.
    pub(super) fn plan_block(&mut self, b: Block) -> BlockPlan {
        let f = self.f;
        let live_in = self.live_in;
        let data = &f.blocks[b];
        let mut live = Live {
            values: HashSet::default(),
            held: std::mem::take(&mut self.held),
            mark: std::mem::take(&mut self.mark),
            touched: Vec::new(),
        };
        live.held.resize(self.nregs, 0);
        live.mark.resize(self.nregs, 0);
        let succ = data.term.successors();
        for c in &succ {
            for &v in live_in[&c.block].iter().chain(&c.args) {
                self.insert(&mut live, v);
            }
        }
        for v in term_reads(f, b) {
            self.insert(&mut live, v);
        }
        live.untouch();
        let edge_drops = succ.iter().map(|c| self.not_kept_by(&live, c)).collect();
        let mut insts = Vec::with_capacity(data.insts.len());
        // The values an instruction made live (first read there, walking backwards).
        let mut added: Vec<Value> = Vec::new();
        let mut last_handler: Option<Block> = None;
        for &i in data.insts.iter().rev() {
            let inst = &f.insts[i];
            // If the op raises, its handler still gets these.
            let unwind = inst.unwind.as_ref();
            let handler_reads = |a: &Value| {
                unwind.is_some_and(|u| u.args.contains(a) || live_in[&u.block].contains(a))
            };
            let last_use = inst
                .args
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    !live.values.contains(a)
                        && !handler_reads(a)
                        && !inst.args[k + 1..].contains(a)
                        && !inst.args[..k].contains(a)
                })
                .collect();
            added.clear();
            for &r in &inst.results {
                if let Some(x) = self.owned_reg(r) {
                    live.touch(x);
                }
                self.remove(&mut live, r);
            }
            // Its own frame state is read as it starts, like its operands: it does not keep
            // an operand from being consumed (CPython's in-place str concatenation too drops
            // the local's reference first); later instructions' states do.
            for v in reads(f, inst) {
                if self.insert(&mut live, v) {
                    added.push(v);
                }
            }
            // Top down, as CPython's unwinder pops the stack (registers are numbered in the
            // order their values are made).
            let unwind_drops = match unwind {
                Some(u) => {
                    let mut d = self.not_kept_by(&live, u);
                    d.reverse();
                    // The handler's live-ins are all live since the last instruction walked
                    // if that one raised to the same handler, but for this one's results:
                    // only those go back in (a `try` body's instructions share a handler).
                    let handler_in = &live_in[&u.block];
                    let again: &mut dyn Iterator<Item = &Value> =
                        match last_handler == Some(u.block) {
                            true => &mut inst.results.iter().filter(|r| handler_in.contains(r)),
                            false => &mut handler_in.iter(),
                        };
                    for &v in u.args.iter().chain(again) {
                        if self.insert(&mut live, v) {
                            added.push(v);
                        }
                    }
                    d
                }
                None => Vec::new(),
            };
            last_handler = unwind.map(|u| u.block);
            // What died here: results nothing reads and values first read here (those only
            // its handler would read die here too once it did not raise), whose registers no
            // value live after it holds.
            let mut drops: Vec<u32> = inst
                .results
                .iter()
                .chain(&added)
                .filter_map(|&v| self.owned_reg(v))
                .filter(|&r| live.was_free(r))
                .collect();
            drops.sort_unstable();
            drops.dedup();
            live.untouch();
            insts.push(InstPlan {
                last_use,
                drops,
                unwind_drops,
            });
        }
        insts.reverse();
        let mut entry_drops: Vec<u32> = live_in[&b]
            .iter()
            .chain(&data.params)
            .filter_map(|&v| self.owned_reg(v))
            .filter(|&r| live.held[r as usize] == 0)
            .collect();
        entry_drops.sort_unstable();
        entry_drops.dedup();
        // The counts back to zero for the next block (cheaper than a new vector each).
        for &v in &live.values {
            if let Some(r) = self.owned_reg(v) {
                live.held[r as usize] = 0;
            }
        }
        self.held = live.held;
        self.mark = live.mark;
        BlockPlan {
            entry_drops,
            insts,
            edge_drops,
        }
    }
}
