//! The text of `python -m tiered dump`: bytecode listing, then the IR.

use std::fmt::Write;
use tiered_frontend::decode::{decode, jump_target, opcode_name};
use tiered_tiers::runtime::Compiled;

/// Renders a compiled function.
pub fn render(c: &Compiled) -> String {
    let mut out = String::new();
    let info = &c.info;
    let _ = writeln!(out, "== bytecode of {} ==", info.qualname);
    match decode(&info.code) {
        Ok(instrs) => {
            let mut last_line = None;
            for i in instrs {
                let line = c.lines.line_at(i.offset);
                let l = if line != last_line && line.is_some() {
                    last_line = line;
                    format!("{:>5}", line.unwrap_or(0))
                } else {
                    "     ".into()
                };
                let target = jump_target(&i)
                    .map(|t| format!(" (to {t})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{l} {:>5} {:<28} {}{}",
                    i.offset,
                    opcode_name(i.opcode),
                    i.arg,
                    target
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  <cannot decode: {e}>");
        }
    }
    let _ = writeln!(out, "\n== IR ==");
    out.push_str(&tiered_ir::printer::print_function(&c.ir, &|o| {
        c.lines.line_at(o)
    }));
    if c.unsupported.is_empty() {
        let _ = writeln!(out, "\nruns in: tier 1 (interpreter)");
    } else {
        let _ = writeln!(out, "\nruns in: CPython (fallback), because:");
        for u in &c.unsupported {
            let _ = writeln!(out, "  {} at offset {}: {}", u.op, u.offset, u.reason);
        }
    }
    out
}
