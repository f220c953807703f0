//! Which linear instruction each byte of native code implements, hot or cold (slow
//! paths, which Cranelift places after all hot code).

use cranelift_codegen::ir::{Function, SourceLoc};
use cranelift_codegen::CompiledCode;

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
/// instruction's code.
pub(super) fn bytes_per_instruction(code: &CompiledCode, n: usize) -> Vec<(u32, u32)> {
    let mut at = vec![(0u32, 0u32); n + 1];
    let mut attributed = 0;
    for loc in code.buffer.get_srclocs_sorted() {
        let pc = (loc.loc.bits() & !COLD) as usize;
        if loc.loc.is_default() || pc >= n {
            continue;
        }
        let bytes = loc.end - loc.start;
        match loc.loc.bits() & COLD {
            0 => at[pc].0 += bytes,
            _ => at[pc].1 += bytes,
        }
        attributed += bytes;
    }
    at[n].0 = (code.code_buffer().len() as u32).saturating_sub(attributed);
    at
}
