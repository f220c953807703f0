//! The entry for calls from CPython: a small native function per compiled specialization
//! that does what `runtime::call_compiled` and `run_bound` do for the common call (exactly
//! the positional parameters), with the function's constants baked in: the register file
//! and context on its own stack, arguments moved in, the native code called, the result
//! boxed, the registers released. Rust keeps the checks (tracing, argument types, stack
//! and recursion depth) and calls it; a call through Rust cost about 300 instructions
//! around the function's own code, most of it generic bookkeeping this does not need.

use crate::interp::Ctx;
use crate::runtime::Compiled;
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, StackSlotData,
    StackSlotKind, Type, Value,
};
use cranelift_frontend::FunctionBuilder;
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

fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Emits the trampoline of `c` (whose `plain_arity` is `nargs`) into `b`; `main` is the
/// function's native entry.
pub fn emit(b: &mut FunctionBuilder, c: &Compiled, nargs: usize, main: FuncRef, ptr: Type) {
    let nregs = c.linear.nregs as usize;
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let p = b.block_params(entry).to_vec();
    let (func, args, tuning, ts, limit) = (p[0], p[1], p[2], p[3], p[4]);
    let ctx_size = std::mem::size_of::<Ctx>();
    let size = nregs * 16 + ctx_size + 16;
    let slot = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        size as u32,
        4,
    ));
    let regs = b.ins().stack_addr(ptr, slot, 0);
    let ctx = b.ins().stack_addr(ptr, slot, (nregs * 16) as i32);
    let out = b
        .ins()
        .stack_addr(ptr, slot, (nregs * 16 + ctx_size) as i32);
    // Registers: the arguments (new references), then NULL.
    let obj = b.ins().iconst(types::I64, tag::OBJ as i64);
    let null = b.ins().iconst(types::I64, tag::NULL as i64);
    for i in 0..nregs {
        let off = (i * 16) as i32;
        if i < nargs {
            let a = b.ins().load(ptr, mem(), args, (i * 8) as i32);
            incref(b, a);
            b.ins().store(mem(), obj, regs, off);
            b.ins().store(mem(), a, regs, off + 8);
        } else {
            b.ins().store(mem(), null, regs, off);
        }
    }
    // The context, as run_bound builds it.
    let field = |o: usize| o as i32;
    let k = b.ins().iconst(ptr, c as *const Compiled as i64);
    b.ins()
        .store(mem(), k, ctx, field(std::mem::offset_of!(Ctx, compiled)));
    b.ins()
        .store(mem(), func, ctx, field(std::mem::offset_of!(Ctx, func)));
    for (from, to) in [
        (
            std::mem::offset_of!(ffi::PyFunctionObject, func_globals),
            std::mem::offset_of!(Ctx, globals),
        ),
        (
            std::mem::offset_of!(ffi::PyFunctionObject, func_builtins),
            std::mem::offset_of!(Ctx, builtins),
        ),
    ] {
        let v = b.ins().load(ptr, mem(), func, from as i32);
        b.ins().store(mem(), v, ctx, to as i32);
    }
    let to = field(std::mem::offset_of!(Ctx, tuning));
    for w in 0..(std::mem::size_of::<crate::runtime::Tuning>() as u32).div_ceil(8) as i32 {
        let v = b.ins().load(types::I64, mem(), tuning, w * 8);
        b.ins().store(mem(), v, ctx, to + w * 8);
    }
    let yes = b.ins().iconst(types::I8, 1);
    b.ins().store(
        mem(),
        yes,
        ctx,
        field(std::mem::offset_of!(Ctx, ran_native)),
    );
    b.ins()
        .store(mem(), ts, ctx, field(std::mem::offset_of!(Ctx, tstate)));
    b.ins().store(
        mem(),
        limit,
        ctx,
        field(std::mem::offset_of!(Ctx, stack_limit)),
    );
    b.ins().store(mem(), null, out, 0);
    // Run: the native code from instruction 0; if it left for tier 1, finish there.
    let start = b.ins().iconst(types::I32, 0);
    let call = b.ins().call(main, &[ctx, regs, start, out]);
    let status = b.inst_results(call)[0];
    let ran = b.create_block();
    b.append_block_param(ran, types::I64);
    let resume = b.create_block();
    b.set_cold_block(resume);
    let left = b
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, status, 2);
    b.ins()
        .brif(left, resume, &[], ran, &[BlockArg::Value(status)]);
    b.switch_to_block(resume);
    let resumed = call_addr(
        b,
        ptr,
        super::helpers::resume as *const () as usize,
        &[ptr, ptr, types::I64, ptr],
        Some(types::I64),
        &[ctx, regs, status, out],
    )
    .expect("returns");
    b.ins().jump(ran, &[BlockArg::Value(resumed)]);
    b.switch_to_block(ran);
    let status = b.block_params(ran)[0];
    // The result as an object: an unboxed int or float is boxed, a bool is its
    // singleton (NULL after an exception, or if boxing ran out of memory).
    let result = box_out(b, ptr, status, out);
    // Release what the registers still own (may run __del__, after the result exists).
    for i in 0..nregs {
        let t = b.ins().load(types::I64, mem(), regs, (i * 16) as i32);
        let p = b.ins().load(ptr, mem(), regs, (i * 16 + 8) as i32);
        let is_obj = b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
        let owned = b.create_block();
        let next = b.create_block();
        b.ins().brif(is_obj, owned, &[], next, &[]);
        b.switch_to_block(owned);
        decref(b, ptr, p);
        b.ins().jump(next, &[]);
        b.switch_to_block(next);
    }
    b.ins().return_(&[result]);
}

/// The call's result from `out` (status 0) as a new reference, else NULL.
fn box_out(b: &mut FunctionBuilder, ptr: Type, status: Value, out: Value) -> Value {
    let done = b.create_block();
    b.append_block_param(done, ptr);
    let ok = b.create_block();
    let failed = b.create_block();
    b.ins().brif(status, failed, &[], ok, &[]);
    b.switch_to_block(failed);
    let zero = b.ins().iconst(ptr, 0);
    b.ins().jump(done, &[BlockArg::Value(zero)]);
    b.switch_to_block(ok);
    let t = b.ins().load(types::I64, mem(), out, 0);
    let is_obj = b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
    let obj = b.create_block();
    let other = b.create_block();
    b.ins().brif(is_obj, obj, &[], other, &[]);
    b.switch_to_block(obj);
    let p = b.ins().load(ptr, mem(), out, 8);
    b.ins().jump(done, &[BlockArg::Value(p)]);
    b.switch_to_block(other);
    let is_int = b.ins().icmp_imm_s(IntCC::Equal, t, tag::INT as i64);
    let int = b.create_block();
    let rest = b.create_block();
    b.ins().brif(is_int, int, &[], rest, &[]);
    b.switch_to_block(int);
    let i = b.ins().load(types::I64, mem(), out, 8);
    let r = call_addr(
        b,
        ptr,
        ffi::PyLong_FromLongLong as *const () as usize,
        &[types::I64],
        Some(ptr),
        &[i],
    )
    .expect("returns");
    b.ins().jump(done, &[BlockArg::Value(r)]);
    b.switch_to_block(rest);
    // Floats, bools (and a NULL that cannot happen): the Value's own conversion.
    let r = call_addr(
        b,
        ptr,
        super::helpers::into_object as *const () as usize,
        &[ptr],
        Some(ptr),
        &[out],
    )
    .expect("returns");
    b.ins().jump(done, &[BlockArg::Value(r)]);
    b.switch_to_block(done);
    b.block_params(done)[0]
}

fn incref(b: &mut FunctionBuilder, p: Value) {
    let rc = b.ins().load(types::I64, mem(), p, 0);
    let rc = b.ins().iadd_imm_s(rc, 1);
    b.ins().store(mem(), rc, p, 0);
}

fn decref(b: &mut FunctionBuilder, ptr: Type, p: Value) {
    let rc = b.ins().load(types::I64, mem(), p, 0);
    let rc = b.ins().iadd_imm_s(rc, -1);
    b.ins().store(mem(), rc, p, 0);
    let free = b.create_block();
    b.set_cold_block(free);
    let done = b.create_block();
    b.ins().brif(rc, done, &[], free, &[]);
    b.switch_to_block(free);
    call_addr(
        b,
        ptr,
        super::helpers::dealloc as *const () as usize,
        &[ptr],
        None,
        &[p],
    );
    b.ins().jump(done, &[]);
    b.switch_to_block(done);
}

/// Calls the function at `addr` with the given signature.
fn call_addr(
    b: &mut FunctionBuilder,
    ptr: Type,
    addr: usize,
    params: &[Type],
    ret: Option<Type>,
    args: &[Value],
) -> Option<Value> {
    let mut sig = Signature::new(b.func.signature.call_conv);
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    sig.returns.extend(ret.map(AbiParam::new));
    let s = b.import_signature(sig);
    let f = b.ins().iconst(ptr, addr as i64);
    let call = b.ins().call_indirect(s, f, args);
    b.inst_results(call).first().copied()
}
