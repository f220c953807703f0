//! The translation of each instruction: one arm per opcode (generators' and coroutines'
//! are in `generators`).

use super::*;

impl Tx<'_, '_> {
    /// Translates the instruction; `Some` ends the block.
    pub(super) fn instr(&mut self) -> Result<Option<Terminator>, Stop> {
        let arg = self.ins.arg;
        match self.ins.opcode {
            op::NOP | op::PRECALL | op::CACHE | op::EXTENDED_ARG => {}
            // RESUME 0 starts the function (1-3 follow a yield or await; 3.11 checks the
            // eval breaker for 0 and 1).
            op::RESUME => {
                if arg < 2 {
                    self.emit(Op::EvalBreaker {}, vec![])?;
                }
            }
            op::POP_TOP => {
                self.pop()?;
            }
            op::PUSH_NULL => {
                let n = self.b.null;
                self.push(n)
            }
            op::LOAD_CONST => {
                let i = self.const_idx(arg)?;
                let v = self.b.const_value(i, self.ins.offset);
                self.push(v)
            }
            op::LOAD_FAST => {
                let mut v = self.local(arg)?;
                if !self.b.bound.contains(&v) {
                    v = self.emit1(
                        Op::CheckBound {
                            local: LocalIdx(arg),
                        },
                        vec![v],
                    )?;
                    self.set_local(arg, v)?;
                }
                self.push(v)
            }
            op::STORE_FAST => {
                let v = self.pop()?;
                self.set_local(arg, v)?
            }
            op::DELETE_FAST => {
                let v = self.local(arg)?;
                if !self.b.bound.contains(&v) {
                    self.emit1(
                        Op::CheckBound {
                            local: LocalIdx(arg),
                        },
                        vec![v],
                    )?;
                }
                let n = self.b.null;
                self.set_local(arg, n)?
            }
            op::LOAD_GLOBAL => {
                let name = self.name(arg >> 1)?;
                if arg & 1 != 0 {
                    let n = self.b.null;
                    self.push(n)
                }
                let v = self.emit1(Op::LoadGlobal { name }, vec![])?;
                self.push(v)
            }
            op::STORE_GLOBAL => {
                let name = self.name(arg)?;
                let v = self.pop()?;
                self.emit(Op::StoreGlobal { name }, vec![v])?;
            }
            op::DELETE_GLOBAL => {
                let name = self.name(arg)?;
                self.emit(Op::DeleteGlobal { name }, vec![])?;
            }
            op::LOAD_ASSERTION_ERROR => {
                let v = self.emit1(Op::LoadAssertionError {}, vec![])?;
                self.push(v)
            }
            op::LOAD_BUILD_CLASS => {
                let v = self.emit1(Op::LoadBuildClass {}, vec![])?;
                self.push(v)
            }
            op::UNARY_POSITIVE | op::UNARY_NEGATIVE | op::UNARY_INVERT | op::UNARY_NOT => {
                let o = match self.ins.opcode {
                    op::UNARY_POSITIVE => UnaryOp::Positive,
                    op::UNARY_NEGATIVE => UnaryOp::Negative,
                    op::UNARY_INVERT => UnaryOp::Invert,
                    _ => UnaryOp::Not,
                };
                let v = self.pop()?;
                let r = self.emit1(Op::Unary { op: o }, vec![v])?;
                self.push(r)
            }
            op::BINARY_OP => {
                let o = BinOp::from_oparg(arg)
                    .ok_or_else(|| self.err(format!("bad BINARY_OP oparg {arg}")))?;
                let rhs = self.pop()?;
                let lhs = self.pop()?;
                let r = self.emit1(Op::Binary { op: o }, vec![lhs, rhs])?;
                self.push(r)
            }
            op::COMPARE_OP => {
                let o = CmpOp::from_oparg(arg)
                    .ok_or_else(|| self.err(format!("bad COMPARE_OP oparg {arg}")))?;
                let rhs = self.pop()?;
                let lhs = self.pop()?;
                let jump = self.jump_follows();
                let r = self.emit1(Op::Compare { op: o, jump }, vec![lhs, rhs])?;
                self.push(r)
            }
            op::IS_OP => {
                let rhs = self.pop()?;
                let lhs = self.pop()?;
                let r = self.emit1(Op::Is { invert: arg != 0 }, vec![lhs, rhs])?;
                self.push(r)
            }
            op::CONTAINS_OP => {
                let container = self.pop()?;
                let item = self.pop()?;
                let r = self.emit1(Op::Contains { invert: arg != 0 }, vec![item, container])?;
                self.push(r)
            }
            op::BINARY_SUBSCR => {
                let k = self.pop()?;
                let o = self.pop()?;
                let r = self.emit1(Op::Subscr {}, vec![o, k])?;
                self.push(r)
            }
            op::STORE_SUBSCR => {
                let k = self.pop()?;
                let o = self.pop()?;
                let v = self.pop()?;
                self.emit(Op::StoreSubscr {}, vec![v, o, k])?;
            }
            op::DELETE_SUBSCR => {
                let k = self.pop()?;
                let o = self.pop()?;
                self.emit(Op::DeleteSubscr {}, vec![o, k])?;
            }
            op::BUILD_SLICE => {
                if arg != 2 && arg != 3 {
                    return Err(self.err(format!("BUILD_SLICE of {arg}")));
                }
                let parts = self.popn(arg as usize)?;
                let r = self.emit1(Op::BuildSlice { count: arg }, parts)?;
                self.push(r)
            }
            op::LOAD_ATTR => {
                let name = self.name(arg)?;
                let o = self.pop()?;
                let r = self.emit1(Op::LoadAttr { name }, vec![o])?;
                self.push(r)
            }
            op::STORE_ATTR => {
                let name = self.name(arg)?;
                let o = self.pop()?;
                let v = self.pop()?;
                self.emit(Op::StoreAttr { name }, vec![o, v])?;
            }
            op::DELETE_ATTR => {
                let name = self.name(arg)?;
                let o = self.pop()?;
                self.emit(Op::DeleteAttr { name }, vec![o])?;
            }
            op::LOAD_METHOD => {
                let name = self.name(arg)?;
                let o = self.pop()?;
                let r = self.emit(Op::LoadMethod { name }, vec![o])?;
                self.push(r[0]);
                self.push(r[1])
            }
            op::KW_NAMES => {
                let i = self.const_idx(arg)?;
                *self.kwnames = Some(i)
            }
            op::CALL => {
                let args = self.popn(arg as usize + 2)?;
                let kw = self.kwnames.take().map(ConstIdx);
                let r = self.emit1(
                    Op::Call {
                        kwnames: KwNames(kw),
                    },
                    args,
                )?;
                self.push(r);
                // 3.11 checks after calls of anything but Python functions, whose own
                // entry checks; checking after every call differs only in timing.
                self.emit(Op::EvalBreaker {}, vec![])?;
            }
            op::CALL_FUNCTION_EX => {
                let kwargs = if arg & 1 != 0 {
                    Some(self.pop()?)
                } else {
                    None
                };
                let callargs = self.pop()?;
                let func = self.pop()?;
                self.pop()?; // the NULL below the callable
                let mut ops = vec![func, callargs];
                ops.extend(kwargs);
                let r = self.emit1(
                    Op::CallEx {
                        kwargs: arg & 1 != 0,
                    },
                    ops,
                )?;
                self.push(r);
                self.emit(Op::EvalBreaker {}, vec![])?;
            }
            op::MAKE_FUNCTION => {
                if arg & !0x0f != 0 {
                    return Err(self.err(format!("MAKE_FUNCTION flags {arg:#x}")));
                }
                let code = self.pop()?;
                let mut extra = Vec::new();
                for bit in [0x08, 0x04, 0x02, 0x01] {
                    if arg & bit != 0 {
                        extra.push(self.pop()?);
                    }
                }
                extra.reverse();
                let mut ops = vec![code];
                ops.extend(extra);
                let r = self.emit1(Op::MakeFunction { flags: arg }, ops)?;
                self.push(r)
            }
            op::BUILD_TUPLE | op::BUILD_LIST | op::BUILD_SET | op::BUILD_STRING => {
                let items = self.popn(arg as usize)?;
                let o = match self.ins.opcode {
                    op::BUILD_TUPLE => Op::BuildTuple {},
                    op::BUILD_LIST => Op::BuildList {},
                    op::BUILD_SET => Op::BuildSet {},
                    _ => Op::BuildString {},
                };
                let r = self.emit1(o, items)?;
                self.push(r)
            }
            op::BUILD_MAP => {
                let items = self.popn(2 * arg as usize)?;
                let r = self.emit1(Op::BuildMap {}, items)?;
                self.push(r)
            }
            op::BUILD_CONST_KEY_MAP => {
                let keys = self.pop()?;
                let mut items = self.popn(arg as usize)?;
                items.push(keys);
                let r = self.emit1(Op::BuildConstKeyMap {}, items)?;
                self.push(r)
            }
            op::LIST_TO_TUPLE => {
                let l = self.pop()?;
                let r = self.emit1(Op::ListToTuple {}, vec![l])?;
                self.push(r)
            }
            op::LIST_APPEND | op::SET_ADD | op::LIST_EXTEND | op::SET_UPDATE | op::DICT_UPDATE => {
                let v = self.pop()?;
                let target = self.peek(arg as usize)?;
                let o = match self.ins.opcode {
                    op::LIST_APPEND => Op::ListAppend {},
                    op::SET_ADD => Op::SetAdd {},
                    op::LIST_EXTEND => Op::ListExtend {},
                    op::SET_UPDATE => Op::SetUpdate {},
                    _ => Op::DictUpdate {},
                };
                self.emit(o, vec![target, v])?;
            }
            op::DICT_MERGE => {
                let v = self.pop()?;
                let d = self.peek(arg as usize)?;
                let func = self.peek(arg as usize + 2)?;
                self.emit(Op::DictMerge {}, vec![func, d, v])?;
            }
            op::MAP_ADD => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.peek(arg as usize)?;
                self.emit(Op::MapAdd {}, vec![d, k, v])?;
            }
            op::FORMAT_VALUE => {
                let spec = if arg & 0x04 != 0 {
                    Some(self.pop()?)
                } else {
                    None
                };
                let v = self.pop()?;
                let conversion = match arg & 0x03 {
                    0 => Conversion::None,
                    1 => Conversion::Str,
                    2 => Conversion::Repr,
                    _ => Conversion::Ascii,
                };
                let mut ops = vec![v];
                ops.extend(spec);
                let r = self.emit1(
                    Op::FormatValue {
                        conversion,
                        spec: spec.is_some(),
                    },
                    ops,
                )?;
                self.push(r)
            }
            op::UNPACK_SEQUENCE => {
                let v = self.pop()?;
                let items = self.emit(Op::UnpackSequence { count: arg }, vec![v])?;
                for &i in items.iter().rev() {
                    self.push(i)
                }
            }
            op::UNPACK_EX => {
                let v = self.pop()?;
                let items = self.emit(
                    Op::UnpackEx {
                        before: arg & 0xff,
                        after: arg >> 8,
                    },
                    vec![v],
                )?;
                for &i in items.iter().rev() {
                    self.push(i)
                }
            }
            op::COPY => {
                let v = self.peek(arg as usize)?;
                self.push(v)
            }
            op::SWAP => {
                let n = self.st.stack.len();
                if arg < 1 || arg as usize > n {
                    return Err(self.err("stack underflow"));
                }
                self.st.stack.swap(n - 1, n - arg as usize)
            }
            op::GET_ITER => {
                let v = self.pop()?;
                let r = self.emit1(Op::GetIter {}, vec![v])?;
                self.push(r)
            }
            op::FOR_ITER => {
                let it = self.peek(1)?;
                let r = self.emit(Op::ForIter {}, vec![it])?;
                let (item, done) = (r[0], r[1]);
                let mut exhausted = self.st.clone();
                exhausted.stack.pop();
                let mut body = self.st.clone();
                body.stack.push(item);
                let (t, n) = (self.jump_target()?, self.next_offset());
                return self.branch(done, exhausted, body, t, n);
            }
            op::JUMP_FORWARD | op::JUMP_BACKWARD | op::JUMP_BACKWARD_NO_INTERRUPT => {
                if self.ins.opcode == op::JUMP_BACKWARD {
                    self.emit(Op::EvalBreaker {}, vec![])?;
                }
                let t = self.jump_target()?;
                let st = self.st.clone();
                return Ok(Some(Terminator::Jump(self.b.edge(t, &st)?)));
            }
            op::POP_JUMP_FORWARD_IF_TRUE
            | op::POP_JUMP_BACKWARD_IF_TRUE
            | op::POP_JUMP_FORWARD_IF_FALSE
            | op::POP_JUMP_BACKWARD_IF_FALSE
            | op::POP_JUMP_FORWARD_IF_NONE
            | op::POP_JUMP_BACKWARD_IF_NONE
            | op::POP_JUMP_FORWARD_IF_NOT_NONE
            | op::POP_JUMP_BACKWARD_IF_NOT_NONE => {
                let o = self.ins.opcode;
                let v = self.pop()?;
                if matches!(
                    o,
                    op::POP_JUMP_BACKWARD_IF_TRUE
                        | op::POP_JUMP_BACKWARD_IF_FALSE
                        | op::POP_JUMP_BACKWARD_IF_NONE
                        | op::POP_JUMP_BACKWARD_IF_NOT_NONE
                ) {
                    // 3.11 checks once the jump is taken; checking before the test, on
                    // the way out of the loop too, differs only in timing, and keeps the
                    // test next to its branch (native code branches on it in a register).
                    self.emit(Op::EvalBreaker {}, vec![])?;
                }
                let none_test = matches!(
                    o,
                    op::POP_JUMP_FORWARD_IF_NONE
                        | op::POP_JUMP_BACKWARD_IF_NONE
                        | op::POP_JUMP_FORWARD_IF_NOT_NONE
                        | op::POP_JUMP_BACKWARD_IF_NOT_NONE
                );
                let cond = if none_test {
                    self.emit1(Op::IsNone {}, vec![v])?
                } else {
                    self.emit1(Op::Truth {}, vec![v])?
                };
                let jump_if = matches!(
                    o,
                    op::POP_JUMP_FORWARD_IF_TRUE
                        | op::POP_JUMP_BACKWARD_IF_TRUE
                        | op::POP_JUMP_FORWARD_IF_NONE
                        | op::POP_JUMP_BACKWARD_IF_NONE
                );
                let (t, n) = (self.jump_target()?, self.next_offset());
                let st = self.st.clone();
                let (on_true, on_false) = if jump_if { (t, n) } else { (n, t) };
                return self.branch(cond, st.clone(), st, on_true, on_false);
            }
            op::JUMP_IF_TRUE_OR_POP | op::JUMP_IF_FALSE_OR_POP => {
                let v = self.peek(1)?;
                let cond = self.emit1(Op::Truth {}, vec![v])?;
                let kept = self.st.clone();
                let mut popped = self.st.clone();
                popped.stack.pop();
                let (t, n) = (self.jump_target()?, self.next_offset());
                return if self.ins.opcode == op::JUMP_IF_TRUE_OR_POP {
                    self.branch(cond, kept, popped, t, n)
                } else {
                    self.branch(cond, popped, kept, n, t)
                };
            }
            op::RETURN_VALUE => {
                let v = self.pop()?;
                let state = self.state();
                self.b.f.blocks[self.block].term_state = Some(state);
                self.b.f.blocks[self.block].term_offset = Some(self.ins.offset);
                return Ok(Some(Terminator::Return(v)));
            }
            op::RETURN_GENERATOR
            | op::YIELD_VALUE
            | op::GET_YIELD_FROM_ITER
            | op::GET_AWAITABLE
            | op::GET_AITER
            | op::GET_ANEXT
            | op::ASYNC_GEN_WRAP
            | op::END_ASYNC_FOR
            | op::BEFORE_ASYNC_WITH
            | op::SEND => return self.generator_instr(),
            op::RAISE_VARARGS => {
                let (kind, n) = match arg {
                    0 => (RaiseKind::Reraise, 0),
                    1 => (RaiseKind::Exc, 1),
                    2 => (RaiseKind::ExcFrom, 2),
                    _ => return Err(self.err(format!("RAISE_VARARGS {arg}"))),
                };
                let ops = self.popn(n)?;
                self.emit(Op::Raise { kind }, ops)?;
                return Ok(Some(Terminator::Unreachable));
            }
            op::RERAISE => {
                let exc = self.pop()?;
                self.emit(Op::Reraise {}, vec![exc])?;
                return Ok(Some(Terminator::Unreachable));
            }
            op::PUSH_EXC_INFO => {
                let exc = self.pop()?;
                let prev = self.emit1(Op::PushExcInfo {}, vec![exc])?;
                self.push(prev);
                self.push(exc)
            }
            op::POP_EXCEPT => {
                let prev = self.pop()?;
                self.emit(Op::PopExcept {}, vec![prev])?;
            }
            op::CHECK_EXC_MATCH => {
                let ty = self.pop()?;
                let exc = self.peek(1)?;
                let r = self.emit1(Op::CheckExcMatch {}, vec![exc, ty])?;
                self.push(r)
            }
            op::CHECK_EG_MATCH => {
                let ty = self.pop()?;
                let exc = self.pop()?;
                let r = self.emit(Op::CheckEgMatch {}, vec![exc, ty])?;
                self.push(r[0]);
                self.push(r[1])
            }
            op::PREP_RERAISE_STAR => {
                let excs = self.pop()?;
                let orig = self.pop()?;
                let r = self.emit1(Op::PrepReraiseStar {}, vec![orig, excs])?;
                self.push(r)
            }
            op::GET_LEN => {
                let v = self.peek(1)?;
                let r = self.emit1(Op::GetLen {}, vec![v])?;
                self.push(r)
            }
            op::MATCH_MAPPING | op::MATCH_SEQUENCE => {
                let v = self.peek(1)?;
                let o = if self.ins.opcode == op::MATCH_MAPPING {
                    Op::MatchMapping {}
                } else {
                    Op::MatchSequence {}
                };
                let r = self.emit1(o, vec![v])?;
                self.push(r)
            }
            op::MATCH_KEYS => {
                let keys = self.peek(1)?;
                let subject = self.peek(2)?;
                let r = self.emit1(Op::MatchKeys {}, vec![subject, keys])?;
                self.push(r)
            }
            op::MATCH_CLASS => {
                let names = self.pop()?;
                let cls = self.pop()?;
                let subject = self.pop()?;
                let r = self.emit1(Op::MatchClass { count: arg }, vec![subject, cls, names])?;
                self.push(r)
            }
            op::BEFORE_WITH => {
                let mgr = self.pop()?;
                let r = self.emit(Op::BeforeWith {}, vec![mgr])?;
                self.push(r[0]);
                self.push(r[1])
            }
            op::WITH_EXCEPT_START => {
                let exc = self.peek(1)?;
                let exit = self.peek(4)?;
                let r = self.emit1(Op::WithExceptStart {}, vec![exit, exc])?;
                self.push(r)
            }
            op::IMPORT_NAME => {
                let name = self.name(arg)?;
                let fromlist = self.pop()?;
                let level = self.pop()?;
                let r = self.emit1(Op::ImportName { name }, vec![level, fromlist])?;
                self.push(r)
            }
            op::IMPORT_FROM => {
                let name = self.name(arg)?;
                let m = self.peek(1)?;
                let r = self.emit1(Op::ImportFrom { name }, vec![m])?;
                self.push(r)
            }
            op::MAKE_CELL => {
                let v = self.local(arg)?;
                let c = self.emit1(Op::MakeCell {}, vec![v])?;
                self.set_local(arg, c)?
            }
            op::COPY_FREE_VARS => {
                let n = arg as usize;
                let nfree = self.b.code.nfree();
                if n != nfree {
                    return Err(self.err(format!(
                        "COPY_FREE_VARS {n} but the code has {nfree} free variables"
                    )));
                }
                let base = self.b.nlocals - n;
                for j in 0..n {
                    let c = self.emit1(Op::LoadClosure { index: j as u32 }, vec![])?;
                    self.set_local((base + j) as u32, c)?;
                }
            }
            op::LOAD_CLOSURE => {
                let c = self.local(arg)?;
                self.push(c)
            }
            op::LOAD_DEREF => {
                self.cell_slot(arg)?;
                let c = self.local(arg)?;
                let v = self.emit1(
                    Op::LoadDeref {
                        local: LocalIdx(arg),
                    },
                    vec![c],
                )?;
                self.push(v)
            }
            op::STORE_DEREF => {
                self.cell_slot(arg)?;
                let c = self.local(arg)?;
                let v = self.pop()?;
                self.emit(Op::StoreDeref {}, vec![c, v])?;
            }
            op::DELETE_DEREF => {
                self.cell_slot(arg)?;
                let c = self.local(arg)?;
                self.emit(
                    Op::DeleteDeref {
                        local: LocalIdx(arg),
                    },
                    vec![c],
                )?;
            }
            other => return Err(self.err(unsupported_reason(other))),
        }
        Ok(None)
    }

    /// Whether the next instruction is a conditional jump on a bool, with no EXTENDED_ARG
    /// before it: what 3.11's specializer asks of a COMPARE_OP before it specializes it
    /// (`_Py_Specialize_CompareOp` reads the opcode right after the caches).
    fn jump_follows(&self) -> bool {
        self.b.instrs.iter().any(|i| {
            i.start == self.ins.next
                && i.offset == i.start
                && matches!(
                    i.opcode,
                    op::POP_JUMP_FORWARD_IF_FALSE
                        | op::POP_JUMP_BACKWARD_IF_FALSE
                        | op::POP_JUMP_FORWARD_IF_TRUE
                        | op::POP_JUMP_BACKWARD_IF_TRUE
                )
        })
    }

    /// Cell opcodes must name a cell or free slot (hand-made code may not).
    fn cell_slot(&self, i: u32) -> Result<(), Stop> {
        match self.b.code.local_kinds.get(i as usize) {
            Some(k) if k & (slot::CELL | slot::FREE) != 0 => Ok(()),
            _ => Err(self.err(format!("slot {i} is not a cell or free variable"))),
        }
    }
}
