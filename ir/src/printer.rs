//! The stable text form of a function: blocks `bb0..` and values `v0..` numbered in layout
//! order, constants printed by value. The dump tool and the snapshots use it.

use crate::function::{Block, BlockCall, ConstRepr, Function, Inst, Terminator, Value};
use std::collections::HashMap;
use std::fmt::Write;

/// A constant's printed form.
pub fn const_text(c: &ConstRepr) -> String {
    match c {
        ConstRepr::Singleton(s) => (*s).to_string(),
        ConstRepr::Int(i) => i.to_string(),
        ConstRepr::BigInt(s) => s.clone(),
        ConstRepr::Float(x) => {
            if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
                format!("{x:.1}")
            } else {
                format!("{x}")
            }
        }
        ConstRepr::Str(s) => format!("{s:?}"),
        ConstRepr::Other(t) => format!("<{t}>"),
    }
}

struct Names {
    blocks: HashMap<Block, usize>,
    values: HashMap<Value, usize>,
}

impl Names {
    fn of(f: &Function) -> Names {
        let mut blocks = HashMap::new();
        let mut values = HashMap::new();
        for (i, &b) in f.layout.iter().enumerate() {
            blocks.insert(b, i);
        }
        for &b in &f.layout {
            for &p in &f.blocks[b].params {
                let n = values.len();
                values.insert(p, n);
            }
            for &i in &f.blocks[b].insts {
                for &r in &f.insts[i].results {
                    let n = values.len();
                    values.insert(r, n);
                }
            }
        }
        Names { blocks, values }
    }
    fn v(&self, v: Value) -> String {
        match self.values.get(&v) {
            Some(n) => format!("v{n}"),
            None => "v?".to_string(),
        }
    }
    fn list(&self, vs: &[Value]) -> String {
        vs.iter().map(|&v| self.v(v)).collect::<Vec<_>>().join(", ")
    }
    fn call(&self, c: &BlockCall) -> String {
        let b = match self.blocks.get(&c.block) {
            Some(n) => format!("bb{n}"),
            None => "bb?".to_string(),
        };
        format!("{b}({})", self.list(&c.args))
    }
}

/// Prints a function. `line_of` maps a bytecode offset to its source line, if known.
pub fn print_function(f: &Function, line_of: &dyn Fn(u32) -> Option<u32>) -> String {
    print_annotated(f, line_of, &|_| None)
}

/// Prints a function with an optional note per instruction (the quickened variant a tier
/// chose for it, for example), shown as `Op[note]`.
pub fn print_annotated(
    f: &Function,
    line_of: &dyn Fn(u32) -> Option<u32>,
    note: &dyn Fn(Inst) -> Option<String>,
) -> String {
    let n = Names::of(f);
    let mut out = String::new();
    let _ = writeln!(out, "function {} {{", f.name);
    for &b in &f.layout {
        let data = &f.blocks[b];
        let _ = writeln!(
            out,
            "{}bb{}({}):  ; @{}",
            if data.is_handler {
                "handler "
            } else if data.is_resume {
                "resume "
            } else {
                ""
            },
            n.blocks[&b],
            n.list(&data.params),
            data.offset
        );
        let mut last_line = None;
        for &i in &data.insts {
            let inst = &f.insts[i];
            let mut line = String::from("    ");
            if !inst.results.is_empty() {
                line.push_str(&n.list(&inst.results));
                line.push_str(" = ");
            }
            line.push_str(inst.op.kind().name());
            if let Some(n) = note(i) {
                line.push('[');
                line.push_str(&n);
                line.push(']');
            }
            inst.op.fmt_imms(f, &mut line);
            if !inst.args.is_empty() {
                line.push_str(" (");
                line.push_str(&n.list(&inst.args));
                line.push(')');
            }
            if let Some(u) = &inst.unwind {
                line.push_str(" unwind ");
                line.push_str(&n.call(u));
            }
            let src = line_of(inst.offset);
            if src.is_some() && src != last_line {
                let _ = write!(line, "  ; line {}", src.unwrap_or(0));
                last_line = src;
            }
            let _ = writeln!(out, "{line}");
        }
        let term = match &data.term {
            Terminator::Jump(c) => format!("jump {}", n.call(c)),
            Terminator::Branch {
                cond,
                then_to,
                else_to,
            } => format!(
                "branch {}, {}, {}",
                n.v(*cond),
                n.call(then_to),
                n.call(else_to)
            ),
            Terminator::Return(v) => format!("return {}", n.v(*v)),
            Terminator::Suspend { value, resume } => match value {
                Some(v) => format!("yield {}, {}", n.v(*v), n.call(resume)),
                None => format!("return_generator {}", n.call(resume)),
            },
            Terminator::Unreachable => "unreachable".to_string(),
        };
        let _ = writeln!(out, "    {term}");
    }
    out.push_str("}\n");
    out
}
