//! Where native code goes: hot code together, slow paths after it; and which linear
//! instruction each byte of it implements.
//!
//! The emitter marks each slow path's first block cold (`set_cold_block`), and Cranelift
//! places cold blocks after all others. But a slow path often goes on in blocks of its
//! own before it rejoins the op's code (the call that boxes a number after a lazily
//! linked frame, the dealloc after one, an inlined callee's exits), and those were laid
//! out among the hot code. `sink_cold` makes every block that only slow paths reach cold
//! too: over richards' native code, hot bytes 165 KB -> 144 KB (cold 113 KB -> 131 KB),
//! for 0.4% more instructions run (the jumps back from slow paths); simulated
//! instruction-cache misses richards -0.5%, nqueens -3.2% (callgrind). Richards' native
//! code still misses the cache about 16M times a run where CPython's loop misses it 57K
//! times: what is left is the size of the hot code itself (`code_by_kind`).

use cranelift_codegen::flowgraph::ControlFlowGraph;
use cranelift_codegen::ir::{Function, SourceLoc};
use cranelift_codegen::CompiledCode;

/// Marks cold every block of `func` that its entry cannot reach without passing through
/// a cold block: code that only slow paths run goes after all hot code.
pub(super) fn sink_cold(func: &mut Function) {
    let Some(entry) = func.layout.entry_block() else {
        return;
    };
    let cfg = ControlFlowGraph::with_function(func);
    let mut hot = vec![false; func.dfg.num_blocks()];
    let mut work = vec![entry];
    hot[entry.as_u32() as usize] = true;
    while let Some(b) = work.pop() {
        for s in cfg.succ_iter(b) {
            let i = s.as_u32() as usize;
            if !hot[i] && !func.layout.is_cold(s) {
                hot[i] = true;
                work.push(s);
            }
        }
    }
    let sink: Vec<_> = func
        .layout
        .blocks()
        .filter(|b| !hot[b.as_u32() as usize] && !func.layout.is_cold(*b))
        .collect();
    for b in sink {
        func.layout.set_cold(b);
    }
}

/// The source location bit `mark_cold` sets on code in cold blocks.
const COLD: u32 = 1 << 31;

/// Marks the source location of every instruction in a cold block (`COLD`), so that
/// `bytes_per_instruction` can tell an instruction's hot code from its slow paths.
pub(super) fn mark_cold(func: &mut Function) {
    let cold: Vec<_> = func
        .layout
        .blocks()
        .filter(|&b| func.layout.is_cold(b))
        .collect();
    for b in cold {
        let insts: Vec<_> = func.layout.block_insts(b).collect();
        for i in insts {
            let loc = func.srcloc(i);
            if !loc.is_default() {
                func.set_srcloc(i, SourceLoc::new(loc.bits() | COLD));
            }
        }
    }
}

/// The bytes of `code` per linear instruction of its `n`, hot and cold (`mark_cold`),
/// then the rest (`code_at`), from the source locations `Emit::begin` gives each
/// instruction's code. Code between two located runs (the register allocator's moves,
/// spills and reloads, which carry no location) counts as the next run's: mostly the
/// moves of its operands into place and reloads after the call before it.
pub(super) fn bytes_per_instruction(code: &CompiledCode, n: usize) -> Vec<(u32, u32)> {
    let mut at = vec![(0u32, 0u32); n + 1];
    let mut attributed = 0;
    let mut end = 0;
    for loc in code.buffer.get_srclocs_sorted() {
        let pc = (loc.loc.bits() & !COLD) as usize;
        let from = std::mem::replace(&mut end, loc.end);
        if loc.loc.is_default() || pc >= n {
            continue;
        }
        // (Before the first run: the prologue's, the rest's.)
        let start = if from == 0 {
            loc.start
        } else {
            from.min(loc.start)
        };
        let bytes = loc.end - start;
        match loc.loc.bits() & COLD {
            0 => at[pc].0 += bytes,
            _ => at[pc].1 += bytes,
        }
        attributed += bytes;
    }
    at[n].0 = (code.code_buffer().len() as u32).saturating_sub(attributed);
    at
}

#[cfg(test)]
mod tests {
    use super::sink_cold;
    use crate::native::test_function;
    use cranelift_codegen::ir::InstBuilder;
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

    /// A slow path's blocks after its cold first one become cold (`cont`, `after`); a
    /// block hot code also reaches (`join`) stays hot, and so does everything the entry
    /// reaches on its own (`fast`).
    #[test]
    fn blocks_only_slow_paths_reach_go_cold() {
        let mut func = test_function::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let [entry, fast, slow, cont, after, join] = [(); 6].map(|_| b.create_block());
        b.set_cold_block(slow);
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let p = b.block_params(entry)[0];
        b.ins().brif(p, slow, &[], fast, &[]);
        b.switch_to_block(fast);
        b.ins().jump(join, &[]);
        b.switch_to_block(slow);
        b.ins().brif(p, cont, &[], join, &[]);
        b.switch_to_block(cont);
        b.ins().jump(after, &[]);
        b.switch_to_block(after);
        b.ins().jump(join, &[]);
        b.switch_to_block(join);
        b.ins().return_(&[p]);
        test_function::finish(b);
        sink_cold(&mut func);
        let cold = |bl| func.layout.is_cold(bl);
        assert_eq!(
            [entry, fast, slow, cont, after, join].map(cold),
            [false, false, true, true, true, false],
            "{}",
            func.display()
        );
    }
}
