//! Lowers an SSA function to the interpreter's compact linear form: one register per SSA
//! value, instructions in a flat array, block parameters turned into move lists on edges.
//! The interpreter never touches petgraph or the slotmaps at run time.

use std::collections::HashMap;
use tiered_ir::{BlockCall, Function, Op, Terminator, Value};

/// "No unwind edge".
pub const NO_EDGE: u32 = u32::MAX;

/// What one linear instruction does.
#[derive(Clone, Copy, Debug)]
pub enum LKind {
    /// An IR op; results go to `dst..dst + n`.
    Op(Op),
    /// Take edge `0`.
    Jump(u32),
    /// Branch on register `cond`: edge `then_edge` if true, else `else_edge`.
    Branch {
        /// The condition register.
        cond: u32,
        /// Edge when true.
        then_edge: u32,
        /// Edge when false.
        else_edge: u32,
    },
    /// Return register `0`.
    Return(u32),
    /// Control cannot get here.
    Unreachable,
}

/// One linear instruction.
#[derive(Clone, Copy, Debug)]
pub struct LInst {
    /// What it does.
    pub kind: LKind,
    /// First result register.
    pub dst: u32,
    /// Start of its operand registers in `Linear::operands`.
    pub args: u32,
    /// Number of operands.
    pub nargs: u32,
    /// Unwind edge index, or `NO_EDGE`.
    pub unwind: u32,
    /// Bytecode offset, for line numbers.
    pub offset: u32,
}

/// A control edge: where to go and which registers to copy into the target's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    /// Target instruction index.
    pub target: u32,
    /// Range of `Linear::moves`.
    pub moves_start: u32,
    /// Number of moves.
    pub moves_len: u32,
    /// For unwind edges, the register receiving the exception.
    pub exc_reg: u32,
    /// Whether the edge goes backwards (a loop): where the interpreter polls for signals.
    pub backward: bool,
}

/// The compact linear form of a function.
#[derive(Debug, Default)]
pub struct Linear {
    /// Instructions; execution starts at 0.
    pub insts: Vec<LInst>,
    /// Operand registers.
    pub operands: Vec<u32>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// (source, destination) register pairs, performed as a parallel copy.
    pub moves: Vec<(u32, u32)>,
    /// Number of registers.
    pub nregs: u32,
    /// Registers `0..nparams` receive the arguments.
    pub nparams: u32,
}

/// Lowers `f` (which must have no `Unsupported` ops to be executable; they lower anyway).
pub fn lower(f: &Function) -> Linear {
    let mut reg: HashMap<Value, u32> = HashMap::new();
    let mut next = 0u32;
    for &b in &f.layout {
        for &p in &f.blocks[b].params {
            reg.insert(p, next);
            next += 1;
        }
        for &i in &f.blocks[b].insts {
            for &r in &f.insts[i].results {
                reg.insert(r, next);
                next += 1;
            }
        }
    }
    // Instruction index of each block's first instruction.
    let mut start = HashMap::new();
    let mut pc = 0u32;
    for &b in &f.layout {
        start.insert(b, pc);
        pc += f.blocks[b].insts.len() as u32 + 1;
    }
    let r = |v: &Value| reg.get(v).copied().unwrap_or(0);
    let mut out = Linear {
        nregs: next,
        nparams: f.blocks[f.entry()].params.len() as u32,
        ..Linear::default()
    };
    let edge = |out: &mut Linear, c: &BlockCall, from: u32, exc: bool| -> u32 {
        let params = &f.blocks[c.block].params;
        let moves_start = out.moves.len() as u32;
        for (a, p) in c.args.iter().zip(params.iter()) {
            let (s, d) = (r(a), r(p));
            if s != d {
                out.moves.push((s, d));
            }
        }
        let target = start[&c.block];
        out.edges.push(Edge {
            target,
            moves_start,
            moves_len: out.moves.len() as u32 - moves_start,
            exc_reg: if exc {
                params.last().map(r).unwrap_or(0)
            } else {
                0
            },
            backward: target <= from,
        });
        out.edges.len() as u32 - 1
    };
    for &b in &f.layout {
        for &i in &f.blocks[b].insts {
            let inst = &f.insts[i];
            let here = out.insts.len() as u32;
            let args = out.operands.len() as u32;
            out.operands.extend(inst.args.iter().map(r));
            let unwind = match &inst.unwind {
                Some(c) => edge(&mut out, c, here, true),
                None => NO_EDGE,
            };
            out.insts.push(LInst {
                kind: LKind::Op(inst.op),
                dst: inst.results.first().map(r).unwrap_or(0),
                args,
                nargs: inst.args.len() as u32,
                unwind,
                offset: inst.offset,
            });
        }
        let here = out.insts.len() as u32;
        let offset = f.blocks[b]
            .insts
            .last()
            .map(|&i| f.insts[i].offset)
            .unwrap_or(f.blocks[b].offset);
        let kind = match &f.blocks[b].term {
            Terminator::Jump(c) => LKind::Jump(edge(&mut out, c, here, false)),
            Terminator::Branch {
                cond,
                then_to,
                else_to,
            } => LKind::Branch {
                cond: r(cond),
                then_edge: edge(&mut out, then_to, here, false),
                else_edge: edge(&mut out, else_to, here, false),
            },
            Terminator::Return(v) => LKind::Return(r(v)),
            Terminator::Unreachable => LKind::Unreachable,
        };
        out.insts.push(LInst {
            kind,
            dst: 0,
            args: 0,
            nargs: 0,
            unwind: NO_EDGE,
            offset,
        });
    }
    out
}
