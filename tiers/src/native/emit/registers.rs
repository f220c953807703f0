//! Register access for templates: tags and payloads, cached registers, boxing, type
//! guards, reference counts, and releasing what dies.

use super::*;

impl<'a> Emit<'a> {
    /// The `out` argument: where the result goes.
    pub fn out(&self) -> Value {
        self.s.out_v.expect("prologue ran")
    }

    /// The `regs` argument: this function's register file.
    pub fn regs(&self) -> Value {
        self.s.regs_v.expect("prologue ran")
    }

    /// Register `r`'s tag.
    pub fn tag(&mut self, r: u32) -> Value {
        if let Some(v) = self.s.cached[r as usize] {
            return self.b.use_var(v.tag);
        }
        let regs = self.regs();
        self.b.ins().load(types::I64, mem(), regs, (r * 16) as i32)
    }

    /// Register `r`'s payload as `ty`.
    pub fn payload(&mut self, r: u32, ty: Type) -> Value {
        if let Some(v) = self.s.cached[r as usize] {
            if ty == types::F64 {
                return self.b.use_var(v.float);
            }
            let p = self.b.use_var(v.payload);
            return match ty {
                types::I64 => p,
                t if t.is_int() => self.b.ins().ireduce(t, p),
                t => unreachable!("register payloads are read as ints or f64, not {t}"),
            };
        }
        let regs = self.regs();
        self.b.ins().load(ty, mem(), regs, (r * 16 + 8) as i32)
    }

    /// Writes register `r`'s tag and payload (no drop), in memory and in its cache;
    /// returns the two stores.
    pub fn store_reg(&mut self, r: u32, t: Value, payload: Value) -> [Inst; 2] {
        let regs = self.regs();
        let store_tag = self.b.ins().store(mem(), t, regs, (r * 16) as i32);
        let store_payload = self
            .b
            .ins()
            .store(mem(), payload, regs, (r * 16 + 8) as i32);
        if let Some(v) = self.s.cached[r as usize] {
            self.b.def_var(v.tag, t);
            // Both views of the payload; whichever is unused is dead code.
            match self.b.func.dfg.value_type(payload) {
                types::F64 => {
                    let bits = self
                        .b
                        .ins()
                        .bitcast(types::I64, MemFlagsData::new(), payload);
                    self.b.def_var(v.payload, bits);
                    self.b.def_var(v.float, payload);
                }
                types::I64 => {
                    let x = self
                        .b
                        .ins()
                        .bitcast(types::F64, MemFlagsData::new(), payload);
                    self.b.def_var(v.payload, payload);
                    self.b.def_var(v.float, x);
                }
                // A narrower payload (a bool's byte) leaves the word's upper bytes as
                // they were in memory; readers of such a register read only its width,
                // and the float view is only read under a float tag.
                _ => {
                    let p = self.b.ins().uextend(types::I64, payload);
                    self.b.def_var(v.payload, p);
                }
            }
        }
        [store_tag, store_payload]
    }

    /// Reloads every cached register from the register file (after a call, which may
    /// have written it).
    pub(super) fn reload_cached(&mut self) {
        let Some(regs) = self.s.regs_v else { return };
        for r in 0..self.s.cached.len() as u32 {
            self.reload_register(regs, r);
        }
    }

    /// Reloads register `r`'s cached words, if it has them, from the register file.
    pub(super) fn reload_register(&mut self, regs: Value, r: u32) {
        if let Some(v) = self.s.cached[r as usize] {
            let (t, p) = self.load_words(regs, r);
            let x = self.b.ins().bitcast(types::F64, MemFlagsData::new(), p);
            self.b.def_var(v.tag, t);
            self.b.def_var(v.payload, p);
            self.b.def_var(v.float, x);
        }
    }

    /// Overwrites register `r` (dropping its old content) with `tag` and `payload`.
    ///
    /// The old content is read first and released after the store: the release may call
    /// a deallocator, and a result computed before it would have to survive that call
    /// (a float in an XMM register is spilled across any call on x86-64, which put a
    /// stack round trip into every float loop's dependency chain).
    pub fn set(&mut self, r: u32, t: u8, payload: Value) {
        // The old payload comes from memory even for a cached register: the cached word
        // would otherwise stay live across the loop just for this (a float register's
        // integer view, spilled every iteration).
        let old = self.may_hold_old(r, self.s.pc).then(|| {
            let regs = self.regs();
            let p = self
                .b
                .ins()
                .load(self.ptr, mem(), regs, (r * 16 + 8) as i32);
            (self.tag(r), p)
        });
        let tv = self.b.ins().iconst(types::I64, t as i64);
        let stores = self.store_reg(r, tv, payload);
        if let Some((old_tag, old_payload)) = old {
            self.drop_loaded(old_tag, old_payload);
        }
        self.s.last_bool = match (t, self.b.current_block()) {
            (tag::BOOL, Some(block)) => Some((r, payload, block, stores)),
            _ => None,
        };
    }

    /// Empties register `r` (dropping its content) before an op writes it in memory.
    pub fn reset(&mut self, r: u32) {
        if self.may_hold_old(r, self.s.pc) {
            self.drop_reg(r);
        }
        self.clear(r);
    }

    /// Stores the NULL tag without dropping (after the content was moved out).
    pub fn clear(&mut self, r: u32) {
        let regs = self.regs();
        let z = self.b.ins().iconst(types::I64, tag::NULL as i64);
        self.b.ins().store(mem(), z, regs, (r * 16) as i32);
        if let Some(v) = self.s.cached[r as usize] {
            self.b.def_var(v.tag, z);
        }
    }

    /// Boxes register `r` in place if it holds an unboxed int or float (as tier 1 boxes
    /// the operands of ops that hand them to CPython), so it then holds an object unless
    /// it held something else (a bool, NULL). Out of memory branches to `slow` with the
    /// error cleared: the generic op there boxes again and raises it properly. A small int
    /// (a loop counter, an index: most ints boxed) takes CPython's cached object inline
    /// (`small_int`); anything else is a call out of line (`helpers::box_register`): all
    /// inline, it was about 40 Cranelift instructions per operand, most of a small
    /// function's code and compile time, while the call cost a generator step of nqueens'
    /// about 40 instructions for each of the two ints it boxes (its loop variable, into
    /// the frame, and the value it yields). No code for a register that never holds a
    /// number (`values::number_registers`).
    pub fn box_number(&mut self, r: u32, slow: Block) {
        if !self.may_be_number(r) {
            return;
        }
        let t = self.tag(r);
        // INT and FLOAT are adjacent tags: one unsigned comparison.
        let k = self.b.ins().iadd_imm_s(t, -(tag::INT as i64));
        let number = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, k, 1);
        let (boxing, done) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(number, boxing, &[], done, &[]);
        self.b.switch_to_block(boxing);
        let out_of_line = self.b.create_block();
        self.b.set_cold_block(out_of_line);
        let cached = self.b.create_block();
        self.b.append_block_param(cached, self.ptr);
        let is_int = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::INT as i64);
        let int = self.b.create_block();
        self.b.ins().brif(is_int, int, &[], out_of_line, &[]);
        self.b.switch_to_block(int);
        let v = self.payload(r, types::I64);
        if self.small_int(v, cached, out_of_line) {
            self.b.switch_to_block(cached);
            let p = self.b.block_params(cached)[0];
            // The register held an unboxed int, which owns nothing.
            let obj = self.b.ins().iconst(types::I64, tag::OBJ as i64);
            self.store_reg(r, obj, p);
            self.b.ins().jump(done, &[]);
        } else {
            self.b.ins().jump(out_of_line, &[]);
        }
        self.b.switch_to_block(out_of_line);
        let failed = self.box_out_of_line(
            r,
            crate::native::helpers::box_register as *const () as usize,
        );
        self.b.ins().brif(failed, slow, &[], done, &[]);
        self.b.switch_to_block(done);
    }

    /// Branches to `hit` with CPython's own object for int `v` (an i64), a new reference,
    /// when it is a small int (-5..=256, CPython's table: `cpy::small_ints`), else to
    /// `miss`; false (nothing emitted) when the table was not found.
    pub(super) fn small_int(&mut self, v: Value, hit: Block, miss: Block) -> bool {
        use crate::cpy::ONE_DIGIT_INT_SIZE;
        // SAFETY: GIL held while compiling (compile's contract).
        let Some(base) = (unsafe { crate::cpy::small_ints() }) else {
            return false;
        };
        let idx = self.b.ins().iadd_imm_s(v, 5);
        let small = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, idx, 261);
        let cached = self.b.create_block();
        self.b.ins().brif(small, cached, &[], miss, &[]);
        self.b.switch_to_block(cached);
        let off = self.b.ins().imul_imm_s(idx, ONE_DIGIT_INT_SIZE as i64);
        let p = self.b.ins().iadd_imm_s(off, base as i64);
        self.incref(p);
        self.b.ins().jump(hit, &[BlockArg::Value(p)]);
        true
    }

    /// Calls `helper` (`box_register` or `operand_object`) on register `r` in memory and
    /// returns its result; the register's cached words are reloaded, as the helper may
    /// have boxed it.
    pub(super) fn box_out_of_line(&mut self, r: u32, helper: usize) -> Value {
        let regs = self.regs();
        let reg = self.b.ins().iadd_imm_s(regs, (r * 16) as i64);
        let x = self
            .call(helper, &[self.ptr], Some(self.ptr), &[reg])
            .expect("returns");
        self.reload_register(regs, r);
        x
    }

    /// A new reference to the int `v` (an i64), or NULL with MemoryError set:
    /// `PyLong_FromLongLong` with its common cases inline, as 3.11 does them: a small int
    /// from CPython's own table (when `cpy::small_ints` found it), or a one-digit int
    /// allocated and initialized here. Larger ints take the call.
    pub fn new_int(&mut self, v: Value) -> Value {
        use crate::cpy::{DIGIT_MASK, ONE_DIGIT_INT_SIZE};
        let ptr = self.ptr;
        let done = self.b.create_block();
        self.b.append_block_param(done, ptr);
        let one_digit = self.b.create_block();
        let call = self.b.create_block();
        self.b.set_cold_block(call);
        // -MASK <= v <= MASK, as one unsigned comparison.
        let biased = self.b.ins().iadd_imm_s(v, DIGIT_MASK);
        let fits = self
            .b
            .ins()
            .icmp_imm_u(IntCC::UnsignedLessThanOrEqual, biased, 2 * DIGIT_MASK);
        self.b.ins().brif(fits, one_digit, &[], call, &[]);
        self.b.switch_to_block(one_digit);
        let alloc = self.b.create_block();
        if !self.small_int(v, done, alloc) {
            self.b.ins().jump(alloc, &[]);
        }
        self.b.switch_to_block(alloc);
        let size = self.b.ins().iconst(ptr, ONE_DIGIT_INT_SIZE as i64);
        let p = self
            .call(
                pyo3_ffi::PyObject_Malloc as *const () as usize,
                &[ptr],
                Some(ptr),
                &[size],
            )
            .expect("returns");
        let init = self.b.create_block();
        // Out of memory: the call below fails the same way and sets MemoryError.
        self.b.ins().brif(p, init, &[], call, &[]);
        self.b.switch_to_block(init);
        // 3.11's _PyLong_FromMedium: the (static) type, the sign as the size, the digit,
        // then the first reference.
        let long_type = std::ptr::addr_of_mut!(pyo3_ffi::PyLong_Type) as i64;
        let tp = self.b.ins().iconst(ptr, long_type);
        self.b.ins().store(mem(), tp, p, 8);
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, v, 0);
        let minus = self.b.ins().iconst(types::I64, -1);
        let plus = self.b.ins().iconst(types::I64, 1);
        let sign = self.b.ins().select(neg, minus, plus);
        self.b.ins().store(mem(), sign, p, 16);
        let mag = self.b.ins().iabs(v);
        let digit = self.b.ins().ireduce(types::I32, mag);
        self.b.ins().store(mem(), digit, p, 24);
        self.call(
            crate::cpy::_Py_NewReference as *const () as usize,
            &[ptr],
            None,
            &[p],
        );
        self.b.ins().jump(done, &[BlockArg::Value(p)]);
        self.b.switch_to_block(call);
        let p = self
            .call(
                pyo3_ffi::PyLong_FromLongLong as *const () as usize,
                &[types::I64],
                Some(ptr),
                &[v],
            )
            .expect("returns");
        self.b.ins().jump(done, &[BlockArg::Value(p)]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// Register `r` as a borrowed object pointer, for handing to CPython: an object is
    /// read inline; anything else calls `helpers::operand_object` out of line (numbers
    /// boxed in place, bools their singletons); NULL (or boxing out of memory) branches
    /// to `slow`.
    pub fn object_of(&mut self, r: u32, slow: Block) -> Value {
        let t = self.tag(r);
        let is_obj = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let (obj, other, put) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.append_block_param(put, self.ptr);
        self.b.set_cold_block(other);
        self.b.ins().brif(is_obj, obj, &[], other, &[]);
        self.b.switch_to_block(other);
        let helper = crate::native::helpers::operand_object as *const () as usize;
        let o = self.box_out_of_line(r, helper);
        self.b.ins().brif(o, put, &[BlockArg::Value(o)], slow, &[]);
        self.b.switch_to_block(obj);
        let o = self.payload(r, self.ptr);
        self.b.ins().jump(put, &[BlockArg::Value(o)]);
        self.b.switch_to_block(put);
        self.b.block_params(put)[0]
    }

    /// Instruction `pc`'s operands as objects (`object_of`), as tier 1 boxes an op's
    /// operands before running it; anything unusual takes the op's generic path.
    pub fn operand_objects(&mut self, pc: usize) -> Vec<Value> {
        let inst = self.c.linear.insts[pc];
        let slow = self.slow_block();
        (inst.args..inst.args + inst.nargs)
            .map(|i| {
                let r = self.c.linear.operands[i as usize];
                self.object_of(r, slow)
            })
            .collect()
    }

    /// Branches to `fail` unless object `p`'s type is exactly `tp`.
    pub fn guard_type(&mut self, p: Value, tp: *mut pyo3_ffi::PyTypeObject, fail: Block) {
        let ty = self.b.ins().load(self.ptr, mem(), p, 8);
        self.guard_eq(ty, tp as i64, fail);
    }

    /// Register `r` as an object of exactly type `tp` (its pointer), else branches to
    /// `fail`: the guard most templates start with.
    pub fn object_of_type(
        &mut self,
        r: u32,
        tp: *mut pyo3_ffi::PyTypeObject,
        fail: Block,
    ) -> Value {
        let t = self.tag(r);
        self.guard_eq(t, tag::OBJ as i64, fail);
        let p = self.payload(r, self.ptr);
        self.guard_type(p, tp, fail);
        p
    }

    /// Branches to `fail` unless `v == k`.
    pub fn guard_eq(&mut self, v: Value, k: i64, fail: Block) {
        let ok = self.b.create_block();
        let c = self.b.ins().icmp_imm_s(IntCC::Equal, v, k);
        self.b.ins().brif(c, ok, &[], fail, &[]);
        self.b.switch_to_block(ok);
    }

    /// Branches to `fail` if `c` is non-zero.
    pub fn fail_if(&mut self, c: Value, fail: Block) {
        let ok = self.b.create_block();
        self.b.ins().brif(c, fail, &[], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// Where blocks made from now on start, for `cold_since`.
    pub fn cold_mark(&self) -> u32 {
        self.b.func.dfg.num_blocks() as u32
    }

    /// Lays out every block made since `mark` (a rare path a template emitted, with all
    /// the blocks its helpers made) with the cold blocks, after the function's hot code:
    /// what the hot path does not run then does not share its instruction cache lines.
    pub fn cold_since(&mut self, mark: u32) {
        for i in mark..self.b.func.dfg.num_blocks() as u32 {
            self.b.set_cold_block(Block::from_u32(i));
        }
    }

    /// `Py_INCREF(p)`.
    pub fn incref(&mut self, p: Value) {
        let rc = self.b.ins().load(types::I64, mem(), p, 0);
        let rc = self.b.ins().iadd_imm_s(rc, 1);
        self.b.ins().store(mem(), rc, p, 0);
    }

    /// `Py_DECREF(p)`.
    pub fn decref(&mut self, p: Value) {
        let done = self.b.create_block();
        self.decref_then(p, done);
        self.b.switch_to_block(done);
    }

    /// `Py_DECREF(p)`, then on to block `done` (ending the current block): a release that
    /// already has a block to continue in needs no other (blocks are what the register
    /// allocator's liveness walks, about half of compile time).
    fn decref_then(&mut self, p: Value, done: Block) {
        let rc = self.b.ins().load(types::I64, mem(), p, 0);
        let rc = self.b.ins().iadd_imm_s(rc, -1);
        self.b.ins().store(mem(), rc, p, 0);
        let free = self.b.create_block();
        self.b.set_cold_block(free);
        self.b.ins().brif(rc, done, &[], free, &[]);
        self.b.switch_to_block(free);
        self.call(
            crate::native::helpers::dealloc as *const () as usize,
            &[self.ptr],
            None,
            &[p],
        );
        self.b.ins().jump(done, &[]);
    }

    /// A Drop instruction: releases the registers whose values died, then goes on.
    pub(super) fn drop_dead(&mut self, pc: usize, start: u32, len: u32) {
        self.release_dead(start, len, self.c.linear.in_cycle[pc], &[]);
        let next = self.s.blocks[pc + 1];
        self.b.ins().jump(next, &[]);
    }

    /// Releases registers `drops[start..start + len]`, each emptied before its object is
    /// released (a bool-only register owns nothing, nor do those in `skip`, known empty
    /// here); `in_loop`: where this runs is on a cycle.
    pub(super) fn release_dead(&mut self, start: u32, len: u32, in_loop: bool, skip: &[u32]) {
        for i in start..start + len {
            let r = self.c.linear.drops[i as usize];
            if self.s.bool_regs[r as usize] || skip.contains(&r) {
                continue;
            }
            // Outside loops from memory even for a cached register (as `set` reads the
            // old value): its cached words would otherwise stay live across the loop just
            // for a release at its exit. (Inside, the cached words are at hand.)
            let (t, p) = if in_loop {
                (self.tag(r), self.payload(r, self.ptr))
            } else {
                let regs = self.regs();
                self.load_words(regs, r)
            };
            self.clear(r);
            self.drop_loaded(t, p);
        }
    }

    /// Drops whatever register `r` owns.
    pub fn drop_reg(&mut self, r: u32) {
        let t = self.tag(r);
        let p = self.payload(r, self.ptr);
        self.drop_loaded(t, p);
    }

    /// Drops what a finished call of `callee` left in its register file `regs`: after it
    /// returned (`status` 0), only what a return leaves (`Linear::at_return`) but for
    /// registers that never own anything (a small int or bool constant, which native code
    /// keeps unboxed; NULL's), inline; else every register that may own something
    /// (`Linear::owning`), out of line.
    pub fn release_registers(&mut self, callee: &Compiled, regs: Value, status: Value) {
        let lin = &callee.linear;
        let returned = self.b.create_block();
        let other = self.b.create_block();
        let done = self.b.create_block();
        self.b.set_cold_block(other);
        self.b.ins().brif(status, other, &[], returned, &[]);
        self.b.switch_to_block(returned);
        let unboxed = ops::values::const_int_registers(callee);
        let null = ops::values::null_registers(callee);
        let owning = lin
            .at_return
            .iter()
            .copied()
            .filter(|&r| unboxed[r as usize].is_none() && !null[r as usize]);
        self.release_each(regs, owning);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(other);
        let c = self
            .b
            .ins()
            .iconst(self.ptr, callee as *const Compiled as i64);
        self.call(
            crate::native::helpers::release_all as *const () as usize,
            &[self.ptr, self.ptr],
            None,
            &[c, regs],
        );
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Drops registers `rs` of register file `regs` (another function's).
    pub(super) fn release_each(&mut self, regs: Value, rs: impl Iterator<Item = u32>) {
        for r in rs {
            let (t, p) = self.load_words(regs, r);
            self.drop_loaded(t, p);
        }
    }

    /// Register `r`'s tag and payload, read from register file `regs` in memory (both
    /// words are always readable; the payload means something only for some tags).
    pub fn load_words(&mut self, regs: Value, r: u32) -> (Value, Value) {
        let t = self.b.ins().load(types::I64, mem(), regs, (r * 16) as i32);
        let p = self
            .b
            .ins()
            .load(self.ptr, mem(), regs, (r * 16 + 8) as i32);
        (t, p)
    }

    /// Increfs a `Value` read out of a register (tag and payload) if it is an object: a
    /// second owner for it.
    pub fn incref_loaded(&mut self, t: Value, payload: Value) {
        let is_obj = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let obj = self.b.create_block();
        let go = self.b.create_block();
        self.b.ins().brif(is_obj, obj, &[], go, &[]);
        self.b.switch_to_block(obj);
        self.incref(payload);
        self.b.ins().jump(go, &[]);
        self.b.switch_to_block(go);
    }

    /// Drops a `Value` already read out of its register (tag and payload).
    pub(super) fn drop_loaded(&mut self, t: Value, payload: Value) {
        let is_obj = self.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let obj = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(is_obj, obj, &[], done, &[]);
        self.b.switch_to_block(obj);
        self.decref_then(payload, done);
        self.b.switch_to_block(done);
    }
}
