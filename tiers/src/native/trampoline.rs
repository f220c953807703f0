//! The entry for calls from CPython: a small native function per compiled specialization
//! that does what `runtime::call_compiled` and `run_bound` do for the common call (exactly
//! the positional parameters), with the function's constants baked in: the register file
//! and context on its own stack, arguments moved in, the native code called, the result
//! boxed, the registers released. Rust keeps the checks (tracing, argument types, stack
//! and recursion depth) and calls it; a call through Rust cost about 300 instructions
//! around the function's own code, most of it generic bookkeeping this does not need.

use super::emit::{loop_free, mem, CtxFill, Emit};
use crate::interp::Ctx;
use crate::runtime::Compiled;
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, FuncRef, InstBuilder, Signature, StackSlotData, StackSlotKind, Type,
    Value,
};
use pyo3_ffi as ffi;

/// The trampoline: (function object, argument array, the wrapper's `Tuning`, thread
/// state, stack limit) -> new reference, or NULL with an exception set. The caller has
/// checked the argument count and types, entered the recursion level and the stack.
pub type VectorFn = unsafe extern "C" fn(
    func: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    tuning: *const crate::runtime::Tuning,
    tstate: crate::cpy::ThreadState,
    stack_limit: usize,
) -> *mut ffi::PyObject;

/// The trampoline's signature.
pub fn signature(call_conv: cranelift_codegen::isa::CallConv, ptr: Type) -> Signature {
    let mut sig = Signature::new(call_conv);
    for _ in 0..5 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig.returns.push(AbiParam::new(ptr));
    sig
}

/// Emits the trampoline of `e.c` (whose `plain_arity` is `nargs`); `main` is the
/// function's native entry. A function without loops is emitted inline right here (its
/// context then written only where something reads it); others are called.
pub fn emit(e: &mut Emit, nargs: usize, main: FuncRef) {
    let c = e.c;
    let ptr = e.ptr;
    let nregs = c.linear.nregs as usize;
    let entry = e.b.create_block();
    e.b.append_block_params_for_function_params(entry);
    e.b.switch_to_block(entry);
    let p = e.b.block_params(entry).to_vec();
    let (func, args, tuning, ts, limit) = (p[0], p[1], p[2], p[3], p[4]);
    let ctx_size = std::mem::size_of::<Ctx>();
    let size = nregs * 16 + ctx_size + 16;
    let slot = e.b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        size as u32,
        4,
    ));
    let regs = e.b.ins().stack_addr(ptr, slot, 0);
    let ctx = e.b.ins().stack_addr(ptr, slot, (nregs * 16) as i32);
    let out =
        e.b.ins()
            .stack_addr(ptr, slot, (nregs * 16 + ctx_size) as i32);
    // Registers: the arguments (new references), then NULL.
    let obj = e.b.ins().iconst(types::I64, tag::OBJ as i64);
    let null = e.b.ins().iconst(types::I64, tag::NULL as i64);
    for i in 0..nregs {
        let off = (i * 16) as i32;
        if i < nargs {
            let a = e.b.ins().load(ptr, mem(), args, (i * 8) as i32);
            e.incref(a);
            e.b.ins().store(mem(), obj, regs, off);
            e.b.ins().store(mem(), a, regs, off + 8);
        } else {
            e.b.ins().store(mem(), null, regs, off);
        }
    }
    e.b.ins().store(mem(), null, out, 0);
    // The context, as run_bound builds it: the thread's fields now (so they need not be
    // kept in machine registers), the rest where something reads it (see CtxFill).
    e.store_ctx_thread(ctx, ts, limit);
    let fill = CtxFill {
        compiled: e.b.ins().iconst(ptr, c as *const Compiled as i64),
        func,
        dicts: None,
        tuning: (tuning, 0),
        thread: None,
    };
    let status = if loop_free(c) {
        let returned = e.inline_body(c, (ctx, fill), regs, out);
        e.b.switch_to_block(returned);
        e.b.block_params(returned)[0]
    } else {
        e.store_ctx(ctx, &fill);
        // Run: the native code from instruction 0; if it left for tier 1, finish there.
        let start = e.b.ins().iconst(types::I32, 0);
        let call = e.b.ins().call(main, &[ctx, regs, start, out]);
        let status = e.b.inst_results(call)[0];
        let ran = e.b.create_block();
        e.b.append_block_param(ran, types::I64);
        let resume = e.b.create_block();
        e.b.set_cold_block(resume);
        let left =
            e.b.ins()
                .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, status, 2);
        e.b.ins()
            .brif(left, resume, &[], ran, &[BlockArg::Value(status)]);
        e.b.switch_to_block(resume);
        let resumed = e
            .call(
                super::helpers::resume as *const () as usize,
                &[ptr, ptr, types::I64, ptr],
                Some(types::I64),
                &[ctx, regs, status, out],
            )
            .expect("returns");
        e.b.ins().jump(ran, &[BlockArg::Value(resumed)]);
        e.b.switch_to_block(ran);
        e.b.block_params(ran)[0]
    };
    // The result as an object: an unboxed int or float is boxed, a bool is its
    // singleton (NULL after an exception, or if boxing ran out of memory).
    let result = box_out(e, status, out);
    // Release what the registers still own (may run __del__, after the result exists).
    for i in 0..nregs {
        e.drop_value_at(regs, (i * 16) as i32);
    }
    e.b.ins().return_(&[result]);
}

/// The call's result from `out` (status 0) as a new reference, else NULL.
fn box_out(e: &mut Emit, status: Value, out: Value) -> Value {
    let ptr = e.ptr;
    let done = e.b.create_block();
    e.b.append_block_param(done, ptr);
    let ok = e.b.create_block();
    let failed = e.b.create_block();
    e.b.ins().brif(status, failed, &[], ok, &[]);
    e.b.switch_to_block(failed);
    let zero = e.b.ins().iconst(ptr, 0);
    e.b.ins().jump(done, &[BlockArg::Value(zero)]);
    e.b.switch_to_block(ok);
    let t = e.b.ins().load(types::I64, mem(), out, 0);
    let is_obj = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
    let obj = e.b.create_block();
    let other = e.b.create_block();
    e.b.ins().brif(is_obj, obj, &[], other, &[]);
    e.b.switch_to_block(obj);
    let p = e.b.ins().load(ptr, mem(), out, 8);
    e.b.ins().jump(done, &[BlockArg::Value(p)]);
    e.b.switch_to_block(other);
    let is_int = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::INT as i64);
    let int = e.b.create_block();
    let rest = e.b.create_block();
    e.b.ins().brif(is_int, int, &[], rest, &[]);
    e.b.switch_to_block(int);
    let i = e.b.ins().load(types::I64, mem(), out, 8);
    let r = e
        .call(
            ffi::PyLong_FromLongLong as *const () as usize,
            &[types::I64],
            Some(ptr),
            &[i],
        )
        .expect("returns");
    e.b.ins().jump(done, &[BlockArg::Value(r)]);
    e.b.switch_to_block(rest);
    // Floats, bools (and a NULL that cannot happen): the Value's own conversion.
    let r = e
        .call(
            super::helpers::into_object as *const () as usize,
            &[ptr],
            Some(ptr),
            &[out],
        )
        .expect("returns");
    e.b.ins().jump(done, &[BlockArg::Value(r)]);
    e.b.switch_to_block(done);
    e.b.block_params(done)[0]
}
