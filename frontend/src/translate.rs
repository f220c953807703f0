//! CPython 3.11 bytecode to SSA IR by abstract interpretation of the operand stack.
//!
//! Every bytecode block gets one parameter per locals-plus slot and per stack slot on entry
//! (maximal SSA); trivial parameters are pruned afterwards. An instruction that may raise
//! inside a protected range gets an unwind edge to its handler carrying the locals and the
//! stack up to the handler's depth; the handler's last parameter is the exception.

use crate::code::{slot, CodeInfo};
use crate::decode::{decode, jump_target, Instr};
use crate::exception_table::{handler_at, parse_exception_table, ExceptionEntry};
use crate::opcodes::op;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;
use tiered_ir::passes;
mod generators;
mod instr;

use tiered_ir::{
    BinOp, Block, BlockCall, CmpOp, ConstIdx, Conversion, Effect, Function, KwNames, LocalIdx,
    NameIdx, Op, RaiseKind, Terminator, UnaryOp, Value,
};

/// Why (part of) a function cannot be translated; any one makes the whole function run
/// in CPython.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The CPython opcode name (or a pseudo-name such as `<code flags>`).
    pub op: String,
    /// What a user can act on.
    pub reason: String,
    /// Bytecode offset (code units).
    pub offset: u32,
}

/// The result of translating one code object.
#[derive(Clone, Debug)]
pub struct Translation {
    /// The IR (with `Unsupported` ops where translation failed, so dumps show them).
    pub func: Function,
    /// Everything that prevents running the function in our tiers; empty when it is ours.
    pub unsupported: Vec<Unsupported>,
}

/// Translates a code object.
pub fn translate(code: &CodeInfo) -> Translation {
    let mut f = Function::new(code.qualname.clone());
    f.consts = code.consts.clone();
    f.names = code.names.clone();
    f.local_names = code.local_names.clone();
    let mut unsupported = Vec::new();
    if code.local_kinds.len() != code.local_names.len()
        || code.total_args() > code.local_names.len()
    {
        unsupported.push(Unsupported {
            op: "<code>".into(),
            reason: "inconsistent locals layout".into(),
            offset: 0,
        });
    }
    if !unsupported.is_empty() {
        let entry = f.entry();
        for u in &unsupported {
            f.push_inst(
                entry,
                Op::Unsupported {
                    opcode: 0,
                    reason: leak(&u.reason),
                },
                vec![],
                None,
                0,
            );
        }
        return Translation {
            func: f,
            unsupported,
        };
    }
    let mut b = match Builder::new(code, f) {
        Ok(b) => b,
        Err(u) => {
            let mut f = Function::new(code.qualname.clone());
            let entry = f.entry();
            f.push_inst(
                entry,
                Op::Unsupported {
                    opcode: 0,
                    reason: leak(&u.reason),
                },
                vec![],
                None,
                0,
            );
            return Translation {
                func: f,
                unsupported: vec![u],
            };
        }
    };
    b.run();
    b.finish()
}

/// Unsupported reasons are few and reused across calls; interning keeps `Op` `Copy`.
fn leak(s: &str) -> &'static str {
    use std::sync::Mutex;
    static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut v = match INTERNED.lock() {
        Ok(v) => v,
        Err(p) => p.into_inner(),
    };
    if let Some(&s2) = v.iter().find(|&&x| x == s) {
        return s2;
    }
    let l: &'static str = Box::leak(s.to_string().into_boxed_str());
    v.push(l);
    l
}

/// The abstract interpreter state at a point: SSA values of locals and of the stack.
#[derive(Clone)]
struct State {
    locals: Vec<Value>,
    stack: Vec<Value>,
}

struct Builder<'a> {
    code: &'a CodeInfo,
    f: Function,
    instrs: Vec<Instr>,
    index_of: HashMap<u32, usize>,
    leaders: Vec<u32>,
    block_at: HashMap<u32, Block>,
    depth_of: HashMap<Block, usize>,
    handlers: Vec<ExceptionEntry>,
    handler_offsets: HashSet<u32>,
    consts: HashMap<u32, Value>,
    null: Value,
    /// The handlers' lasti (a value of its own, so a suspension can tell it from a NULL),
    /// made in the prologue on first use.
    lasti: Option<Value>,
    /// Values that can never be NULL (instruction results other than Null, arguments).
    bound: HashSet<Value>,
    unsupported: Vec<Unsupported>,
    worklist: VecDeque<Block>,
    nlocals: usize,
    /// The frame states recorded so far, to share an index between equal ones.
    state_ids: HashMap<Vec<Value>, u32>,
}

/// A reason to stop translating the current block.
struct Stop(Unsupported);

impl<'a> Builder<'a> {
    fn new(code: &'a CodeInfo, mut f: Function) -> Result<Builder<'a>, Unsupported> {
        let instrs = decode(&code.code).map_err(|e| Unsupported {
            op: "<bytecode>".into(),
            reason: format!("cannot decode the bytecode: {e}"),
            offset: 0,
        })?;
        let handlers = parse_exception_table(&code.exception_table).map_err(|e| Unsupported {
            op: "<exception table>".into(),
            reason: format!("cannot parse the exception table: {e}"),
            offset: 0,
        })?;
        if instrs.is_empty() {
            return Err(Unsupported {
                op: "<bytecode>".into(),
                reason: "empty bytecode".into(),
                offset: 0,
            });
        }
        let index_of = instrs
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.offset, i))
            .collect();
        let entry = f.entry();
        let null = f.push_inst(entry, Op::Null {}, vec![], None, 0);
        let null = f.insts[null].results[0];
        Ok(Builder {
            code,
            f,
            instrs,
            index_of,
            leaders: Vec::new(),
            block_at: HashMap::default(),
            depth_of: HashMap::default(),
            handler_offsets: handlers.iter().map(|h| h.target).collect(),
            handlers,
            consts: HashMap::default(),
            null,
            lasti: None,
            bound: HashSet::default(),
            unsupported: Vec::new(),
            worklist: VecDeque::new(),
            nlocals: code.local_names.len(),
            state_ids: HashMap::default(),
        })
    }

    /// Resolves a jump target to an instruction offset (accounting for the EXTENDED_ARG
    /// prefix a target may point at).
    fn instr_at(&self, target: u32) -> Option<u32> {
        if self.index_of.contains_key(&target) {
            return Some(target);
        }
        self.instrs
            .iter()
            .find(|i| i.start == target)
            .map(|i| i.offset)
    }

    fn find_leaders(&mut self) -> Result<(), Unsupported> {
        let mut leaders = HashSet::default();
        leaders.insert(self.instrs[0].offset);
        for h in &self.handlers {
            let t = self.instr_at(h.target).ok_or_else(|| Unsupported {
                op: "<exception table>".into(),
                reason: format!("handler target {} is not an instruction", h.target),
                offset: h.target,
            })?;
            leaders.insert(t);
        }
        for (k, ins) in self.instrs.iter().enumerate() {
            let next = self.instrs.get(k + 1).map(|n| n.offset);
            if let Some(t) = jump_target(ins) {
                let t = self.instr_at(t).ok_or_else(|| Unsupported {
                    op: crate::decode::opcode_name(ins.opcode).into(),
                    reason: format!("jump to offset {t}, which is not an instruction"),
                    offset: ins.offset,
                })?;
                leaders.insert(t);
                if let Some(n) = next {
                    leaders.insert(n);
                }
            } else if ends_block(ins.opcode) {
                if let Some(n) = next {
                    leaders.insert(n);
                }
            }
        }
        let mut v: Vec<u32> = leaders.into_iter().collect();
        v.sort_unstable();
        for &o in &v {
            let b = self.f.add_block(o);
            self.f.blocks[b].is_handler = self.handler_offsets.contains(&o)
                || self
                    .instrs
                    .iter()
                    .any(|i| i.offset == o && self.handler_offsets.contains(&i.start));
            self.block_at.insert(o, b);
        }
        self.leaders = v;
        Ok(())
    }

    fn run(&mut self) {
        if let Err(u) = self.find_leaders() {
            self.unsupported.push(u);
            return;
        }
        // The prologue: arguments are its parameters; other slots start NULL.
        let entry = self.f.entry();
        let nargs = self.code.total_args();
        let mut locals = Vec::with_capacity(self.nlocals);
        for _ in 0..nargs {
            let p = self.f.add_param(entry);
            self.bound.insert(p);
            locals.push(p);
        }
        locals.resize(self.nlocals, self.null);
        let first = self.instrs[0].offset;
        let st = State {
            locals,
            stack: Vec::new(),
        };
        match self.edge(first, &st) {
            Ok(call) => self.f.blocks[entry].term = Terminator::Jump(call),
            Err(Stop(u)) => {
                self.unsupported.push(u);
                return;
            }
        }
        while let Some(b) = self.worklist.pop_front() {
            if let Err(Stop(u)) = self.block(b) {
                let offset = u.offset;
                self.f.push_inst(
                    b,
                    Op::Unsupported {
                        opcode: 0,
                        reason: leak(&u.reason),
                    },
                    vec![],
                    None,
                    offset,
                );
                self.f.blocks[b].term = Terminator::Unreachable;
                self.unsupported.push(u);
            }
        }
    }

    /// A call of the block at `offset` with `st`, creating its parameters on first use.
    fn edge(&mut self, offset: u32, st: &State) -> Result<BlockCall, Stop> {
        let b = *self
            .block_at
            .get(&offset)
            .ok_or_else(|| self.stop(offset, "<jump>", "jump into the middle of a block"))?;
        if self.f.blocks[b].is_handler {
            return Err(self.stop(offset, "<jump>", "a normal jump into an exception handler"));
        }
        if self.f.blocks[b].is_resume {
            return Err(self.stop(
                offset,
                "<jump>",
                "a normal jump to where a generator resumes",
            ));
        }
        self.ensure_params(b, st.stack.len(), offset)?;
        let mut args = st.locals.clone();
        args.extend_from_slice(&st.stack);
        Ok(BlockCall { block: b, args })
    }

    fn ensure_params(&mut self, b: Block, depth: usize, offset: u32) -> Result<(), Stop> {
        match self.depth_of.get(&b) {
            Some(&d) if d != depth => Err(self.stop(
                offset,
                "<stack>",
                &format!("stack depth {depth} differs from {d} on another path"),
            )),
            Some(_) => Ok(()),
            None => {
                let n = self.nlocals + depth + usize::from(self.f.blocks[b].is_handler);
                for _ in 0..n {
                    self.f.add_param(b);
                }
                self.depth_of.insert(b, depth);
                self.worklist.push_back(b);
                Ok(())
            }
        }
    }

    fn stop(&self, offset: u32, op: &str, reason: &str) -> Stop {
        Stop(Unsupported {
            op: op.into(),
            reason: reason.into(),
            offset,
        })
    }

    /// Translates one bytecode block.
    fn block(&mut self, b: Block) -> Result<(), Stop> {
        let start = self.f.blocks[b].offset;
        let depth = self.depth_of[&b];
        let params = self.f.blocks[b].params.clone();
        let mut st = State {
            locals: params[..self.nlocals].to_vec(),
            stack: params[self.nlocals..self.nlocals + depth].to_vec(),
        };
        if self.f.blocks[b].is_handler {
            let entry = self
                .handlers
                .iter()
                .find(|h| self.instr_at(h.target) == Some(start));
            if entry.is_some_and(|h| h.lasti) {
                // We keep no f_lasti: RERAISE's lasti operand only restores line numbers
                // of a frame we do not have (a suspension gives the frame an int there).
                let lasti = self.lasti_value();
                st.stack.push(lasti);
            }
            st.stack.push(params[params.len() - 1]);
            self.bound.insert(params[params.len() - 1]);
        }
        let end = self
            .leaders
            .iter()
            .copied()
            .find(|&o| o > start)
            .unwrap_or(u32::MAX);
        let mut k = self.index_of[&start];
        let mut kwnames = None;
        if self.f.blocks[b].is_resume && k > 0 {
            let at = self.instrs[k - 1];
            let mut t = Tx {
                b: self,
                block: b,
                st: &mut st,
                ins: at,
                kwnames: &mut kwnames,
            };
            t.resumed()?;
        }
        loop {
            let Some(ins) = self.instrs.get(k).copied() else {
                return Err(self.stop(
                    start,
                    "<bytecode>",
                    "execution runs off the end of the bytecode",
                ));
            };
            if ins.offset >= end {
                let call = self.edge(ins.offset, &st)?;
                self.f.blocks[b].term = Terminator::Jump(call);
                return Ok(());
            }
            let mut t = Tx {
                b: self,
                block: b,
                st: &mut st,
                ins,
                kwnames: &mut kwnames,
            };
            if let Some(term) = t.instr()? {
                self.f.blocks[b].term = term;
                return Ok(());
            }
            k += 1;
        }
    }

    fn lasti_value(&mut self) -> Value {
        if let Some(v) = self.lasti {
            return v;
        }
        let entry = self.f.entry();
        let i = self.f.push_inst(entry, Op::Lasti {}, vec![], None, 0);
        let v = self.f.insts[i].results[0];
        self.lasti = Some(v);
        v
    }

    fn const_value(&mut self, idx: u32, offset: u32) -> Value {
        if let Some(&v) = self.consts.get(&idx) {
            return v;
        }
        // Constants load once per call, in the prologue, which dominates every use.
        let entry = self.f.entry();
        let i = self.f.push_inst(
            entry,
            Op::Const {
                index: ConstIdx(idx),
            },
            vec![],
            None,
            offset,
        );
        let v = self.f.insts[i].results[0];
        self.bound.insert(v);
        self.consts.insert(idx, v);
        v
    }

    fn finish(mut self) -> Translation {
        // Blocks never reached stay parameterless and unprocessed: drop them.
        let reached: HashSet<Block> = self.depth_of.keys().copied().collect();
        let entry = self.f.entry();
        self.f.layout.retain(|b| *b == entry || reached.contains(b));
        let dead: Vec<Block> = self
            .f
            .blocks
            .keys()
            .filter(|b| *b != entry && !reached.contains(b))
            .collect();
        for b in dead {
            self.f.blocks.remove(b);
        }
        if self.unsupported.is_empty() {
            passes::prune_trivial_params(&mut self.f);
            passes::remove_redundant_checks(&mut self.f);
            // Again: a local loaded in two branches was checked in each, and the merge's
            // parameter took two CheckBound results; with the checks gone both are the
            // same value, and the parameter (an edge move per iteration) is trivial.
            passes::prune_trivial_params(&mut self.f);
            passes::merge_eval_breakers(&mut self.f);
            passes::remove_dead_params(&mut self.f);
        }
        Translation {
            func: self.f,
            unsupported: self.unsupported,
        }
    }
}

/// Instructions after which control does not fall through.
fn ends_block(opcode: u8) -> bool {
    matches!(
        opcode,
        op::RETURN_VALUE | op::RAISE_VARARGS | op::RERAISE | op::YIELD_VALUE | op::RETURN_GENERATOR
    )
}

/// Translation of one instruction.
struct Tx<'b, 'a> {
    b: &'b mut Builder<'a>,
    block: Block,
    st: &'b mut State,
    ins: Instr,
    kwnames: &'b mut Option<u32>,
}

impl Tx<'_, '_> {
    fn err(&self, reason: impl Into<String>) -> Stop {
        Stop(Unsupported {
            op: crate::decode::opcode_name(self.ins.opcode).into(),
            reason: reason.into(),
            offset: self.ins.offset,
        })
    }
    fn pop(&mut self) -> Result<Value, Stop> {
        self.st
            .stack
            .pop()
            .ok_or_else(|| self.err("stack underflow"))
    }
    fn popn(&mut self, n: usize) -> Result<Vec<Value>, Stop> {
        if self.st.stack.len() < n {
            return Err(self.err("stack underflow"));
        }
        Ok(self.st.stack.split_off(self.st.stack.len() - n))
    }
    fn push(&mut self, v: Value) {
        self.st.stack.push(v)
    }
    /// The value `i` slots from the top (1 = top), as CPython's PEEK.
    fn peek(&self, i: usize) -> Result<Value, Stop> {
        if i == 0 || i > self.st.stack.len() {
            return Err(self.err("stack underflow"));
        }
        Ok(self.st.stack[self.st.stack.len() - i])
    }
    fn local(&self, i: u32) -> Result<Value, Stop> {
        self.st
            .locals
            .get(i as usize)
            .copied()
            .ok_or_else(|| self.err(format!("local index {i} out of range")))
    }
    fn set_local(&mut self, i: u32, v: Value) -> Result<(), Stop> {
        match self.st.locals.get_mut(i as usize) {
            Some(slot) => {
                *slot = v;
                Ok(())
            }
            None => Err(self.err(format!("local index {i} out of range"))),
        }
    }
    fn name(&self, i: u32) -> Result<NameIdx, Stop> {
        if (i as usize) < self.b.code.names.len() {
            Ok(NameIdx(i))
        } else {
            Err(self.err(format!("name index {i} out of range")))
        }
    }
    fn const_idx(&self, i: u32) -> Result<u32, Stop> {
        if (i as usize) < self.b.code.consts.len() {
            Ok(i)
        } else {
            Err(self.err(format!("constant index {i} out of range")))
        }
    }

    /// Emits an op; a raising op inside a protected range gets its unwind edge.
    fn emit(&mut self, op: Op, args: Vec<Value>) -> Result<Vec<Value>, Stop> {
        let unwind = if matches!(op.effect(), Effect::Pure | Effect::NoRaise) {
            None
        } else {
            match handler_at(&self.b.handlers, self.ins.offset).copied() {
                None => None,
                Some(h) => {
                    let target = self
                        .b
                        .instr_at(h.target)
                        .ok_or_else(|| self.err("bad handler target"))?;
                    let hb = self.b.block_at[&target];
                    let depth = h.depth as usize;
                    if depth > self.st.stack.len() {
                        return Err(self.err("handler depth exceeds the stack"));
                    }
                    self.b.ensure_params(hb, depth, self.ins.offset)?;
                    let mut args = self.st.locals.clone();
                    args.extend_from_slice(&self.st.stack[..depth]);
                    Some(BlockCall { block: hb, args })
                }
            }
        };
        let i = self
            .b
            .f
            .push_inst(self.block, op, args, unwind, self.ins.offset);
        // Every op records the locals as they are before it runs: what CPython's frame
        // holds there, should anything read it (locals(), a traceback, a profiler).
        self.b.f.insts[i].state = Some(self.state());
        let results = self.b.f.insts[i].results.clone();
        if !matches!(op, Op::Null {} | Op::Lasti {}) {
            // Only Null, LoadMethod's first result and ForIter's item can be NULL, and
            // none of those is ever stored to a local by compiler-made code; loads of a
            // NULL local are still checked where it could come from a merge.
            self.b.bound.extend(results.iter().copied());
        }
        Ok(results)
    }
    /// The index of the frame state holding the current locals (shared between equal ones).
    fn state(&mut self) -> u32 {
        match self.b.state_ids.get(&self.st.locals) {
            Some(&id) => id,
            None => {
                let id = self.b.f.states.len() as u32;
                self.b.f.states.push(self.st.locals.clone());
                self.b.state_ids.insert(self.st.locals.clone(), id);
                id
            }
        }
    }
    fn emit1(&mut self, op: Op, args: Vec<Value>) -> Result<Value, Stop> {
        Ok(self.emit(op, args)?[0])
    }

    fn jump_target(&self) -> Result<u32, Stop> {
        let t = jump_target(&self.ins).ok_or_else(|| self.err("no jump target"))?;
        self.b
            .instr_at(t)
            .ok_or_else(|| self.err("jump target is not an instruction"))
    }
    /// The fall-through instruction's offset (past any EXTENDED_ARG prefix it starts with,
    /// since blocks are keyed by opcode offsets).
    fn next_offset(&self) -> u32 {
        self.b.instr_at(self.ins.next).unwrap_or(self.ins.next)
    }

    fn branch(
        &mut self,
        cond: Value,
        if_true: State,
        if_false: State,
        true_off: u32,
        false_off: u32,
    ) -> Result<Option<Terminator>, Stop> {
        let then_to = self.b.edge(true_off, &if_true)?;
        let else_to = self.b.edge(false_off, &if_false)?;
        Ok(Some(Terminator::Branch {
            cond,
            then_to,
            else_to,
        }))
    }
}

/// Why an opcode has no translation yet, in words a user can act on.
pub fn unsupported_reason(opcode: u8) -> String {
    let why = match opcode {
        op::LOAD_NAME
        | op::STORE_NAME
        | op::DELETE_NAME
        | op::LOAD_CLASSDEREF
        | op::SETUP_ANNOTATIONS
        | op::IMPORT_STAR
        | op::PRINT_EXPR => "module and class-body code runs in CPython",
        _ => "this opcode is not valid in 3.11 function code",
    };
    why.to_string()
}
