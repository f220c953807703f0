//! A function in SSA form: blocks with parameters, instructions and terminators held in
//! slotmap arenas; the CFG is derived from terminators and exception edges as a petgraph graph.

use crate::kinds::{ConstIdx, LocalIdx, NameIdx};
use crate::ops::{ImmCtx, Op};
use petgraph::graph::{DiGraph, NodeIndex};
use slotmap::{new_key_type, SlotMap};

new_key_type! {
    /// A basic block.
    pub struct Block;
    /// An instruction.
    pub struct Inst;
    /// An SSA value: a block parameter or an instruction result.
    pub struct Value;
}

/// Where a value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// Parameter `index` of a block.
    Param(Block, usize),
    /// Result `index` of an instruction.
    Result(Inst, usize),
}

/// A jump to a block with arguments for its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockCall {
    /// The target.
    pub block: Block,
    /// One value per target parameter (for an exception edge: all but the last, which is
    /// the exception itself, supplied by the unwinder).
    pub args: Vec<Value>,
}

/// How a block ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminator {
    /// Unconditional jump.
    Jump(BlockCall),
    /// Two-way branch on a value produced by a truth-testing op (Truth, IsNone, Is, ...).
    Branch {
        /// The bool condition.
        cond: Value,
        /// Taken when the condition is true.
        then_to: BlockCall,
        /// Taken when it is false.
        else_to: BlockCall,
    },
    /// Return a value to the caller.
    Return(Value),
    /// Suspend a generator (YIELD_VALUE: `value` is yielded; RETURN_GENERATOR: `None`, the
    /// new generator is returned): the frame keeps `resume`'s arguments, which are the
    /// locals-plus slots then the value stack in CPython's layout, and the generator later
    /// continues at `resume`'s block, whose last parameter is the value sent in (supplied
    /// by the runtime, as a handler's exception is).
    Suspend {
        /// What is yielded (`None` for RETURN_GENERATOR).
        value: Option<Value>,
        /// Where the generator resumes, with the frame's contents.
        resume: BlockCall,
    },
    /// Control cannot reach here (after an op that always raises).
    Unreachable,
}

impl Terminator {
    /// The normal successors.
    pub fn successors(&self) -> Vec<&BlockCall> {
        match self {
            Terminator::Jump(c) => vec![c],
            Terminator::Branch {
                then_to, else_to, ..
            } => vec![then_to, else_to],
            Terminator::Suspend { resume, .. } => vec![resume],
            Terminator::Return(_) | Terminator::Unreachable => vec![],
        }
    }
    /// The normal successors, mutably.
    pub fn successors_mut(&mut self) -> Vec<&mut BlockCall> {
        match self {
            Terminator::Jump(c) => vec![c],
            Terminator::Branch {
                then_to, else_to, ..
            } => vec![then_to, else_to],
            Terminator::Suspend { resume, .. } => vec![resume],
            Terminator::Return(_) | Terminator::Unreachable => vec![],
        }
    }

    /// The values it reads besides its successors' arguments.
    pub fn operands(&self) -> Vec<Value> {
        match self {
            Terminator::Branch { cond, .. } => vec![*cond],
            Terminator::Return(v) => vec![*v],
            Terminator::Suspend { value, .. } => value.iter().copied().collect(),
            Terminator::Jump(_) | Terminator::Unreachable => vec![],
        }
    }
}

/// A basic block.
#[derive(Clone, Debug)]
pub struct BlockData {
    /// Parameters: the SSA form of merged locals and stack slots.
    pub params: Vec<Value>,
    /// Instructions in order.
    pub insts: Vec<Inst>,
    /// The block's end.
    pub term: Terminator,
    /// Bytecode offset (code units) the block starts at.
    pub offset: u32,
    /// Whether the block is an exception handler (entered with the exception as last param).
    pub is_handler: bool,
    /// Whether a generator resumes here (a Suspend's successor: entered from the frame,
    /// with the value sent in as last param). Its parameters are never pruned: each is a
    /// frame slot, and nothing else survives the suspension.
    pub is_resume: bool,
    /// A Return's frame state (see `InstData::state`): the locals the frame still holds as
    /// it returns. They count as read there, so they live until the function's exit,
    /// where CPython releases them too, and not only until their last use.
    pub term_state: Option<u32>,
    /// The bytecode offset of a Return's RETURN_VALUE (where the frame is as it returns:
    /// its line, for tracers and frame objects).
    pub term_offset: Option<u32>,
}

/// One instruction.
#[derive(Clone, Debug)]
pub struct InstData {
    /// What it does.
    pub op: Op,
    /// Operands.
    pub args: Vec<Value>,
    /// Results (as many as `op.result_count()`).
    pub results: Vec<Value>,
    /// Where an exception raised here goes; `None` means it leaves the function.
    pub unwind: Option<BlockCall>,
    /// The bytecode offset (code units) it came from, for line numbers and errors.
    pub offset: u32,
    /// The frame state before it runs: an index into `Function::states` (the value of each
    /// locals-plus slot), for making CPython's view of the frame current when something
    /// may read it. Counts as a use of those values.
    pub state: Option<u32>,
}

/// A printable constant (the IR keeps only indices; the frontend says what they hold).
#[derive(Clone, Debug, PartialEq)]
pub enum ConstRepr {
    /// None, True, False, ..., Ellipsis
    Singleton(&'static str),
    /// A small int.
    Int(i64),
    /// An int too big for i64, as decimal text.
    BigInt(String),
    /// A float (printed with repr-like text).
    Float(f64),
    /// A str.
    Str(String),
    /// Anything else: its type name (code objects, tuples, bytes...).
    Other(String),
}

/// An SSA function.
#[derive(Clone, Debug)]
pub struct Function {
    /// The function's qualified name.
    pub name: String,
    /// Block arena.
    pub blocks: SlotMap<Block, BlockData>,
    /// Block order for printing and lowering; the entry is first.
    pub layout: Vec<Block>,
    /// Instruction arena.
    pub insts: SlotMap<Inst, InstData>,
    /// Value arena.
    pub values: SlotMap<Value, ValueDef>,
    /// Printable constants (`co_consts`).
    pub consts: Vec<ConstRepr>,
    /// `co_names`.
    pub names: Vec<String>,
    /// Locals-plus names.
    pub local_names: Vec<String>,
    /// Frame states (see `InstData::state`): one value per locals-plus slot.
    pub states: Vec<Vec<Value>>,
}

impl Function {
    /// An empty function with an entry block.
    pub fn new(name: impl Into<String>) -> Function {
        let mut f = Function {
            name: name.into(),
            blocks: SlotMap::with_key(),
            layout: Vec::new(),
            insts: SlotMap::with_key(),
            values: SlotMap::with_key(),
            consts: Vec::new(),
            names: Vec::new(),
            local_names: Vec::new(),
            states: Vec::new(),
        };
        f.add_block(0);
        f
    }

    /// The entry block.
    pub fn entry(&self) -> Block {
        self.layout[0]
    }

    /// Appends a new empty block to the layout.
    pub fn add_block(&mut self, offset: u32) -> Block {
        let b = self.blocks.insert(BlockData {
            params: Vec::new(),
            insts: Vec::new(),
            term: Terminator::Unreachable,
            offset,
            is_handler: false,
            is_resume: false,
            term_state: None,
            term_offset: None,
        });
        self.layout.push(b);
        b
    }

    /// Adds a parameter to a block.
    pub fn add_param(&mut self, b: Block) -> Value {
        let idx = self.blocks[b].params.len();
        let v = self.values.insert(ValueDef::Param(b, idx));
        self.blocks[b].params.push(v);
        v
    }

    /// Appends an instruction to a block and returns it (results via `insts[i].results`).
    pub fn push_inst(
        &mut self,
        b: Block,
        op: Op,
        args: Vec<Value>,
        unwind: Option<BlockCall>,
        offset: u32,
    ) -> Inst {
        let inst = self.insts.insert(InstData {
            op,
            args,
            results: Vec::new(),
            unwind,
            offset,
            state: None,
        });
        let results = (0..op.result_count())
            .map(|i| self.values.insert(ValueDef::Result(inst, i)))
            .collect();
        self.insts[inst].results = results;
        self.blocks[b].insts.push(inst);
        inst
    }

    /// Every edge leaving `b`: normal successors, then exception edges of its instructions.
    pub fn edges_from(&self, b: Block) -> Vec<&BlockCall> {
        let data = &self.blocks[b];
        let mut out = data.term.successors();
        out.extend(
            data.insts
                .iter()
                .filter_map(|&i| self.insts[i].unwind.as_ref()),
        );
        out
    }

    /// The CFG over the layout (node weights are blocks; edge weight true = exception edge).
    pub fn cfg(&self) -> (DiGraph<Block, bool>, Vec<NodeIndex>) {
        let mut g = DiGraph::new();
        let nodes: Vec<NodeIndex> = self.layout.iter().map(|&b| g.add_node(b)).collect();
        let index = |b: Block| self.layout.iter().position(|&x| x == b);
        for (i, &b) in self.layout.iter().enumerate() {
            for c in self.blocks[b].term.successors() {
                if let Some(j) = index(c.block) {
                    g.update_edge(nodes[i], nodes[j], false);
                }
            }
            for &inst in &self.blocks[b].insts {
                if let Some(c) = &self.insts[inst].unwind {
                    if let Some(j) = index(c.block) {
                        g.update_edge(nodes[i], nodes[j], true);
                    }
                }
            }
        }
        (g, nodes)
    }

    /// Per block of the layout: whether it lies on a cycle of the CFG (exception edges
    /// included), i.e. can run more than once in one call.
    pub fn blocks_in_cycles(&self) -> Vec<bool> {
        let (g, nodes) = self.cfg();
        let mut on = vec![false; nodes.len()];
        for scc in petgraph::algo::tarjan_scc(&g) {
            let cyclic = scc.len() > 1 || scc.iter().any(|&n| g.contains_edge(n, n));
            if cyclic {
                for n in scc {
                    on[n.index()] = true;
                }
            }
        }
        on
    }
}

impl ImmCtx for Function {
    fn const_repr(&self, i: ConstIdx) -> String {
        match self.consts.get(i.0 as usize) {
            Some(c) => crate::printer::const_text(c),
            None => format!("const#{}", i.0),
        }
    }
    fn name(&self, i: NameIdx) -> String {
        match self.names.get(i.0 as usize) {
            Some(n) => format!("'{n}'"),
            None => format!("name#{}", i.0),
        }
    }
    fn local_name(&self, i: LocalIdx) -> String {
        match self.local_names.get(i.0 as usize) {
            Some(n) => format!("'{n}'"),
            None => format!("local#{}", i.0),
        }
    }
}
