//! Tier 2: Cranelift. A hot function's linear form is compiled into one native function
//! that works on the same register file as tier 1: each quickened op with a template is
//! emitted inline (its op family's file has the template), every other op calls its tier-1
//! implementation through `helpers::exec`. A failed guard runs that one op in tier 1 (a
//! counted deopt) and native code continues; since registers are shared, entering native
//! code at any instruction (a loop header: OSR) or leaving it loses nothing.

pub mod emit;
pub mod helpers;
pub mod trampoline;

use crate::interp::Ctx;
use crate::runtime::Compiled;
use crate::value::Value;
use cranelift_codegen::ir::{types, AbiParam, Signature, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::Module;
use pyo3_ffi as ffi;

/// The native entry: run from instruction `start` with the registers as tier 1 left them;
/// returns 0 with the result in `*out`, 1 with a Python exception set, or 2 + pc when the
/// code was invalidated and tier 1 must continue at instruction pc.
pub type NativeFn =
    unsafe extern "C" fn(ctx: *const Ctx, regs: *mut Value, start: u32, out: *mut Value) -> i64;

/// A compiled native function and what made it.
pub struct NativeCode {
    /// The entry point.
    pub entry: NativeFn,
    /// The entry for calls from CPython with exactly the positional parameters (see
    /// `trampoline`); `None` for other signatures.
    pub vector_entry: Option<trampoline::VectorFn>,
    /// The same as a wrapper's vectorcall slot (`trampoline::Form::Slot`).
    pub slot_entry: Option<ffi::vectorcallfunc>,
    /// The entry for direct calls from native code (`trampoline::emit_direct`); `None`
    /// where no call site could call it directly.
    pub direct_entry: Option<trampoline::DirectFn>,
    /// Cranelift IR (made only by `listings`, for `dump`; else empty).
    pub clif: String,
    /// The machine code listing (likewise).
    pub disasm: String,
    /// Per linear instruction: the template emitted for it (`None`: its tier-1 helper).
    pub templates: Vec<Option<&'static str>>,
    /// The callees whose code was emitted inline at direct calls.
    pub inlined: Vec<String>,
    /// Per linear instruction: its quickening's width when compiled (`Quick::width`: 0
    /// when it was not quickened yet).
    pub width_at_compile: Vec<u8>,
    /// Set to make running loops leave this code (it has been replaced).
    pub invalid: Box<std::cell::Cell<u8>>,
    /// Bytes of machine code: the function and its trampolines.
    pub code_bytes: usize,
    /// Keeps the code's memory mapped.
    _module: JITModule,
}

/// Declares a function of signature `sig` in `module`; returns it and the context to
/// build it in (keeping its machine code listing for `dump`).
fn declare(
    module: &mut JITModule,
    sig: Signature,
    listings: bool,
) -> Result<(cranelift_module::FuncId, Context), String> {
    let id = module
        .declare_anonymous_function(&sig)
        .map_err(|e| e.to_string())?;
    let mut ctx = Context::new();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    ctx.set_disasm(listings);
    Ok((id, ctx))
}

/// The small native functions compiled beside a function's code, which call it (its
/// trampolines and its direct-call entry): defined in its module, their machine code
/// counted and listed with it.
struct Entries<'m> {
    module: &'m mut JITModule,
    fctx: &'m mut FunctionBuilderContext,
    c: &'m Compiled,
    /// The function's own code.
    main: cranelift_module::FuncId,
    listings: bool,
    disasm: &'m mut String,
    code_bytes: &'m mut usize,
}

impl Entries<'_> {
    fn call_conv(&self) -> cranelift_codegen::isa::CallConv {
        self.module.isa().default_call_conv()
    }

    /// Defines an entry of signature `sig`, emitted by `emit` (given the function's code
    /// to call), its listing under `title`.
    fn define(
        &mut self,
        sig: Signature,
        title: &str,
        emit: impl FnOnce(&mut emit::Emit, cranelift_codegen::ir::FuncRef),
    ) -> Result<cranelift_module::FuncId, String> {
        let (id, mut ctx) = declare(self.module, sig, self.listings)?;
        {
            let b = FunctionBuilder::new(&mut ctx.func, self.fctx);
            let main = self.module.declare_func_in_func(self.main, b.func);
            // No loops run in an entry: nothing reads the invalidation flag there.
            let mut e = emit::Emit::new(b, self.c, self.module.target_config().pointer_type(), 0);
            emit(&mut e, main);
            e.finish(self.module.isa().frontend_config());
        }
        self.module
            .define_function(id, &mut ctx)
            .map_err(|e| format!("{e:?}"))?;
        let code = ctx.compiled_code();
        *self.code_bytes += code.map_or(0, |cc| cc.code_buffer().len());
        self.disasm.push_str(&format!("\n== {title} ==\n"));
        self.disasm
            .push_str(&code.and_then(|cc| cc.vcode.clone()).unwrap_or_default());
        Ok(id)
    }
}

/// Compiles `c` with the quickened state its instructions have now.
///
/// # Safety
/// GIL held (templates read current specializations and CPython type addresses).
pub unsafe fn compile(c: &Compiled) -> Result<NativeCode, String> {
    compile_with(c, false)
}

/// The Cranelift IR and machine code listings of `c` as `compile` would make them now
/// (for `dump`): compiled again with listings on, the code discarded. Making them on
/// every compile cost about a tenth of the compile time.
///
/// # Safety
/// As `compile`.
pub unsafe fn listings(c: &Compiled) -> Result<(String, String), String> {
    let code = compile_with(c, true)?;
    Ok((code.clif.clone(), code.disasm.clone()))
}

/// Linear instructions up to which a function is compiled with Cranelift's optimizer.
const OPTIMIZED_MAX_INSTS: usize = 32;

/// Cranelift's optimization level for `c`. Its e-graph pass took about a fifth of the
/// compile time. On the pyperformance kernels' larger functions it changed what the code
/// costs by -1.5% to +1.4% (instructions; templates are written as the machine code they
/// should become), so they go without; on small hot functions it is worth it (fib 13%,
/// flat_rep 10%, pysum 5% fewer instructions), and compiling those is quick anyway.
/// (The single-pass register allocator compiled 25% faster still, but made the code
/// about twice as slow.)
fn opt_level(c: &Compiled) -> &'static str {
    if c.linear.insts.len() <= OPTIMIZED_MAX_INSTS {
        "speed"
    } else {
        "none"
    }
}

/// `compile`, with the listings (`NativeCode::clif`, `disasm`) only when `listings`.
/// Cranelift's IR verifier runs in debug builds only (release: about 6% of compile time).
unsafe fn compile_with(c: &Compiled, listings: bool) -> Result<NativeCode, String> {
    let mut flags = settings::builder();
    flags
        .set("opt_level", opt_level(c))
        .map_err(|e| e.to_string())?;
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    flags
        .set("enable_verifier", verify)
        .map_err(|e| e.to_string())?;
    let isa_builder = cranelift_native::builder().map_err(|e| e.to_string())?;
    let isa = isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())?;
    let mut module = JITModule::new(JITBuilder::with_isa(
        isa,
        cranelift_module::default_libcall_names(),
    ));
    let ptr = module.target_config().pointer_type();
    let mut sig = Signature::new(module.isa().default_call_conv());
    for t in [ptr, ptr, types::I32, ptr] {
        sig.params.push(AbiParam::new(t));
    }
    sig.returns.push(AbiParam::new(types::I64));
    let (id, mut ctx) = declare(&mut module, sig, listings)?;
    let mut fctx = FunctionBuilderContext::new();
    let templates;
    let inlined;
    let invalid = Box::new(std::cell::Cell::new(0u8));
    {
        let b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let mut e = emit::Emit::new(b, c, ptr, invalid.as_ptr() as usize);
        e.prologue();
        e.body();
        (templates, inlined) = e.finish(module.isa().frontend_config());
    }
    let clif = if listings {
        ctx.func.display().to_string()
    } else {
        String::new()
    };
    module
        .define_function(id, &mut ctx)
        .map_err(|e| format!("{e:?}"))?;
    let mut disasm = ctx
        .compiled_code()
        .and_then(|cc| cc.vcode.clone())
        .unwrap_or_default();
    let mut code_bytes = ctx.compiled_code().map_or(0, |cc| cc.code_buffer().len());
    // The trampolines for calls from CPython, when the signature is plain: the one
    // `Entry::call` calls, and (for a typed specialization, once the wrapper's layout is
    // registered) the one a wrapper's vectorcall slot may point at.
    let mut forms = Vec::new();
    if c.plain_arity.is_some() {
        forms.push(trampoline::Form::FromRust);
        if let (Some(abi), Some(_)) = (crate::runtime::wrapper_abi(), c.type_key) {
            forms.push(trampoline::Form::Slot {
                abi,
                invalid: invalid.as_ptr() as usize,
            });
        }
    }
    let mut entries = Entries {
        module: &mut module,
        fctx: &mut fctx,
        c,
        main: id,
        listings,
        disasm: &mut disasm,
        code_bytes: &mut code_bytes,
    };
    let mut tramp_ids = Vec::new();
    for &form in &forms {
        let nargs = c.plain_arity.expect("forms are made for plain signatures");
        let title = match form {
            trampoline::Form::FromRust => "entry from CPython (trampoline)",
            trampoline::Form::Slot { .. } => {
                "entry from CPython (trampoline as the wrapper's vectorcall)"
            }
        };
        let sig = trampoline::signature(form, entries.call_conv(), ptr);
        tramp_ids
            .push(entries.define(sig, title, |e, main| trampoline::emit(e, nargs, main, form))?);
    }
    // The entry for direct calls, where a call site may make one (`ops::calls::direct`).
    let direct_id = match c.linear.nregs <= crate::ops::calls::DIRECT_MAX_REGS {
        true => {
            let sig = trampoline::direct_signature(entries.call_conv(), ptr);
            let title = "entry for direct calls from native code";
            Some(entries.define(sig, title, trampoline::emit_direct)?)
        }
        false => None,
    };
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let code = module.get_finalized_function(id);
    // SAFETY: the function was declared with exactly NativeFn's signature.
    let entry = std::mem::transmute::<*const u8, NativeFn>(code);
    // SAFETY: each was declared with its form's signature (`trampoline::signature`).
    let vector_entry = tramp_ids.first().map(|&tid| {
        std::mem::transmute::<*const u8, trampoline::VectorFn>(module.get_finalized_function(tid))
    });
    let slot_entry = tramp_ids.get(1).map(|&tid| {
        std::mem::transmute::<*const u8, ffi::vectorcallfunc>(module.get_finalized_function(tid))
    });
    // SAFETY: declared with `DirectFn`'s signature (`trampoline::direct_signature`).
    let direct_entry = direct_id.map(|did| {
        std::mem::transmute::<*const u8, trampoline::DirectFn>(module.get_finalized_function(did))
    });
    Ok(NativeCode {
        entry,
        vector_entry,
        slot_entry,
        direct_entry,
        width_at_compile: c.quick.iter().map(|q| q.get().width()).collect(),
        clif,
        disasm,
        templates,
        inlined,
        invalid,
        code_bytes,
        _module: module,
    })
}
