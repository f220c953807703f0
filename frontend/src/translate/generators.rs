//! Generators and coroutines: suspensions (RETURN_GENERATOR, YIELD_VALUE), where they
//! resume, and the opcodes of `yield from`, `await`, `async with` and `async for`.

use super::{Stop, Tx};
use crate::code::flags;
use crate::opcodes::op;
use tiered_ir::{BlockCall, Op, Terminator, Value};

impl Tx<'_, '_> {
    /// The instruction before a resume block's first (its suspension): a generator resumes
    /// here with the value sent in on the stack, or with an exception thrown in, raised at
    /// the yield (its handler, its line).
    pub(super) fn resumed(&mut self) -> Result<(), Stop> {
        let sent = self.pop()?;
        let v = self.emit1(Op::Thrown {}, vec![sent])?;
        self.push(v);
        Ok(())
    }

    /// Translates a generator or coroutine opcode (`instr` sends them here).
    pub(super) fn generator_instr(&mut self) -> Result<Option<Terminator>, Stop> {
        let arg = self.ins.arg;
        match self.ins.opcode {
            op::RETURN_GENERATOR => return self.suspend(None),
            op::YIELD_VALUE => {
                let v = self.pop()?;
                return self.suspend(Some(v));
            }
            op::GET_YIELD_FROM_ITER => {
                let v = self.pop()?;
                let coroutine =
                    self.b.code.flags & (flags::COROUTINE | flags::ITERABLE_COROUTINE) != 0;
                let r = self.emit1(Op::GetYieldFromIter { coroutine }, vec![v])?;
                self.push(r)
            }
            op::GET_AWAITABLE => {
                let v = self.pop()?;
                let r = self.emit1(Op::GetAwaitable { kind: arg }, vec![v])?;
                self.push(r)
            }
            op::ASYNC_GEN_WRAP => {
                let v = self.pop()?;
                let r = self.emit1(Op::AsyncGenWrap {}, vec![v])?;
                self.push(r)
            }
            op::GET_AITER => {
                let v = self.pop()?;
                let r = self.emit1(Op::GetAiter {}, vec![v])?;
                self.push(r)
            }
            op::GET_ANEXT => {
                let it = self.peek(1)?;
                let r = self.emit1(Op::GetAnext {}, vec![it])?;
                self.push(r)
            }
            op::END_ASYNC_FOR => {
                // The handler of an `async for`: StopAsyncIteration ends the loop (the
                // iterator goes too), anything else is re-raised from here.
                let exc = self.pop()?;
                self.emit(Op::EndAsyncFor {}, vec![exc])?;
                self.pop()?;
            }
            op::BEFORE_ASYNC_WITH => {
                let mgr = self.pop()?;
                let r = self.emit(Op::BeforeAsyncWith {}, vec![mgr])?;
                self.push(r[0]);
                self.push(r[1])
            }
            op::SEND => {
                // v = POP(), receiver = TOP(): a finished receiver is popped and its
                // return value pushed at the target; otherwise the value to yield is
                // pushed above it (YIELD_VALUE follows).
                let v = self.pop()?;
                let receiver = self.peek(1)?;
                let r = self.emit(Op::Send {}, vec![receiver, v])?;
                let (value, returned) = (r[0], r[1]);
                let mut done = self.st.clone();
                done.stack.pop();
                done.stack.push(value);
                let mut more = self.st.clone();
                more.stack.push(value);
                let (t, n) = (self.jump_target()?, self.next_offset());
                return self.branch(returned, done, more, t, n);
            }
            _ => return Err(self.err("not a generator opcode")),
        }
        Ok(None)
    }

    /// Ends the block at a suspension: the frame keeps the locals and the stack, and the
    /// generator resumes at the next instruction with the value sent in pushed.
    pub(super) fn suspend(&mut self, value: Option<Value>) -> Result<Option<Terminator>, Stop> {
        if self.b.code.flags & (flags::GENERATOR | flags::COROUTINE | flags::ASYNC_GENERATOR) == 0 {
            return Err(self.err("a suspension in code that is not a generator's"));
        }
        let at = self.next_offset();
        let rb = *self
            .b
            .block_at
            .get(&at)
            .ok_or_else(|| self.err("no instruction to resume at"))?;
        if self.b.depth_of.contains_key(&rb) || self.b.f.blocks[rb].is_handler {
            return Err(self.err("the resume point is also reached by a jump"));
        }
        self.b.f.blocks[rb].is_resume = true;
        self.b.ensure_params(rb, self.st.stack.len() + 1, at)?;
        let mut args = self.st.locals.clone();
        args.extend_from_slice(&self.st.stack);
        let state = self.state();
        self.b.f.blocks[self.block].term_state = Some(state);
        self.b.f.blocks[self.block].term_offset = Some(self.ins.offset);
        Ok(Some(Terminator::Suspend {
            value,
            resume: BlockCall { block: rb, args },
        }))
    }
}
