//! Block parameters that share a register with the values their edges pass them, so that
//! those edges move nothing.
//!
//! Every edge argument is a move from its register into the parameter's: in native code a
//! load of both registers, a test of what the parameter's held and its release, the store
//! and the source's clearing, about a dozen instructions and a cold block, on every pass of
//! a loop whose variable is set on one side of an `if` (`if c: s += x`: the merge's
//! parameter takes `s` from one side and the sum from the other, and the loop header's takes
//! the merge's). Two values whose lives do not overlap can have one register: each is
//! released where it dies, so the register is empty between them (as a register of one
//! value is between two runs of its loop). A parameter and an argument of its edge that do
//! not interfere, nor does anything else that shares with either, are put in one class,
//! which `lower` gives one register. `loop_carried`'s values, constants (never released
//! early), results of multi-result ops (their registers are consecutive) and the
//! parameters of handlers and resume blocks (written by the unwinder and the resumption)
//! stay out, and so do edges outside loops: such an edge moves once a call, no more often
//! than the values' ops write them, and a register several values share is cached and
//! read as one (`native::emit`'s choices per register): with every edge taking part,
//! richards ran 1.0% more instructions than with loops' alone.

use super::{needs, term_reads};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use tiered_ir::{Block, Function, Op, Value};

/// The most values one class gets: each merge tests every pair of the two classes.
const MAX_CLASS: usize = 16;

/// Where a value is defined.
#[derive(Clone, Copy)]
enum Def {
    /// On entry to the block (a parameter).
    Param(Block),
    /// By instruction `k` of the block.
    Inst(Block, usize),
}

/// Classes of values that can share one register: member -> the class's first member
/// (values in no class are absent). `excluded` are the values that keep a register of
/// their own or as `loop_carried` decided.
pub(super) fn share_registers(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
    excluded: &HashSet<Value>,
) -> HashMap<Value, Value> {
    let mut def: HashMap<Value, Def> = HashMap::default();
    for &b in &f.layout {
        for &p in &f.blocks[b].params {
            def.insert(p, Def::Param(b));
        }
        for (k, &i) in f.blocks[b].insts.iter().enumerate() {
            for &r in &f.insts[i].results {
                def.insert(r, Def::Inst(b, k));
            }
        }
    }
    // Edges in loops only: their moves run once per iteration.
    let cyclic = f.blocks_in_cycles();
    let entry = f.entry();
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    for (&b, _) in f.layout.iter().zip(&cyclic).filter(|(_, &hot)| hot) {
        for c in f.blocks[b].term.successors() {
            let t = &f.blocks[c.block];
            if c.block == entry || t.is_handler || t.is_resume {
                continue;
            }
            for (&a, &p) in c.args.iter().zip(&t.params) {
                if a != p && !excluded.contains(&a) && !excluded.contains(&p) {
                    pairs.push((a, p));
                }
            }
        }
    }
    let mut class: HashMap<Value, Value> = HashMap::default();
    let mut members: HashMap<Value, Vec<Value>> = HashMap::default();
    for (a, p) in pairs {
        let ca = class.get(&a).copied().unwrap_or(a);
        let cp = class.get(&p).copied().unwrap_or(p);
        if ca == cp {
            continue;
        }
        let ma = members.get(&ca).cloned().unwrap_or_else(|| vec![a]);
        let mp = members.get(&cp).cloned().unwrap_or_else(|| vec![p]);
        if ma.len() + mp.len() > MAX_CLASS
            || ma
                .iter()
                .any(|&x| mp.iter().any(|&y| interfere(f, live_in, &def, x, y)))
        {
            continue;
        }
        members.remove(&cp);
        for &y in &mp {
            class.insert(y, ca);
        }
        class.insert(ca, ca);
        let mut all = ma;
        all.extend(mp);
        members.insert(ca, all);
    }
    class
}

/// Whether op `op` reads everything it reads (operands, frame state) before it writes its
/// result, in tier 1 and in every template and slow path of native code alike, so that a
/// value it reads for the last time may share the result's register (`s = s + x` in a
/// loop's branch, `t = t.link` in a loop walking a list, then move nothing): a Binary (as
/// `loop_carried` relies on) and a LoadAttr (its guards and read, or the generic call, then
/// the one write; a property's getter runs before it). The write releases what it
/// overwrites: an operand, or the old value of a local the result rebinds (its frame state).
pub(super) fn writes_after_reading(op: Op) -> bool {
    matches!(op, Op::Binary { .. } | Op::LoadAttr { .. })
}

/// Whether `x` and `y` may be live at once: either is live where the other is defined
/// (two parameters of one block always are: both are defined on its entry).
fn interfere(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
    def: &HashMap<Value, Def>,
    x: Value,
    y: Value,
) -> bool {
    match (def[&x], def[&y]) {
        (Def::Param(b), Def::Param(c)) if b == c => true,
        (dx, dy) => live_at(f, live_in, x, dx, dy) || live_at(f, live_in, y, dy, dx),
    }
}

/// Whether `x` (defined at `dx`) is live at `at`: on a block's entry, or as an instruction
/// runs (being read by it counts, as its results must not overwrite a register it may still
/// read, unless it is a `writes_after_reading` op).
fn live_at(
    f: &Function,
    live_in: &HashMap<Block, HashSet<Value>>,
    x: Value,
    dx: Def,
    at: Def,
) -> bool {
    let (b, k) = match at {
        Def::Param(b) => return live_in[&b].contains(&x),
        Def::Inst(b, k) => (b, k),
    };
    let defined_here = match dx {
        Def::Param(c) => c == b,
        Def::Inst(c, j) if c == b => {
            if j > k {
                // Defined later in this block: not yet live (SSA: its definition
                // dominates every use).
                return false;
            }
            true
        }
        Def::Inst(..) => false,
    };
    if !defined_here && !live_in[&b].contains(&x) {
        return false;
    }
    let data = &f.blocks[b];
    let from = match writes_after_reading(f.insts[data.insts[k]].op) {
        true => k + 1,
        false => k,
    };
    data.insts[from..]
        .iter()
        .any(|&i| needs(f, live_in, &f.insts[i], x))
        || term_reads(f, b).contains(&x)
        || data
            .term
            .successors()
            .iter()
            .any(|s| s.args.contains(&x) || live_in[&s.block].contains(&x))
}
