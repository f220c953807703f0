//! Control flow: slow paths and the status exit, leaving for tier 1, raising, edges with
//! their moves, branches and returns.

use super::*;

impl<'a> Emit<'a> {
    /// Once this code was replaced (`Compiled::invalidate`: too many deopts, or an op
    /// quickened late), leaves it for tier 1 at instruction `at`, which continues there
    /// (and recompiles once hot). Emitted only after the helper calls that may replace it
    /// (deopts; ops in loops that may quicken late), so the check costs nothing on hot
    /// paths; not in a trampoline, nor inside a callee emitted inline (whose instructions
    /// are not this code's).
    pub(super) fn leave_if_replaced(&mut self, at: usize) {
        if self.invalid_flag == 0 || self.inlining {
            return;
        }
        let fa = self.b.ins().iconst(self.ptr, self.invalid_flag as i64);
        let invalid = self.b.ins().load(types::I8, mem(), fa, 0);
        self.leave_if(invalid, at);
    }

    /// Leaves for tier 1 at instruction `at` when `cond` is non-zero (a cold exit), else
    /// goes on in a fresh block.
    pub(super) fn leave_if(&mut self, cond: Value, at: usize) {
        let leave = self.b.create_block();
        self.b.set_cold_block(leave);
        self.fail_if(cond, leave);
        let go = self.b.current_block().expect("in a block");
        self.b.switch_to_block(leave);
        self.leave_for_tier1(at);
        self.b.switch_to_block(go);
    }

    /// Leaves for tier 1 at instruction `at`: status 2 + `at`. A callee emitted inline
    /// writes its context first (tier 1 reads it; its frame is linked already, since
    /// only a call out of it can make it leave), and its caller's exit block has tier 1
    /// finish it (`inline_body`).
    pub(super) fn leave_for_tier1(&mut self, at: usize) {
        if self.inlining {
            self.ctx();
        }
        self.return_status(2 + at as i64);
    }

    /// Status `status` of a finished call (0 or 1), made 2 when it returned with a trace or
    /// profile hook on thread state `ts` (slow paths only).
    pub(super) fn hooked_status(&mut self, status: Value, ts: Value) -> Value {
        let on = self.hooks_loaded(ts);
        let returned = self.b.ins().icmp_imm_s(IntCC::Equal, status, 0);
        let on = self.b.ins().icmp_imm_s(IntCC::NotEqual, on, 0);
        let both = self.b.ins().band(returned, on);
        let two = self.b.ins().iconst(types::I64, 2);
        self.b.ins().select(both, two, status)
    }

    /// Leaves for tier 1 at instruction `at` if a trace or profile hook is on (`tracing`).
    pub fn leave_if_hooked(&mut self, at: usize) {
        let ts = self.thread_state();
        let on = self.hooks_loaded(ts);
        self.leave_if(on, at);
    }

    pub(super) fn return_status(&mut self, status: i64) {
        let v = self.b.ins().iconst(types::I64, status);
        self.leave(v);
    }

    /// `helper(ctx, regs, pc)` (`exec` or `deopt_exec`) for `op`'s slow paths: cached
    /// registers are reloaded where the paths join (`after_slow_path`).
    pub(super) fn slow_call(&mut self, helper: usize, pc: usize) -> Value {
        self.pc_helper_call(helper, pc, None, false)
    }

    /// After a slow path ran instruction `pc` in tier 1 and returned status `r`: the next
    /// instruction, the handler (if it raised and one covers it), or leaving with status 1.
    pub(super) fn after_slow_path(&mut self, pc: usize, r: Value) {
        self.reload_cached();
        self.check_status(pc, r);
        // An op in a loop that quickened only now may have replaced this code
        // (`Compiled::specialized_late`): the loop continues in tier 1 from the next op.
        if let crate::lower::LKind::Op(op) = self.c.linear.insts[pc].kind {
            if self.c.linear.in_cycle[pc] && !crate::quick::tiers_of(op.kind()).1.is_empty() {
                self.leave_if_replaced(pc + 1);
            }
            // A trace or profile hook installed meanwhile (by a signal handler, or by
            // something a call ran): its events come from tier 1.
            if matches!(op, Op::EvalBreaker {} | Op::Call { .. } | Op::CallEx { .. }) {
                self.leave_if_hooked(pc + 1);
            }
        }
        let next = self.s.blocks[pc + 1];
        self.b.ins().jump(next, &[]);
    }

    /// After a helper ran instruction `pc` and returned `r` (0 done, 1 exception leaves,
    /// 2 + handler): continues in a fresh block when 0, else goes to the function's status
    /// exit, which leaves or enters the handler. One exit per function, not a cold block
    /// or two per op (a 65-op loop body's machine code: 36,792 -> 33,656 bytes).
    pub fn check_status(&mut self, pc: usize, r: Value) {
        let unwind = self.c.linear.insts[pc].unwind;
        let handler = (unwind != NO_EDGE).then(|| self.c.linear.edges[unwind as usize].target);
        let (exit, handlers) = match &mut self.s.status_exit {
            Some(x) => x,
            None => {
                let b = self.b.create_block();
                self.b.set_cold_block(b);
                self.b.append_block_param(b, types::I64);
                self.s.status_exit.insert((b, Vec::new()))
            }
        };
        if let Some(h) = handler.filter(|h| !handlers.contains(h)) {
            handlers.push(h);
        }
        let exit = *exit;
        let ok = self.b.create_block();
        self.b.ins().brif(r, exit, &[BlockArg::Value(r)], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// The status exit (`check_status`), once the body is emitted: 2 + a handler's
    /// instruction enters that handler (the helper unwound to it); 1 leaves with the
    /// exception.
    pub(super) fn emit_status_exit(&mut self) {
        let Some((exit, handlers)) = self.s.status_exit.take() else {
            return;
        };
        self.b.switch_to_block(exit);
        let r = self.b.block_params(exit)[0];
        for h in handlers {
            let other = self.b.create_block();
            self.b.set_cold_block(other);
            let is = self.b.ins().icmp_imm_s(IntCC::Equal, r, 2 + h as i64);
            self.b
                .ins()
                .brif(is, self.s.blocks[h as usize], &[], other, &[]);
            self.b.switch_to_block(other);
        }
        self.return_status(1);
    }

    /// After an op's C call at `pc` raised (outside any tier-1 helper): the traceback
    /// line, then the handler covering `pc` or leaving with status 1.
    pub fn raise_at(&mut self, pc: usize) {
        let r = self.call_pc_helper(
            crate::native::helpers::call_failed as *const () as usize,
            pc,
            None,
        );
        self.check_status(pc, r);
    }

    /// After an op's C call at `pc`: if `failed` is non-zero the call raised, and that goes
    /// as `raise_at` says; otherwise code continues in a fresh block.
    pub fn raise_if(&mut self, pc: usize, failed: Value) {
        self.raise_if_after(pc, failed, |_| {});
    }

    /// `raise_if`, with `undo` emitted first on the raising path (what the op had entered
    /// or taken before its C call, such as a recursion level).
    pub fn raise_if_after(&mut self, pc: usize, failed: Value, undo: impl FnOnce(&mut Self)) {
        let raised = self.b.create_block();
        self.b.set_cold_block(raised);
        let ok = self.b.create_block();
        self.b.ins().brif(failed, raised, &[], ok, &[]);
        self.b.switch_to_block(raised);
        undo(self);
        self.raise_at(pc);
        // raise_at never continues here (the status after a raise is never 0).
        self.b.ins().jump(ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// Takes edge `e` from instruction `pc`: its moves (inline when all are moves of
    /// values dead afterwards, else through the helper), then the jump.
    pub(super) fn edge(&mut self, pc: usize, ei: u32) {
        let e: Edge = self.c.linear.edges[ei as usize];
        let moves =
            &self.c.linear.moves[e.moves_start as usize..(e.moves_start + e.moves_len) as usize];
        // Copies of unboxed numbers must box them first (one object per value): that, and
        // only that, takes the helper; everything else moves or increfs inline.
        let done = self.b.create_block();
        let inline = self.b.create_block();
        let helper = self.b.create_block();
        self.b.set_cold_block(helper);
        let copies: Vec<u32> = moves.iter().filter(|m| !m.2).map(|m| m.0).collect();
        if copies.is_empty() {
            self.b.ins().jump(inline, &[]);
        } else {
            let mut any_unboxed = self.b.ins().iconst(types::I8, 0);
            for &s in &copies {
                let t = self.tag(s);
                let is_num =
                    self.b
                        .ins()
                        .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, t, tag::INT as i64);
                any_unboxed = self.b.ins().bor(any_unboxed, is_num);
            }
            self.b.ins().brif(any_unboxed, helper, &[], inline, &[]);
        }
        self.b.switch_to_block(inline);
        for &(s, d, movable) in moves {
            let t = self.tag(s);
            let p = self.payload(s, types::I64);
            if !movable {
                self.incref_loaded(t, p);
            }
            if self.may_hold_old(d, e.target as usize) {
                self.drop_reg(d);
            }
            self.store_reg(d, t, p);
            if movable {
                self.clear(s);
            }
        }
        self.release_dead(
            e.drops_start,
            e.drops_len,
            self.c.linear.in_cycle[e.target as usize],
            &[],
        );
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(helper);
        if !copies.is_empty() {
            let r = self.call_pc_helper(
                crate::native::helpers::edge as *const () as usize,
                pc,
                Some(ei),
            );
            let fail = self.b.create_block();
            self.b.ins().brif(r, fail, &[], done, &[]);
            self.b.switch_to_block(fail);
            self.return_status(1);
        } else {
            self.b.ins().jump(done, &[]);
        }
        self.b.switch_to_block(done);
        let target = self.s.blocks[e.target as usize];
        self.b.ins().jump(target, &[]);
    }

    /// A Jump terminator.
    pub fn jump(&mut self, pc: usize, edge: u32) {
        self.edge(pc, edge);
    }

    /// A Branch terminator: unboxed bools are tested inline, anything else by the helper.
    pub fn branch(&mut self, pc: usize, cond: u32, then_edge: u32, else_edge: u32) {
        if self.s.bool_regs[cond as usize] {
            // Always an unboxed bool here: test its payload directly.
            let v = self.payload(cond, types::I8);
            let (on_true, on_false) = self.branch_sides(pc);
            self.b.ins().brif(v, on_true, &[], on_false, &[]);
            self.b.switch_to_block(on_true);
            self.edge(pc, then_edge);
            self.b.switch_to_block(on_false);
            self.edge(pc, else_edge);
            return;
        }
        let t = self.tag(cond);
        let is_bool = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::BOOL as i64);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let decide = self.b.create_block();
        self.b.append_block_param(decide, types::I64);
        self.b.ins().brif(is_bool, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let v = self.payload(cond, types::I8);
        let v = self.b.ins().uextend(types::I64, v);
        self.b.ins().jump(decide, &[BlockArg::Value(v)]);
        self.b.switch_to_block(slow);
        let r = self.call_pc_helper(
            crate::native::helpers::truth as *const () as usize,
            pc,
            Some(cond),
        );
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
        let fail = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(neg, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        self.return_status(1);
        self.b.switch_to_block(ok);
        self.b.ins().jump(decide, &[BlockArg::Value(r)]);
        self.b.switch_to_block(decide);
        let truth = self.b.block_params(decide)[0];
        let on_true = self.b.create_block();
        let on_false = self.b.create_block();
        self.b.ins().brif(truth, on_true, &[], on_false, &[]);
        self.b.switch_to_block(on_true);
        self.edge(pc, then_edge);
        self.b.switch_to_block(on_false);
        self.edge(pc, else_edge);
    }

    /// The Drop right after instruction `pc`, if any (its range of `drops`), and the
    /// instruction after that.
    pub(super) fn drops_after(&self, pc: usize) -> (Option<(u32, u32)>, usize) {
        match self.c.linear.insts[pc + 1].kind {
            crate::lower::LKind::Drop { start, len } => (Some((start, len)), pc + 2),
            _ => (None, pc + 1),
        }
    }

    /// The registers the Drop right after instruction `pc` releases (none if no Drop
    /// follows it).
    pub fn dropped_after(&self, pc: usize) -> &[u32] {
        match self.drops_after(pc).0 {
            Some((start, len)) => &self.c.linear.drops[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// On a path of its own where the template at `pc` moved the registers `moved` out
    /// (a direct call's arguments at their last use): the Drop right after it, if any,
    /// without those (empty here), then on past it. The template's other paths go
    /// through the whole Drop (and count the template's run where they join, as this
    /// path counts it here).
    pub fn continue_moved(&mut self, pc: usize, moved: &[u32]) {
        if let crate::lower::LKind::Op(op) = self.c.linear.insts[pc].kind {
            self.count_template(op);
        }
        let (drops, next_pc) = self.drops_after(pc);
        if let Some((start, len)) = drops {
            self.release_dead(start, len, self.c.linear.in_cycle[pc + 1], moved);
        }
        let next = self.s.blocks[next_pc];
        self.b.ins().jump(next, &[]);
    }

    /// On a path of its own where the template at `pc` wrote the constant bool `value`
    /// into `r` (a loop's end): when the instruction after it (past a Drop) is the
    /// Branch on `r`, that side is taken directly, the dead values released on the way as
    /// `continue_after` releases them; otherwise on to the next instruction.
    pub fn continue_known(&mut self, pc: usize, r: u32, value: bool) {
        let (drops, branch_pc) = self.drops_after(pc);
        match self.c.linear.insts[branch_pc].kind {
            crate::lower::LKind::Branch { cond, .. } if cond == r => {
                if let Some((start, len)) = drops {
                    self.release_dead(start, len, self.c.linear.in_cycle[pc + 1], &[]);
                }
                let (on_true, on_false) = self.branch_sides(branch_pc);
                self.b
                    .ins()
                    .jump(if value { on_true } else { on_false }, &[]);
            }
            _ => {
                let next = self.s.blocks[pc + 1];
                self.b.ins().jump(next, &[]);
            }
        }
    }

    /// The true and false sides of the Branch at `pc` (on a bool-only register).
    pub(super) fn branch_sides(&mut self, pc: usize) -> (Block, Block) {
        if let Some(&sides) = self.s.branch_sides.get(&pc) {
            return sides;
        }
        let sides = (self.b.create_block(), self.b.create_block());
        self.s.branch_sides.insert(pc, sides);
        sides
    }

    /// Where instruction `pc`'s template continues: the next instruction, or, when that
    /// is a Branch on the bool the template just wrote, straight to the Branch's side
    /// (the value is in a machine register already; the register file has it too).
    pub(super) fn continue_after(&mut self, pc: usize) {
        let (pc, skip) = match self.fuse_truth(pc) {
            Some(r) => (pc + 1, Some(r)),
            None => (pc, None),
        };
        let next = self.s.blocks[pc + 1];
        // Values the template's op consumed die before the Branch: released on the way.
        let (drops, branch_pc) = self.drops_after(pc);
        let fused = match (self.s.last_bool, self.c.linear.insts[branch_pc].kind) {
            (Some((r, v, block, stores)), crate::lower::LKind::Branch { cond, .. })
                if r == cond
                    && self.s.bool_regs[r as usize]
                    && self.b.current_block() == Some(block) =>
            {
                Some((r, v, stores))
            }
            _ => None,
        };
        match fused {
            Some((r, v, stores)) => {
                if self.s.reads[r as usize] == 1 {
                    // The Branch is the register's only reader and takes the value from
                    // here: nothing will read what the template stored (the slow path
                    // stores its own), so the stores go.
                    for st in stores {
                        self.b.func.layout.remove_inst(st);
                    }
                }
                if let Some((start, len)) = drops {
                    self.release_dead(start, len, self.c.linear.in_cycle[pc + 1], skip.as_slice());
                }
                let (on_true, on_false) = self.branch_sides(branch_pc);
                self.b.ins().brif(v, on_true, &[], on_false, &[]);
            }
            None => {
                self.b.ins().jump(next, &[]);
            }
        }
    }

    /// When the template at `pc` just wrote an unboxed bool that the next instruction, a
    /// Truth, is the only reader of (`Compare[CompareInt]` before an `if`): the Truth's
    /// result is that very value, written here on the template's fast path, and the
    /// bool's own stores go (no frame state holds it, so nothing else ever reads them; its
    /// register stays empty, as it was). Returns that register (the Drop releasing it
    /// after the Truth has nothing to do on this path); the caller goes on after the Truth.
    /// The Truth's own code still runs for the template's slow path.
    pub(super) fn fuse_truth(&mut self, pc: usize) -> Option<u32> {
        let (r, v, block, stores) = self.s.last_bool?;
        let inst = self.c.linear.insts[pc + 1];
        let crate::lower::LKind::Op(Op::Truth {}) = inst.kind else {
            return None;
        };
        let fusable = self.b.current_block() == Some(block)
            && self.c.linear.operands[inst.args as usize] == r
            && self.s.reads[r as usize] == 1
            && !self.s.in_state[r as usize]
            && !self.c.linear.reused[r as usize];
        if !fusable {
            return None;
        }
        for st in stores {
            self.b.func.layout.remove_inst(st);
        }
        let at = std::mem::replace(&mut self.s.pc, pc + 1);
        self.count_template(Op::Truth {});
        self.set(inst.dst, tag::BOOL, v);
        self.s.pc = at;
        Some(r)
    }

    /// A Return terminator: the value moves to `*out`, or is copied when `kept` (the
    /// register holds a local the frame returns with; an unboxed number is copied as it
    /// is); status 0.
    pub fn ret(&mut self, r: u32, kept: bool) {
        if !self.inlining {
            // The frame is at its RETURN_VALUE: a frame object that outlives the call
            // keeps the locals of this Return's state (`activation::sync_at_pop`).
            self.store_prev_instr();
        }
        let t = self.tag(r);
        let p = self.payload(r, types::I64);
        let out = self.s.out_v.expect("prologue ran");
        self.b.ins().store(mem(), t, out, 0);
        self.b.ins().store(mem(), p, out, 8);
        if kept {
            self.incref_loaded(t, p);
        } else {
            self.clear(r);
        }
        self.return_status(0);
    }

    /// An Unreachable terminator.
    pub fn unreachable(&mut self) {
        self.call_unreachable_and_fail();
    }
}
