//! Calls and frames: the context (`Ctx`) and its fields, helper calls, the recursion level
//! and hooks at entry, CPython frames pushed and popped, and direct calls' results.

use super::*;

impl<'a> Emit<'a> {
    /// The `Ctx*` argument (for an inlined callee: its context, written and its frame
    /// linked here first if they are not yet: `link_inline`).
    pub fn ctx(&mut self) -> Value {
        let ctx = self.s.ctx_v.expect("prologue ran");
        self.link_inline();
        ctx
    }

    /// In a callee emitted inline, whose context is written and CPython frame pushed only
    /// where something may read them: makes it a whole activation if it is not yet (one
    /// out-of-line call, `helpers::link_inline`), after marking its caller at this call.
    /// Elsewhere nothing.
    pub(super) fn link_inline(&mut self) {
        let (Some(linked), Some(fill)) = (self.s.lazy_frame, self.s.ctx_fill) else {
            return;
        };
        let ctx = self.s.ctx_v.expect("prologue ran");
        let push = self.b.create_block();
        self.b.set_cold_block(push);
        let go = self.b.create_block();
        let was = self.b.use_var(linked);
        self.b.ins().brif(was, go, &[], push, &[]);
        self.b.switch_to_block(push);
        if let Some((parent, unit)) = self.s.parent_mark {
            // The caller is at this call before a frame goes on top of its.
            let pframe = self.b.ins().load(
                self.ptr,
                mem(),
                parent,
                std::mem::offset_of!(Ctx, frame) as i32,
            );
            let v = self.b.ins().iconst(self.ptr, unit);
            self.b
                .ins()
                .store(mem(), v, pframe, crate::cpy::frame::offset::PREV_INSTR);
        }
        let ptr = self.ptr;
        let (tstate, limit) = fill.thread;
        let helper = crate::native::helpers::link_inline as *const () as usize;
        let f = self.b.ins().iconst(ptr, helper as i64);
        // Not `call`: this frame is not linked yet, so nothing marks it first.
        self.call_unmarked(
            helper,
            f,
            &[ptr; 8],
            None,
            &[
                ctx,
                fill.compiled,
                fill.func,
                fill.frame,
                fill.regs,
                fill.tuning,
                tstate,
                limit,
            ],
        );
        let yes = self.b.ins().iconst(types::I8, 1);
        self.b.def_var(linked, yes);
        self.b.ins().jump(go, &[]);
        self.b.switch_to_block(go);
    }

    /// Writes a callee context at `ctx`.
    pub fn store_ctx(&mut self, ctx: Value, f: &CtxFill) {
        let (globals, builtins) = self.dicts_of(f);
        for (v, off) in [
            (f.compiled, std::mem::offset_of!(Ctx, compiled)),
            (f.func, std::mem::offset_of!(Ctx, func)),
            (f.frame, std::mem::offset_of!(Ctx, frame)),
            (f.regs, std::mem::offset_of!(Ctx, regs)),
            (globals, std::mem::offset_of!(Ctx, globals)),
            (builtins, std::mem::offset_of!(Ctx, builtins)),
        ] {
            self.b.ins().store(mem(), v, ctx, off as i32);
        }
        self.b.ins().store(
            mem(),
            f.tuning,
            ctx,
            std::mem::offset_of!(Ctx, tuning) as i32,
        );
        // `ran_native` stays unwritten: only calls from Rust read it, from their own context.
        let (tstate, limit) = f.thread;
        self.b
            .ins()
            .store(mem(), tstate, ctx, std::mem::offset_of!(Ctx, tstate) as i32);
        self.b.ins().store(
            mem(),
            limit,
            ctx,
            std::mem::offset_of!(Ctx, stack_limit) as i32,
        );
    }

    /// The globals and builtins of a callee context.
    pub(crate) fn dicts_of(&mut self, f: &CtxFill) -> (Value, Value) {
        if let Some(d) = f.dicts {
            return d;
        }
        let [g, bd] = [
            std::mem::offset_of!(pyo3_ffi::PyFunctionObject, func_globals),
            std::mem::offset_of!(pyo3_ffi::PyFunctionObject, func_builtins),
        ]
        .map(|off| self.b.ins().load(self.ptr, mem(), f.func, off as i32));
        (g, bd)
    }

    /// The word of the running function's context at `offset`, or in a callee emitted
    /// inline (whose context is written only where something reads it) what `known`
    /// makes of its fill.
    fn ctx_word(&mut self, known: impl FnOnce(&mut Self, CtxFill) -> Value, offset: i32) -> Value {
        match self.s.ctx_fill {
            Some(f) => known(self, f),
            None => {
                let ctx = self.ctx();
                self.b.ins().load(self.ptr, mem(), ctx, offset)
            }
        }
    }

    /// The running function's globals dict.
    pub fn globals_ptr(&mut self) -> Value {
        self.ctx_word(|e, f| e.dicts_of(&f).0, Self::ctx_offset_globals())
    }

    /// The running function's builtins dict.
    pub fn builtins_ptr(&mut self) -> Value {
        self.ctx_word(|e, f| e.dicts_of(&f).1, Self::ctx_offset_builtins())
    }

    /// What a call into tiered code checks before entering it, as `Entry::call` does: no
    /// trace or profile function on thread state `ts` (they must see the call in
    /// CPython), the stack pointer above `limit`, and a recursion level left, which it
    /// then enters (`leave_recursion` leaves it), and one more: a callee that would take
    /// the last level runs in tier 1 (`Compiled::native_for_call`). Anything else
    /// branches to `fail`.
    pub fn enter_checked(&mut self, ts: Value, limit: Value, fail: Block) {
        use crate::cpy::tstate_offset;
        let hooked = self.hooks_loaded(ts);
        self.fail_if(hooked, fail);
        let sp = self.b.ins().get_stack_pointer(self.ptr);
        let deep = self.b.ins().icmp(IntCC::UnsignedLessThan, sp, limit);
        self.fail_if(deep, fail);
        let left = self
            .b
            .ins()
            .load(types::I32, mem(), ts, tstate_offset::RECURSION_REMAINING);
        let none_left = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, left, 1);
        self.fail_if(none_left, fail);
        let left = self.b.ins().iadd_imm_s(left, -1);
        self.b
            .ins()
            .store(mem(), left, ts, tstate_offset::RECURSION_REMAINING);
    }

    /// Non-zero when a trace or profile function is set on thread state `ts`.
    pub(super) fn hooks_loaded(&mut self, ts: Value) -> Value {
        use crate::cpy::tstate_offset;
        let prof = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, tstate_offset::PROFILEFUNC);
        let trace = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, tstate_offset::TRACEFUNC);
        self.b.ins().bor(prof, trace)
    }

    /// Leaves the recursion level `enter_checked` entered.
    pub fn leave_recursion(&mut self, ts: Value) {
        use crate::cpy::tstate_offset;
        let left = self
            .b
            .ins()
            .load(types::I32, mem(), ts, tstate_offset::RECURSION_REMAINING);
        let left = self.b.ins().iadd_imm_s(left, 1);
        self.b
            .ins()
            .store(mem(), left, ts, tstate_offset::RECURSION_REMAINING);
    }

    /// A native call's status once its code returned: when it left for tier 1 instead
    /// (2 + pc: its code was invalidated meanwhile, or a trace or profile hook came on),
    /// the call is finished there (`helpers::resume`), whose status (0 or 1) is the call's;
    /// with `report_hooks`, a call that returned with a hook on is status 2 (the caller
    /// then leaves for tier 1 too: `tracing`).
    pub fn finish_if_left(
        &mut self,
        status: Value,
        ctx: Value,
        regs: Value,
        out: Value,
        report_hooks: bool,
    ) -> Value {
        let ran = self.b.create_block();
        self.b.append_block_param(ran, types::I64);
        let resume = self.b.create_block();
        self.b.set_cold_block(resume);
        let left = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, status, 2);
        self.b
            .ins()
            .brif(left, resume, &[], ran, &[BlockArg::Value(status)]);
        self.b.switch_to_block(resume);
        let resumed = self.finish_in_tier1(status, ctx, regs, out, report_hooks);
        self.b.ins().jump(ran, &[BlockArg::Value(resumed)]);
        self.b.switch_to_block(ran);
        self.b.block_params(ran)[0]
    }

    /// Tier 1 runs the rest of a callee that left its native code with `status` (2 +
    /// the instruction to go on at), with its frame still linked; returns the status it
    /// finished with, made 2 when `report_hooks` and a hook is on then.
    pub(super) fn finish_in_tier1(
        &mut self,
        status: Value,
        ctx: Value,
        regs: Value,
        out: Value,
        report_hooks: bool,
    ) -> Value {
        let ptr = self.ptr;
        let resumed = self
            .call(
                crate::native::helpers::resume as *const () as usize,
                &[ptr, ptr, types::I64, ptr],
                Some(types::I64),
                &[ctx, regs, status, out],
            )
            .expect("returns");
        if !report_hooks {
            return resumed;
        }
        let ts = self
            .b
            .ins()
            .load(ptr, mem(), ctx, std::mem::offset_of!(Ctx, tstate) as i32);
        self.hooked_status(resumed, ts)
    }

    /// This function's CPython frame (see `cpy::frame`).
    pub(crate) fn frame_ptr(&mut self) -> Value {
        match self.s.ctx_fill {
            Some(f) => f.frame,
            None => {
                let ctx = self.s.ctx_v.expect("prologue ran");
                self.b.ins().load(
                    self.ptr,
                    mem(),
                    ctx,
                    std::mem::offset_of!(Ctx, frame) as i32,
                )
            }
        }
    }

    /// Marks the running instruction in this function's frame (`prev_instr`), as CPython
    /// does before anything can look: emitted before every call out of native code, and
    /// before a callee's frame is pushed on top of this one (an inlined callee's own frame
    /// is pushed here first, if it is not yet).
    pub fn set_prev_instr(&mut self) {
        if !self.s.has_frame {
            return;
        }
        // An inlined callee's frame, pushed on first use.
        self.link_inline();
        self.store_prev_instr();
    }

    /// Writes the current instruction's code unit into this function's frame.
    pub(super) fn store_prev_instr(&mut self) {
        let off = self.c.linear.insts[self.s.pc].offset;
        let unit = self.c.code_unit(off) as i64;
        let frame = self.frame_ptr();
        let v = self.b.ins().iconst(self.ptr, unit);
        self.b
            .ins()
            .store(mem(), v, frame, crate::cpy::frame::offset::PREV_INSTR);
    }

    /// `cpy::frame::push`, inline: fills in the frame at `frame` for a call of `callee`'s
    /// function `func` (with its dicts), writes the word before it (its context `ctx`,
    /// see `activation`) and links it as thread `ts`'s innermost frame.
    pub fn push_frame(
        &mut self,
        frame: Value,
        ctx: Value,
        ts: Value,
        callee: &Compiled,
        func: Value,
        (globals, builtins): (Value, Value),
    ) {
        use crate::cpy::frame::{self as cf, offset};
        let code = callee.objects.code.ptr();
        // SAFETY: reading a live code object's first traceable instruction (compiling
        // runs with the GIL held).
        let first = unsafe { cf::first_traceable(code) } as i64;
        let cframe = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, crate::cpy::tstate_offset::CFRAME);
        let prev = self
            .b
            .ins()
            .load(self.ptr, mem(), cframe, cf::CFRAME_CURRENT);
        let zero = self.b.ins().iconst(self.ptr, 0);
        let code_v = self.b.ins().iconst(self.ptr, code as i64);
        let first_v = self.b.ins().iconst(self.ptr, first);
        let tail = self.b.ins().iconst(types::I64, cf::tail_word());
        for (v, off) in [
            (func, offset::FUNC),
            (globals, offset::GLOBALS),
            (builtins, offset::BUILTINS),
            (zero, offset::LOCALS),
            (code_v, offset::CODE),
            (zero, offset::FRAME_OBJ),
            (prev, offset::PREVIOUS),
            (first_v, offset::PREV_INSTR),
            (tail, offset::TAIL),
        ] {
            self.b.ins().store(mem(), v, frame, off);
        }
        for i in 0..callee.nlocalsplus as i32 {
            self.b
                .ins()
                .store(mem(), zero, frame, offset::LOCALSPLUS + 8 * i);
        }
        self.b
            .ins()
            .store(mem(), ctx, frame, -(crate::activation::BACK_POINTER as i32));
        self.b.ins().store(mem(), frame, cframe, cf::CFRAME_CURRENT);
    }

    /// `cpy::frame::pop`, inline: unlinks the frame at `frame` from thread `ts`'s chain;
    /// one that something looked at (a frame object, a locals dict) is finished in Rust.
    pub fn pop_frame(&mut self, frame: Value, ts: Value) {
        use crate::cpy::frame::{self as cf, offset};
        let cframe = self
            .b
            .ins()
            .load(self.ptr, mem(), ts, crate::cpy::tstate_offset::CFRAME);
        let prev = self.b.ins().load(self.ptr, mem(), frame, offset::PREVIOUS);
        self.b.ins().store(mem(), prev, cframe, cf::CFRAME_CURRENT);
        // A frame object, a locals dict, or synced slots (stacktop) need the slow pop.
        let fo = self.b.ins().load(self.ptr, mem(), frame, offset::FRAME_OBJ);
        let dict = self.b.ins().load(self.ptr, mem(), frame, offset::LOCALS);
        let tail = self.b.ins().load(types::I64, mem(), frame, offset::TAIL);
        let seen = self.b.ins().bor(fo, dict);
        let seen = self.b.ins().bor(seen, tail);
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let done = self.b.create_block();
        self.b.ins().brif(seen, slow, &[], done, &[]);
        self.b.switch_to_block(slow);
        let had = std::mem::replace(&mut self.s.has_frame, false);
        self.call(
            crate::native::helpers::finish_pop as *const () as usize,
            &[self.ptr],
            None,
            &[frame],
        );
        self.s.has_frame = had;
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Counts a call of a `@tiered` wrapper that ran native code, in the wrapper's own
    /// counters (`stats(f)`), as its Rust entry counts one; `entry` is its `Entry`.
    pub fn count_native_call(&mut self, entry: Value) {
        use crate::runtime::Entry;
        for off in [Entry::CALLS_OFFSET, Entry::NATIVE_CALLS_OFFSET] {
            let n = self.b.ins().load(types::I64, mem(), entry, off);
            let n = self.b.ins().iadd_imm_s(n, 1);
            self.b.ins().store(mem(), n, entry, off);
        }
    }

    /// Calls a helper at `addr` with the given parameter types and optional i64 result.
    pub fn call(
        &mut self,
        addr: usize,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        let f = self.b.ins().iconst(self.ptr, addr as i64);
        self.call_value(addr, f, params, ret, args)
    }

    /// Calls the function pointer `f` (a runtime value); `key` names its signature (the
    /// helper's address, or any other number unique to the signature).
    pub fn call_value(
        &mut self,
        key: usize,
        f: Value,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        // Whatever runs out there may look at the stack: this frame's line is current.
        self.set_prev_instr();
        self.call_unmarked(key, f, params, ret, args)
    }

    /// `call_value` without marking this frame's instruction first (for what links it, or
    /// what marked it already).
    pub(crate) fn call_unmarked(
        &mut self,
        key: usize,
        f: Value,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        let result = self.call_unreloaded(key, f, params, ret, args);
        // After every call, not only those given the register file: a cached value
        // live across any call gets spilled by the register allocator, which measured
        // slower than these reloads (pysum 2.4 -> 2.9 us).
        self.reload_cached();
        result
    }

    /// `call_unmarked` without the reload of cached registers after it: for a call whose paths
    /// all join at a block that reloads them once (`op`'s slow paths).
    pub(super) fn call_unreloaded(
        &mut self,
        key: usize,
        f: Value,
        params: &[Type],
        ret: Option<Type>,
        args: &[Value],
    ) -> Option<Value> {
        let addr = key;
        let sig = match self.sig_cache.iter().find(|(a, _)| *a == addr) {
            Some(&(_, s)) => s,
            None => {
                let mut sig = Signature::new(self.b.func.signature.call_conv);
                sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
                sig.returns.extend(ret.map(AbiParam::new));
                let s = self.b.import_signature(sig);
                self.sig_cache.push((addr, s));
                s
            }
        };
        let call = self.b.ins().call_indirect(sig, f, args);
        self.b.inst_results(call).first().copied()
    }

    /// Calls a helper taking (ctx, regs, pc[, extra]) and returning an i64 status.
    pub fn call_pc_helper(&mut self, addr: usize, pc: usize, extra: Option<u32>) -> Value {
        self.pc_helper_call(addr, pc, extra, true)
    }

    /// `call_pc_helper`, with the cached registers reloaded after it only if `reload`.
    pub(super) fn pc_helper_call(
        &mut self,
        addr: usize,
        pc: usize,
        extra: Option<u32>,
        reload: bool,
    ) -> Value {
        let ctx = self.ctx();
        let regs = self.regs();
        let pcv = self.b.ins().iconst(types::I32, pc as i64);
        let mut params = vec![self.ptr, self.ptr, types::I32];
        let mut args = vec![ctx, regs, pcv];
        if let Some(x) = extra {
            params.push(types::I32);
            args.push(self.b.ins().iconst(types::I32, x as i64));
        }
        // Whatever runs out there may look at the stack: this frame's line is current.
        self.set_prev_instr();
        let f = self.b.ins().iconst(self.ptr, addr as i64);
        let r = self.call_unreloaded(addr, f, &params, Some(types::I64), &args);
        if reload {
            self.reload_cached();
        }
        r.expect("returns")
    }

    pub(super) fn call_unreachable_and_fail(&mut self) {
        let r = self
            .call(
                crate::native::helpers::unreachable as *const () as usize,
                &[],
                Some(types::I64),
                &[],
            )
            .expect("returns");
        self.leave(r);
    }

    /// The `_PyCFrame` loaded at the entry (`Scope::cframe`; the prologue loads it where an
    /// EvalBreaker checks for hooks).
    pub(crate) fn cframe(&mut self) -> Value {
        let var = self.s.cframe.expect("the prologue loaded the cframe");
        self.b.use_var(var)
    }

    /// The function object being run.
    pub(crate) fn func_ptr(&mut self) -> Value {
        self.ctx_word(|_, f| f.func, std::mem::offset_of!(Ctx, func) as i32)
    }

    /// The thread state this code runs on.
    pub(crate) fn thread_state(&mut self) -> Value {
        self.ctx_word(|_, f| f.thread.0, std::mem::offset_of!(Ctx, tstate) as i32)
    }

    /// Op `pc`'s C call `f(args...)` (pointer arguments) returning a new reference: NULL
    /// raised (`raise_if`), anything else is the op's result.
    pub fn call_for_result(&mut self, pc: usize, f: usize, args: &[Value]) {
        let params = vec![self.ptr; args.len()];
        let r = self
            .call(f, &params, Some(self.ptr), args)
            .expect("returns");
        let failed = self.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
        self.raise_if(pc, failed);
        let dst = self.c.linear.insts[pc].dst;
        self.set(dst, tag::OBJ, r);
    }

    /// The end of a direct call at `pc` whose callee's status is `status` (0 returned, 1
    /// raised, 2 returned with a trace or profile hook on) and result is in `out`: raises
    /// as `raise_if` does; else stores the result in `dst` and goes to `done`, except that
    /// with a hook on this function goes on in tier 1 from the next instruction (`tracing`;
    /// a callee emitted inline leaves to its exit, where tier 1 finishes it).
    pub fn finish_direct_call(
        &mut self,
        pc: usize,
        status: Value,
        out: Value,
        dst: u32,
        done: Block,
    ) {
        let not_ok = self.b.create_block();
        self.b.set_cold_block(not_ok);
        let ok = self.b.create_block();
        self.b.ins().brif(status, not_ok, &[], ok, &[]);
        self.b.switch_to_block(not_ok);
        let raised = self.b.ins().icmp_imm_s(IntCC::Equal, status, 1);
        let hooked = self.b.create_block();
        self.b.set_cold_block(hooked);
        self.raise_if(pc, raised);
        self.b.ins().jump(hooked, &[]);
        self.b.switch_to_block(hooked);
        self.store_out(out, dst);
        self.leave_for_tier1(pc + 1);
        self.b.switch_to_block(ok);
        self.store_out(out, dst);
        self.b.ins().jump(done, &[]);
    }

    /// Moves the Value at `out` into register `dst`, releasing the old value after it
    /// (as CPython stores a call's result).
    pub(super) fn store_out(&mut self, out: Value, dst: u32) {
        let t = self.b.ins().load(types::I64, mem(), out, 0);
        let p = self.b.ins().load(types::I64, mem(), out, 8);
        self.reset(dst);
        self.store_reg(dst, t, p);
    }

    /// Calls a helper running instruction `pc` with the status protocol, where -1 means
    /// its guard failed (branch to `fail`).
    pub fn call_guarded_helper(&mut self, pc: usize, helper: usize, fail: Block) {
        let r = self.call_pc_helper(helper, pc, None);
        let missed = self.b.ins().icmp_imm_s(IntCC::Equal, r, -1);
        self.fail_if(missed, fail);
        self.check_status(pc, r);
    }

    /// The address of this function's frame area for direct calls (see
    /// `ops::calls::direct_frame_size`), made on first use.
    pub fn call_frame(&mut self) -> Value {
        let slot = match self.s.call_slot {
            Some(s) => s,
            None => {
                let size = ops::calls::direct_frame_size(self.c);
                let s = self.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    size,
                    4,
                ));
                self.s.call_slot = Some(s);
                s
            }
        };
        self.b.ins().stack_addr(self.ptr, slot, 0)
    }

    /// The address of this function's argument array for native builtin calls (16
    /// words: the vectorcall offset slot and up to 15 arguments), made on first use.
    pub fn call_args_array(&mut self) -> Value {
        let slot = match self.args_slot {
            Some(s) => s,
            None => {
                let s = self.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    16 * 8,
                    3,
                ));
                self.args_slot = Some(s);
                s
            }
        };
        self.b.ins().stack_addr(self.ptr, slot, 0)
    }

    /// Offset of a `Ctx` field, for templates reading it.
    pub fn ctx_offset_globals() -> i32 {
        std::mem::offset_of!(Ctx, globals) as i32
    }

    /// Offset of `Ctx::builtins`.
    pub fn ctx_offset_builtins() -> i32 {
        std::mem::offset_of!(Ctx, builtins) as i32
    }
}
