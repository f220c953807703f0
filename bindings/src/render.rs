//! The text of `python -m tiered dump`: bytecode listing, then the IR.

use std::fmt::Write;
use tiered_frontend::decode::{decode, jump_target, opcode_name, Instr};
use tiered_frontend::opcodes::op;
use tiered_frontend::CodeInfo;
use tiered_ir::{BinOp, CmpOp};
use tiered_tiers::runtime::Compiled;

/// Renders a compiled function.
pub fn render(c: &Compiled, specs: &[std::rc::Rc<Compiled>], native: bool) -> String {
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
                    .or_else(|| arg_text(info, &i).map(|a| format!(" ({a})")))
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
        if specs.is_empty() {
            let _ = writeln!(
                out,
                "\nnot called yet: no specialization (quickened IR, native code) exists"
            );
        }
        // One specialization per argument-type signature seen, each with its own
        // quickening and native code.
        for spec in specs {
            let sig = spec.signature.as_deref().unwrap_or("(any)");
            let _ = writeln!(out, "\n== specialization for {sig}: quickened IR ==");
            out.push_str(&spec.quickened_ir_text());
            let _ = writeln!(
                out,
                "\n== specialization for {sig}: tier 2 (native) ==\n{}",
                spec.native_text(native)
            );
        }
        let tier = if specs.iter().any(|s| s.is_native()) {
            "tier 2 (native code) once hot, tier 1 before"
        } else {
            "tier 1 (interpreter); tier 2 once hot"
        };
        let _ = writeln!(out, "\nruns in: {tier}");
    } else {
        let _ = writeln!(out, "\nruns in: CPython (fallback), because:");
        for u in &c.unsupported {
            let _ = writeln!(out, "  {} at offset {}: {}", u.op, u.offset, u.reason);
        }
    }
    out
}

/// What an instruction's argument denotes, as `dis` shows it in parentheses.
fn arg_text(info: &CodeInfo, i: &Instr) -> Option<String> {
    let a = i.arg as usize;
    let local = |k: usize| info.local_names.get(k).cloned();
    let name = |k: usize| info.names.get(k).cloned();
    match i.opcode {
        op::LOAD_FAST
        | op::STORE_FAST
        | op::DELETE_FAST
        | op::LOAD_DEREF
        | op::STORE_DEREF
        | op::DELETE_DEREF
        | op::MAKE_CELL
        | op::LOAD_CLOSURE => local(a),
        op::LOAD_GLOBAL => name(a >> 1).map(|n| if a & 1 != 0 { format!("NULL + {n}") } else { n }),
        op::LOAD_ATTR
        | op::STORE_ATTR
        | op::DELETE_ATTR
        | op::LOAD_METHOD
        | op::STORE_GLOBAL
        | op::DELETE_GLOBAL
        | op::IMPORT_NAME
        | op::IMPORT_FROM => name(a),
        op::LOAD_CONST | op::KW_NAMES => info.consts.get(a).map(tiered_ir::printer::const_text),
        op::BINARY_OP => BinOp::from_oparg(i.arg).map(|b| b.symbol().to_string()),
        op::COMPARE_OP => CmpOp::from_oparg(i.arg).map(|c| c.symbol().to_string()),
        _ => None,
    }
}
