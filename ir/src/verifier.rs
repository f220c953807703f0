//! Checks the SSA invariants: every use is dominated by its definition, block calls match
//! their target's parameter count, op arities and result counts match the op table.
//! Run by tests and in debug builds after translation.

use crate::function::{Block, BlockCall, Function, ValueDef};
use crate::ops::Arity;
use petgraph::algo::dominators::simple_fast;
use std::collections::HashMap;

/// Verifies `f`; the error names the block/instruction and what is wrong.
pub fn verify(f: &Function) -> Result<(), String> {
    let (g, nodes) = f.cfg();
    let node_of: HashMap<Block, usize> =
        f.layout.iter().enumerate().map(|(i, &b)| (b, i)).collect();
    let doms = simple_fast(&g, nodes[0]);
    let dominates = |a: Block, b: Block| -> bool {
        let (Some(&ia), Some(&ib)) = (node_of.get(&a), node_of.get(&b)) else {
            return false;
        };
        match doms.dominators(nodes[ib]) {
            Some(mut it) => it.any(|n| n == nodes[ia]),
            None => true, // unreachable blocks impose nothing
        }
    };
    // Position of each instruction within its block, for same-block ordering.
    let mut pos = HashMap::new();
    let mut block_of = HashMap::new();
    for &b in &f.layout {
        for (k, &i) in f.blocks[b].insts.iter().enumerate() {
            pos.insert(i, k);
            block_of.insert(i, b);
        }
    }
    // `use_pos` is the index of the using instruction in `b` (len = the terminator).
    let check_use = |v, b: Block, use_pos: usize, what: &str| -> Result<(), String> {
        let def = f
            .values
            .get(v)
            .ok_or_else(|| format!("{what}: dangling value"))?;
        match *def {
            ValueDef::Param(db, _) => {
                if !dominates(db, b) {
                    return Err(format!("{what}: parameter of a non-dominating block"));
                }
            }
            ValueDef::Result(di, _) => {
                let db = *block_of
                    .get(&di)
                    .ok_or_else(|| format!("{what}: result of a removed instruction"))?;
                if db == b {
                    if pos[&di] >= use_pos {
                        return Err(format!("{what}: used before its definition"));
                    }
                } else if !dominates(db, b) {
                    return Err(format!("{what}: definition does not dominate use"));
                }
            }
        }
        Ok(())
    };
    let check_call = |c: &BlockCall,
                      implicit: usize,
                      b: Block,
                      use_pos: usize,
                      what: &str|
     -> Result<(), String> {
        let target = f
            .blocks
            .get(c.block)
            .ok_or_else(|| format!("{what}: jump to a missing block"))?;
        if c.args.len() + implicit != target.params.len() {
            return Err(format!(
                "{what}: passes {} arguments to a block of {} parameters",
                c.args.len() + implicit,
                target.params.len()
            ));
        }
        for &a in &c.args {
            check_use(a, b, use_pos, what)?;
        }
        Ok(())
    };
    for (bi, &b) in f.layout.iter().enumerate() {
        let data = &f.blocks[b];
        for (k, &i) in data.insts.iter().enumerate() {
            let inst = &f.insts[i];
            let what = format!("bb{bi} inst {k} ({})", inst.op.kind().name());
            if let Arity::Fixed(n) = inst.op.arity() {
                if inst.args.len() != n {
                    return Err(format!(
                        "{what}: takes {n} operands, has {}",
                        inst.args.len()
                    ));
                }
            }
            if inst.results.len() != inst.op.result_count() {
                return Err(format!("{what}: wrong number of results"));
            }
            for &a in &inst.args {
                check_use(a, b, k, &what)?;
            }
            if let Some(u) = &inst.unwind {
                // Exception edges carry the values live before the instruction ran.
                check_call(u, 1, b, k, &what)?;
                if !f.blocks[u.block].is_handler {
                    return Err(format!("{what}: unwinds to a block that is not a handler"));
                }
            }
        }
        let end = data.insts.len();
        let what = format!("bb{bi} terminator");
        for v in data.term.operands() {
            check_use(v, b, end, &what)?;
        }
        let suspends = matches!(data.term, crate::function::Terminator::Suspend { .. });
        for c in data.term.successors() {
            check_call(c, usize::from(suspends), b, end, &what)?;
            if suspends != f.blocks[c.block].is_resume {
                return Err(format!("{what}: only a Suspend enters a resume block"));
            }
            if f.blocks[c.block].is_handler {
                return Err(format!("{what}: normal jump into a handler"));
            }
        }
    }
    Ok(())
}
