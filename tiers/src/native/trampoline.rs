//! The entry for calls from CPython: a small native function per compiled specialization
//! that does what `runtime::call_compiled` and `run_bound` do for the common call (exactly
//! the positional parameters), with the function's constants baked in: the register file
//! and context on its own stack, arguments moved in, the native code called, the result
//! boxed, the registers released. A call through Rust cost about 300 instructions around
//! the function's own code, most of it generic bookkeeping this does not need.
//!
//! It comes in two forms, emitted from the same code:
//! - `Form::FromRust`: `Entry::call` did the checks (tracing, argument types, stack and
//!   recursion depth) and calls it;
//! - `Form::Slot`: the wrapper's own vectorcall slot, installed by `Entry::call` once a
//!   site calls with the same types twice. CPython 3.11 never specializes calls of
//!   objects other than functions, builtins and classes, so its generic call path reaches
//!   the slot directly; this form makes the same checks as `Entry::call` inline, against
//!   this specialization's constants, and when one fails it puts the generic vectorcall
//!   back into the slot and calls it (which may install another specialization's slot).

use super::emit::{inline_sized, mem, CtxFill, Emit};
use crate::cpy::tstate_offset;
use crate::interp::Ctx;
use crate::ops::values::written_first;
use crate::runtime::{Compiled, Entry, WrapperAbi};
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, FuncRef, InstBuilder, Signature, StackSlotData, StackSlotKind, Type,
    Value,
};
use pyo3_ffi as ffi;

/// The trampoline called from Rust: (function object, argument array, the wrapper's
/// `Tuning`, thread state, stack limit) -> new reference, or NULL with an exception set.
/// The caller has checked the argument count and types, entered the recursion level and
/// the stack.
pub type VectorFn = unsafe extern "C" fn(
    func: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    tuning: *const crate::runtime::Tuning,
    tstate: crate::cpy::ThreadState,
    stack_limit: usize,
) -> *mut ffi::PyObject;

/// Which form of the trampoline to emit (see the module doc).
#[derive(Clone, Copy)]
pub enum Form {
    /// Called by `Entry::call` (`VectorFn`).
    FromRust,
    /// A wrapper's vectorcall slot (`ffi::vectorcallfunc`); `invalid` is the address of
    /// the native code's invalidation flag.
    Slot { abi: WrapperAbi, invalid: usize },
}

/// The signature of a trampoline of `form`.
pub fn signature(form: Form, call_conv: cranelift_codegen::isa::CallConv, ptr: Type) -> Signature {
    let mut sig = Signature::new(call_conv);
    let n = match form {
        Form::FromRust => 5,
        Form::Slot { .. } => 4,
    };
    for _ in 0..n {
        sig.params.push(AbiParam::new(ptr));
    }
    sig.returns.push(AbiParam::new(ptr));
    sig
}

/// What the body of a trampoline works with.
struct Call {
    func: Value,
    args: Value,
    tuning: Value,
    ts: Value,
    limit: Value,
}

/// The slot form's checks, on the vectorcall arguments in `p`: anything `Entry::call`
/// would not send straight to this specialization's trampoline branches to a cold block
/// that restores the generic vectorcall and calls it. Enters the recursion level and
/// counts the call, as `Entry::call` does.
fn slot_checks(e: &mut Emit, nargs: usize, abi: WrapperAbi, invalid: usize, p: &[Value]) -> Call {
    let ptr = e.ptr;
    let c = e.c;
    let (callable, args, nargsf, kwnames) = (p[0], p[1], p[2], p[3]);
    let miss = e.b.create_block();
    e.b.set_cold_block(miss);
    // Keyword arguments or another count.
    e.guard_eq(kwnames, 0, miss);
    let mask =
        e.b.ins()
            .iconst(ptr, !(ffi::PY_VECTORCALL_ARGUMENTS_OFFSET as i64));
    let n = e.b.ins().band(nargsf, mask);
    e.guard_eq(n, nargs as i64, miss);
    // Other argument types (the key's, as `TypeKey::matches` compares them).
    let key = c
        .type_key
        .expect("slot forms are made for typed specializations");
    for (i, &t) in key.types().iter().enumerate() {
        let a = e.b.ins().load(ptr, mem(), args, (i * 8) as i32);
        let ty = e.b.ins().load(ptr, mem(), a, 8);
        e.guard_eq(ty, t as i64, miss);
    }
    // Another `__code__`, or this code replaced (invalidated).
    let entry = e.b.ins().load(ptr, mem(), callable, abi.entry_offset);
    let func = e.b.ins().load(ptr, mem(), entry, Entry::FUNC_OFFSET);
    let code_off = std::mem::offset_of!(ffi::PyFunctionObject, func_code) as i32;
    let code = e.b.ins().load(ptr, mem(), func, code_off);
    e.guard_eq(code, c.objects.code.ptr() as i64, miss);
    let flag = e.b.ins().iconst(ptr, invalid as i64);
    let flag = e.b.ins().load(types::I8, mem(), flag, 0);
    e.fail_if(flag, miss);
    // The stack limit, from the cache `Entry::call` keeps: another thread than the
    // cache's goes there (to refill it).
    let ts = e
        .call(crate::cpy::current_fn(), &[], Some(ptr), &[])
        .expect("returns");
    let cache =
        e.b.ins()
            .iconst(ptr, crate::stack::limit_cache_addr() as i64);
    let cached_ts = e.b.ins().load(ptr, mem(), cache, 0);
    let other = e.b.ins().icmp(IntCC::NotEqual, cached_ts, ts);
    e.fail_if(other, miss);
    let id_off = std::mem::offset_of!(crate::stack::LimitCache, id) as i32;
    let cached_id = e.b.ins().load(types::I64, mem(), cache, id_off);
    let id = e.b.ins().load(types::I64, mem(), ts, tstate_offset::ID);
    let other = e.b.ins().icmp(IntCC::NotEqual, cached_id, id);
    e.fail_if(other, miss);
    let limit_off = std::mem::offset_of!(crate::stack::LimitCache, limit) as i32;
    let limit = e.b.ins().load(ptr, mem(), cache, limit_off);
    // Trace hooks, the stack, the recursion limit (Rust raises RecursionError).
    e.enter_checked(ts, limit, miss);
    e.count_native_call(entry);
    let go = e.b.create_block();
    e.b.ins().jump(go, &[]);
    // The miss: the generic vectorcall back in the slot, then called.
    e.b.switch_to_block(miss);
    let generic = e.b.ins().iconst(ptr, abi.generic as i64);
    e.b.ins().store(mem(), generic, callable, abi.slot_offset);
    let r = e
        .call_value(abi.generic, generic, &[ptr; 4], Some(ptr), p)
        .expect("returns");
    e.b.ins().return_(&[r]);
    e.b.switch_to_block(go);
    Call {
        func,
        args,
        tuning: e.b.ins().iadd_imm_s(entry, Entry::TUNING_OFFSET as i64),
        ts,
        limit,
    }
}

/// Whether `c` makes calls (Call, CallEx): its code then runs as a native function of
/// its own, not inline in the trampoline, so that it can leave for tier 1 after a call
/// (a trace or profile hook switched on: `tracing`).
fn calls_out(c: &Compiled) -> bool {
    c.linear.insts.iter().any(|i| {
        matches!(
            i.kind,
            crate::lower::LKind::Op(tiered_ir::Op::Call { .. } | tiered_ir::Op::CallEx { .. })
        )
    })
}

/// Emits the trampoline of `e.c` (whose `plain_arity` is `nargs`) in `form`; `main` is
/// the function's native entry. A short function without loops (`inline_sized`) that
/// calls nothing is emitted inline right here (its context then written only where
/// something reads it); others are called.
pub fn emit(e: &mut Emit, nargs: usize, main: FuncRef, form: Form) {
    let c = e.c;
    let ptr = e.ptr;
    let nregs = c.linear.nregs as usize;
    let entry = e.b.create_block();
    e.b.append_block_params_for_function_params(entry);
    e.b.switch_to_block(entry);
    let p = e.b.block_params(entry).to_vec();
    let Call {
        func,
        args,
        tuning,
        ts,
        limit,
    } = match form {
        Form::FromRust => Call {
            func: p[0],
            args: p[1],
            tuning: p[2],
            ts: p[3],
            limit: p[4],
        },
        Form::Slot { abi, invalid } => slot_checks(e, nargs, abi, invalid, &p),
    };
    let area = CallArea::of(c);
    let slot = e.b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        area.size as u32,
        4,
    ));
    let regs = e.b.ins().stack_addr(ptr, slot, 0);
    let ctx = e.b.ins().stack_addr(ptr, slot, area.ctx as i32);
    let out = e.b.ins().stack_addr(ptr, slot, area.out as i32);
    let frame = e.b.ins().stack_addr(ptr, slot, area.frame as i32);
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
    // The context, as run_bound builds it, written where something reads it (see
    // CtxFill).
    let fill = fill_for(e, c, func, None, tuning, (ts, limit), frame, regs);
    let status = if inline_sized(c) && !calls_out(c) {
        // Its frame is pushed lazily (see `Emit::inline_body`).
        let returned = e.inline_body(c, (ctx, fill), regs, out, false);
        e.b.switch_to_block(returned);
        e.b.block_params(returned)[0]
    } else {
        run_framed(e, c, ctx, &fill, out, false, |e, args| {
            let call = e.b.ins().call(main, &args);
            e.b.inst_results(call)[0]
        })
    };
    // The result as an object: an unboxed int or float is boxed, a bool is its
    // singleton (NULL after an exception, or if boxing ran out of memory).
    let result = box_out(e, status, out);
    // Release what the registers still own (may run __del__, after the result exists and
    // with the frame unlinked, as CPython clears a popped frame).
    e.release_registers(c, regs, status);
    if let Form::Slot { .. } = form {
        // Leave the recursion level the checks entered.
        e.leave_recursion(ts);
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
    let r = e.new_int(i);
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

/// The entry for direct calls from native code (`ops::calls::direct`), one per compiled
/// specialization: (register file, function object, `Tuning`, thread state, stack limit)
/// -> status, as `NativeFn` returns it, with the result in the Value after the context.
/// The call site has checked its guards, entered the recursion level and moved the
/// arguments into the parameters' registers; this does the rest of the call, the same
/// for every site: the other registers emptied, the context written, the CPython frame
/// pushed, the code run (finished in tier 1 if it left for it), the frame popped, the
/// recursion level left, the registers released. Emitted at each site, that was about
/// 150 of a direct call's 250 hot Cranelift instructions, and hot code that big missed
/// the instruction cache (richards: 47M misses a run, CPython 21).
pub type DirectFn = unsafe extern "C" fn(
    regs: *mut crate::value::Value,
    func: *mut ffi::PyObject,
    tuning: *const crate::runtime::Tuning,
    tstate: crate::cpy::ThreadState,
    stack_limit: usize,
) -> i64;

/// The signature of the direct-call entry (`DirectFn`).
pub fn direct_signature(call_conv: cranelift_codegen::isa::CallConv, ptr: Type) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.extend([AbiParam::new(ptr); 5]);
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// The memory a call of a compiled function works in, as an entry or a direct call site
/// lays it out (on its own stack, or in the caller's frame area:
/// `ops::calls::direct_frame_size`): the register file, then the context, the result
/// (a Value), the word pointing back at the context (`activation`) and the CPython frame.
/// Offsets in bytes from the start.
pub struct CallArea {
    pub ctx: i64,
    pub out: i64,
    pub frame: i64,
    /// Bytes in all.
    pub size: i64,
}

impl CallArea {
    /// The area for `c`.
    pub fn of(c: &Compiled) -> CallArea {
        let ctx = (c.linear.nregs * 16) as i64;
        let out = ctx + std::mem::size_of::<Ctx>() as i64;
        let frame = out + 16 + crate::activation::BACK_POINTER as i64;
        let size = frame + crate::cpy::frame::frame_size(c.nlocalsplus) as i64;
        CallArea {
            ctx,
            out,
            frame,
            size,
        }
    }
}

/// Emits the direct-call entry of `e.c` (`DirectFn`); `main` is its native entry.
pub fn emit_direct(e: &mut Emit, main: FuncRef) {
    let entry = e.b.create_block();
    e.b.append_block_params_for_function_params(entry);
    e.b.switch_to_block(entry);
    let p = e.b.block_params(entry).to_vec();
    let call = DirectCall {
        callee: e.c,
        regs: p[0],
        func: p[1],
        dicts: None,
        tuning: p[2],
        thread: (p[3], p[4]),
    };
    let status = emit_direct_rest(e, &call, Enter::Func(main));
    e.b.ins().return_(&[status]);
}

/// A direct call whose arguments are in the callee's registers and whose recursion level
/// is entered (`ops::calls::direct`).
pub struct DirectCall<'c> {
    pub callee: &'c Compiled,
    /// Its register file, at the start of its `CallArea`.
    pub regs: Value,
    /// The function object that runs, and its dicts when known.
    pub func: Value,
    pub dicts: Option<(Value, Value)>,
    /// Its `Tuning`; the thread state and stack limit.
    pub tuning: Value,
    pub thread: (Value, Value),
}

/// How a direct call enters the callee's native code (from instruction 0).
pub enum Enter {
    /// A function of the same module (the direct-call entry calling its code).
    Func(FuncRef),
    /// An address read at run time (`Compiled::native_entry`), from the caller's code.
    Pointer(Value),
    /// Its code emitted right there (`Emit::inline_body`), at a call site.
    Inline,
}

/// The rest of direct call `d`, the same for every site: the callee's other registers
/// emptied, its context written, its CPython frame pushed, its code entered (finished in
/// tier 1 if it left for it; a hook switched on meanwhile is reported as status 2: the
/// caller goes on in tier 1), the frame popped (inline: the context and frame only where
/// something reads them), then, as CPython's RETURN_VALUE does, the
/// recursion level left and the registers released (a `__del__` runs at the caller's
/// depth). Returns the status, with the result in the Value after the context.
pub fn emit_direct_rest<'a>(e: &mut Emit<'a>, d: &DirectCall<'a>, enter: Enter) -> Value {
    let c = d.callee;
    let regs = d.regs;
    let area = CallArea::of(c);
    let ctx = e.b.ins().iadd_imm_s(regs, area.ctx);
    let out = e.b.ins().iadd_imm_s(regs, area.out);
    let frame = e.b.ins().iadd_imm_s(regs, area.frame);
    // Empty, but for the parameters (the site moved them in: the positional ones, then
    // `*args` and `**kwargs`) and what the code writes first.
    let null = e.b.ins().iconst(types::I64, tag::NULL as i64);
    let params = c.linear.nparams;
    let written = written_first(c);
    for r in params..c.linear.nregs {
        if !written[r as usize] {
            e.b.ins().store(mem(), null, regs, (r * 16) as i32);
        }
    }
    e.b.ins().store(mem(), null, out, 0);
    let fill = fill_for(e, c, d.func, d.dicts, d.tuning, d.thread, frame, regs);
    let status = match enter {
        Enter::Inline => {
            let returned = e.inline_body(c, (ctx, fill), regs, out, true);
            e.b.switch_to_block(returned);
            e.b.block_params(returned)[0]
        }
        Enter::Func(main) => run_framed(e, c, ctx, &fill, out, true, |e, args| {
            let call = e.b.ins().call(main, &args);
            e.b.inst_results(call)[0]
        }),
        Enter::Pointer(f) => run_framed(e, c, ctx, &fill, out, true, |e, args| {
            let ptr = e.ptr;
            // (`run_framed` marked this function's frame before the callee's went on it.)
            e.call_unmarked(
                NATIVE_SIGNATURE_KEY,
                f,
                &[ptr, ptr, types::I32, ptr],
                Some(types::I64),
                &args,
            )
            .expect("returns")
        }),
    };
    let (ts, _) = d.thread;
    e.leave_recursion(ts);
    e.release_registers(c, regs, status);
    status
}

/// The context of a call of `c`'s function `func` (its dicts, when not known, read from
/// `func` where needed).
#[allow(clippy::too_many_arguments)]
fn fill_for(
    e: &mut Emit,
    c: &Compiled,
    func: Value,
    dicts: Option<(Value, Value)>,
    tuning: Value,
    thread: (Value, Value),
    frame: Value,
    regs: Value,
) -> CtxFill {
    CtxFill {
        compiled: e.b.ins().iconst(e.ptr, c as *const Compiled as i64),
        func,
        dicts,
        tuning,
        thread,
        frame,
        regs,
    }
}

/// Runs `c`'s native code from instruction 0 on the register file of `fill`, with its
/// context written at `ctx` and its CPython frame linked for the whole call; `enter`
/// makes the call, given its arguments (context, registers, start, out). Returns the
/// call's status (finished in tier 1 if the code left for it; with `report_hooks`, 2
/// when it returned with a hook on: `Emit::finish_if_left`).
fn run_framed<'a>(
    e: &mut Emit<'a>,
    c: &Compiled,
    ctx: Value,
    fill: &CtxFill,
    out: Value,
    report_hooks: bool,
    enter: impl FnOnce(&mut Emit<'a>, [Value; 4]) -> Value,
) -> Value {
    let (ts, _) = fill.thread;
    e.store_ctx(ctx, fill);
    let dicts = e.dicts_of(fill);
    // The caller's frame is marked at this call before the callee's goes on it (from
    // native code; an entry has no frame of its own yet).
    e.set_prev_instr();
    e.push_frame(fill.frame, ctx, ts, c, fill.func, dicts);
    let start = e.b.ins().iconst(types::I32, 0);
    let status = enter(e, [ctx, fill.regs, start, out]);
    let status = e.finish_if_left(status, ctx, fill.regs, out, report_hooks);
    e.pop_frame(fill.frame, ts);
    status
}

/// Signature keys among the emitter's call signatures (`Emit::call_value`) of native
/// entry points (`NativeFn`), of direct-call entries (`DirectFn`) and of a type's
/// `tp_iternext` read at run time (`ops::iter`): numbers no helper's address can be.
const NATIVE_SIGNATURE_KEY: usize = usize::MAX - 1;
pub(crate) const DIRECT_SIGNATURE_KEY: usize = usize::MAX;
pub(crate) const ITERNEXT_SIGNATURE_KEY: usize = usize::MAX - 2;
