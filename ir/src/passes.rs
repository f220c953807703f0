//! Clean-up passes over SSA functions: pruning the maximal-SSA block parameters the
//! frontend creates, and checks that can be proven unnecessary.

use crate::function::{Block, BlockCall, Function, Inst, Terminator, Value, ValueDef};
use crate::ops::Op;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Removes block parameters whose incoming arguments are all one value (or the parameter
/// itself), repeating until none is left; then renames uses.
pub fn prune_trivial_params(f: &mut Function) {
    let mut alias: HashMap<Value, Value> = HashMap::default();
    loop {
        // Incoming argument lists per block (borrowed: this runs once per round, and a
        // raising instruction's unwind edge passes the whole value stack).
        let mut incoming: HashMap<Block, Vec<&[Value]>> = HashMap::default();
        for &b in &f.layout {
            for c in f.edges_from(b) {
                incoming.entry(c.block).or_default().push(&c.args);
            }
        }
        let mut removed: Vec<(Block, usize)> = Vec::new();
        for &b in &f.layout[1..] {
            if f.blocks[b].is_resume {
                continue;
            }
            let params = &f.blocks[b].params;
            let calls = incoming.get(&b).map(|v| v.as_slice()).unwrap_or(&[]);
            let explicit = params.len() - usize::from(f.blocks[b].is_handler);
            for k in 0..explicit {
                let p = params[k];
                let mut only = None;
                let mut trivial = true;
                for args in calls {
                    let a = resolve(&alias, args[k]);
                    if a == p {
                        continue;
                    }
                    match only {
                        None => only = Some(a),
                        Some(o) if o == a => {}
                        Some(_) => {
                            trivial = false;
                            break;
                        }
                    }
                }
                if let (true, Some(v)) = (trivial, only) {
                    alias.insert(p, v);
                    removed.push((b, k));
                }
            }
        }
        if removed.is_empty() {
            break;
        }
        remove_params(f, &removed);
    }
    rename_uses(f, &alias);
    for p in alias.keys() {
        f.values.remove(*p);
    }
}

/// Follows an alias chain to the value that replaces `v`.
fn resolve(alias: &HashMap<Value, Value>, mut v: Value) -> Value {
    while let Some(&n) = alias.get(&v) {
        v = n;
    }
    v
}

/// Replaces every use of an aliased value by its replacement.
fn rename_uses(f: &mut Function, alias: &HashMap<Value, Value>) {
    if alias.is_empty() {
        return;
    }
    let layout = f.layout.clone();
    for &b in &layout {
        for i in f.blocks[b].insts.clone() {
            let inst = &mut f.insts[i];
            for a in inst.args.iter_mut() {
                *a = resolve(alias, *a);
            }
            if let Some(u) = inst.unwind.as_mut() {
                for a in u.args.iter_mut() {
                    *a = resolve(alias, *a);
                }
            }
        }
        let term = &mut f.blocks[b].term;
        if let Terminator::Branch { cond, .. } = term {
            *cond = resolve(alias, *cond);
        }
        if let Terminator::Return(v) | Terminator::Suspend { value: Some(v), .. } = term {
            *v = resolve(alias, *v);
        }
        for c in term.successors_mut() {
            for a in c.args.iter_mut() {
                *a = resolve(alias, *a);
            }
        }
    }
    for st in f.states.iter_mut() {
        for v in st.iter_mut() {
            *v = resolve(alias, *v);
        }
    }
}

/// Removes CheckBound on values that can never be NULL: arguments, op results, and block
/// parameters all of whose incoming values are never NULL (a fixpoint over the CFG).
pub fn remove_redundant_checks(f: &mut Function) {
    let mut maybe_null: HashSet<Value> = HashSet::default();
    for (_, inst) in f.insts.iter() {
        match inst.op {
            Op::Null {} | Op::Lasti {} => maybe_null.extend(inst.results.iter().copied()),
            // The method slot of LOAD_METHOD is NULL when the attribute is not a method.
            Op::LoadMethod { .. } => {
                maybe_null.insert(inst.results[0]);
            }
            _ => {}
        }
    }
    loop {
        let mut changed = false;
        for &b in &f.layout {
            for c in f.edges_from(b) {
                let params = &f.blocks[c.block].params;
                for (a, p) in c.args.iter().zip(params) {
                    if maybe_null.contains(a) && !maybe_null.contains(p) {
                        maybe_null.insert(*p);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut alias = HashMap::default();
    let layout = f.layout.clone();
    for b in layout {
        let insts = f.blocks[b].insts.clone();
        let mut kept = Vec::with_capacity(insts.len());
        for i in insts {
            let inst = &f.insts[i];
            if matches!(inst.op, Op::CheckBound { .. })
                && !maybe_null.contains(&resolve(&alias, inst.args[0]))
            {
                alias.insert(inst.results[0], resolve(&alias, inst.args[0]));
                f.insts.remove(i);
            } else {
                kept.push(i);
            }
        }
        f.blocks[b].insts = kept;
    }
    rename_uses(f, &alias);
    for p in alias.keys() {
        f.values.remove(*p);
    }
}

/// Removes an EvalBreaker that directly follows another with the same handler (a loop
/// body ending in a call statement or a yield: CALL or RESUME, then JUMP_BACKWARD; a
/// CheckBound between them may have gone). What the second would find set arrived after
/// the first looked: as if it had arrived a moment later, at the next check.
pub fn merge_eval_breakers(f: &mut Function) {
    for &b in &f.layout {
        let insts = std::mem::take(&mut f.blocks[b].insts);
        let mut kept: Vec<Inst> = Vec::with_capacity(insts.len());
        for i in insts {
            let repeat = matches!(f.insts[i].op, Op::EvalBreaker {})
                && kept.last().is_some_and(|&p| {
                    matches!(f.insts[p].op, Op::EvalBreaker {})
                        && f.insts[p].unwind == f.insts[i].unwind
                });
            if repeat {
                f.insts.remove(i);
            } else {
                kept.push(i);
            }
        }
        f.blocks[b].insts = kept;
    }
}

/// Removes parameters `(block, index)` and the matching argument of every edge into them.
fn remove_params(f: &mut Function, removed: &[(Block, usize)]) {
    let mut by_block: HashMap<Block, HashSet<usize>> = HashMap::default();
    for &(b, k) in removed {
        by_block.entry(b).or_default().insert(k);
    }
    let keep_unlisted = |ks: &HashSet<usize>, k: &mut usize| {
        let keep = !ks.contains(k);
        *k += 1;
        keep
    };
    let layout = f.layout.clone();
    for &b in &layout {
        let mut calls: Vec<&mut BlockCall> = f.blocks[b].term.successors_mut();
        for c in calls.iter_mut() {
            if let Some(ks) = by_block.get(&c.block) {
                let mut k = 0;
                c.args.retain(|_| keep_unlisted(ks, &mut k));
            }
        }
        for i in f.blocks[b].insts.clone() {
            if let Some(c) = f.insts[i].unwind.as_mut() {
                if let Some(ks) = by_block.get(&c.block) {
                    let mut k = 0;
                    c.args.retain(|_| keep_unlisted(ks, &mut k));
                }
            }
        }
    }
    for (b, ks) in &by_block {
        let mut k = 0;
        f.blocks[*b].params.retain(|_| keep_unlisted(ks, &mut k));
        for (idx, p) in f.blocks[*b].params.clone().into_iter().enumerate() {
            f.values[p] = ValueDef::Param(*b, idx);
        }
    }
}

/// Removes block parameters nothing reads: a parameter is live if an instruction or a
/// terminator uses it, or if it flows into a live parameter (a fixpoint). Loop-carried
/// locals that are never read again stop being copied around the loop.
pub fn remove_dead_params(f: &mut Function) {
    let mut live: HashSet<Value> = HashSet::default();
    // A frame state reads every local it names (locals() and tracebacks see them).
    for st in &f.states {
        live.extend(st.iter().copied());
    }
    for &b in &f.layout {
        for &i in &f.blocks[b].insts {
            live.extend(f.insts[i].args.iter().copied());
        }
        live.extend(f.blocks[b].term.operands());
        // The exception parameter of a handler is written by the unwinder, not by edges;
        // a resume block's parameters are the frame's slots.
        if f.blocks[b].is_handler {
            if let Some(&e) = f.blocks[b].params.last() {
                live.insert(e);
            }
        }
        if f.blocks[b].is_resume {
            live.extend(f.blocks[b].params.iter().copied());
        }
    }
    let entry = f.entry();
    live.extend(f.blocks[entry].params.iter().copied());
    loop {
        let mut changed = false;
        for &b in &f.layout {
            for c in f.edges_from(b) {
                for (a, p) in c.args.iter().zip(&f.blocks[c.block].params) {
                    if live.contains(p) && live.insert(*a) {
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut removed = Vec::new();
    for &b in &f.layout[1..] {
        for (k, p) in f.blocks[b].params.iter().enumerate() {
            if !live.contains(p) {
                removed.push((b, k));
            }
        }
    }
    let dead: Vec<Value> = removed
        .iter()
        .map(|&(b, k)| f.blocks[b].params[k])
        .collect();
    remove_params(f, &removed);
    for v in dead {
        f.values.remove(v);
    }
}
