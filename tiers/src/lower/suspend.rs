//! Lowering of generators' suspensions: where each resumes (`Suspension`), which values
//! are a handler's lasti, and resume blocks' registers.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use tiered_ir::Block;
use tiered_ir::{Function, Op, Terminator, Value};

/// Where a generator suspended by an `LKind::Suspend` continues (`generator`).
#[derive(Clone, Debug)]
pub struct Suspension {
    /// The bytecode offset of its YIELD_VALUE or RETURN_GENERATOR (the frame's
    /// `prev_instr` while suspended there).
    pub offset: u32,
    /// The instruction the generator resumes at.
    pub resume: u32,
    /// The registers of the resume block's parameters, in frame order: one per slot the
    /// suspension stored, then the value sent in.
    pub params: Vec<u32>,
    /// The registers the suspension empties once the frame has their values: its
    /// operands', each once, but the constants' (every other value died before it).
    pub release: Vec<u32>,
    /// The slots that hold a handler's lasti (`Op::Lasti`, NULL in registers): CPython's
    /// frame has an int there, which its RERAISE reads.
    pub lasti: Vec<u32>,
    /// Whether the yielded value is a constant's (it keeps its register, which the
    /// generator's later steps read: only a copy leaves).
    pub keeps_value: bool,
    /// For a `yield from`'s or an `await`'s own yield (`delegates`), the bytecode offset of
    /// its Send: resuming there only hands the value sent in to that Send, with the frame's
    /// top slot as the receiver, so a step can take the Send's step first
    /// (`generator::delegate`).
    pub send: Option<u32>,
    /// Whether the generator's values stay in its register file while it is suspended
    /// here (`generator::held`) instead of moving into the frame: a plain yield (no
    /// delegate, no lasti slot) whose slots are registers of their own (no constant's, none
    /// twice). The suspension moves each slot's value to the register of its resume
    /// parameter (most are the same register: `suspend::coalesce_resume_params`), where
    /// the resumption's code reads it. Only generators' code (`registry` clears it for
    /// coroutines' and async generators').
    pub in_place: bool,
}

/// The offset of the Send the suspension at bytecode `offset` (resuming at block `resume`
/// with `nslots` frame slots) delegates to, if it does: its resume block does nothing but
/// check for an exception thrown in (Thrown, on the value sent in) and jump to a block
/// that starts with a Send right before the yield (3.11's SEND; YIELD_VALUE), whose
/// receiver is the frame's top slot and whose value is what Thrown passed on. Nothing runs
/// between the resumption and that Send, which is what lets a step do the Send's work
/// before resuming (or instead).
pub(crate) fn delegates(f: &Function, resume: Block, offset: u32, nslots: usize) -> Option<u32> {
    let data = &f.blocks[resume];
    let (&[thrown], Terminator::Jump(to)) = (&data.insts[..], &data.term) else {
        return None;
    };
    let t = &f.insts[thrown];
    let target = &f.blocks[to.block];
    let s = target.insts.first().map(|&i| &f.insts[i])?;
    if !matches!(t.op, Op::Thrown {})
        || !matches!(s.op, Op::Send {})
        || s.offset + 1 != offset
        || nslots == 0
        || data.params.len() != nslots + 1
        || t.args[..] != [data.params[nslots]]
    {
        return None;
    }
    // What the jump passes to the Send's operands (the target's parameters).
    let passed = |v: Value| {
        let k = target.params.iter().position(|&p| p == v)?;
        to.args.get(k).copied()
    };
    let passes = passed(s.args[0]) == Some(data.params[nslots - 1])
        && passed(s.args[1]) == Some(t.results[0]);
    passes.then_some(s.offset)
}

/// The values that are a handler's lasti (`Op::Lasti`) wherever they come from: its
/// results, and parameters all of whose incoming values are (a fixpoint from "all are").
pub(super) fn lasti_values(f: &Function) -> HashSet<Value> {
    let mut out: HashSet<Value> = f
        .insts
        .values()
        .filter(|d| matches!(d.op, Op::Lasti {}))
        .flat_map(|d| d.results.iter().copied())
        .collect();
    if out.is_empty() {
        return out;
    }
    let mut incoming: HashMap<Value, Vec<Value>> = HashMap::default();
    for &b in &f.layout {
        for c in f.edges_from(b) {
            for (a, p) in c.args.iter().zip(&f.blocks[c.block].params) {
                incoming.entry(*p).or_default().push(*a);
            }
        }
    }
    let mut params: HashSet<Value> = incoming.keys().copied().collect();
    loop {
        let not: Vec<Value> = params
            .iter()
            .filter(|p| {
                !incoming[p]
                    .iter()
                    .all(|a| a == *p || out.contains(a) || params.contains(a))
            })
            .copied()
            .collect();
        if not.is_empty() {
            break;
        }
        for p in not {
            params.remove(&p);
        }
    }
    out.extend(params);
    out
}

/// Gives a resume block's parameter the register of the parameter its jump passes it to,
/// so a generator resumes with its values where the rest of the code (a loop) wants them
/// and the jump moves nothing. A resumption starts with every register empty and the
/// resume block writes none of those registers, so sharing is safe as long as the value
/// goes to that one parameter and is not read past the jump.
pub(super) fn coalesce_resume_params(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
    reg: &mut HashMap<Value, u32>,
) {
    for &b in &f.layout {
        let data = &f.blocks[b];
        let Terminator::Jump(c) = &data.term else {
            continue;
        };
        if !data.is_resume || live_in[&c.block].iter().any(|v| data.params.contains(v)) {
            continue;
        }
        let results: HashSet<u32> = data
            .insts
            .iter()
            .flat_map(|&i| {
                f.insts[i]
                    .results
                    .iter()
                    .filter_map(|v| reg.get(v).copied())
            })
            .collect();
        for &p in &data.params {
            let mut at = c.args.iter().enumerate().filter(|(_, &a)| a == p);
            let (Some((k, _)), None) = (at.next(), at.next()) else {
                continue;
            };
            if let Some(&q) = reg.get(&f.blocks[c.block].params[k]) {
                if !results.contains(&q) {
                    reg.insert(p, q);
                }
            }
        }
    }
}
