//! Tier 2: Cranelift. A hot function's linear form is compiled into one native function
//! that works on the same register file as tier 1: each quickened op with a template is
//! emitted inline (its op family's file has the template), every other op calls its tier-1
//! implementation through `helpers::exec`. A failed guard runs that one op in tier 1 (a
//! counted deopt) and native code continues; since registers are shared, entering native
//! code at any instruction (a loop header: OSR) or leaving it loses nothing.

mod dead;
pub mod emit;
pub mod helpers;
mod layout;
pub mod trampoline;

use crate::interp::Ctx;
use crate::runtime::Compiled;
use crate::value::Value;
use cranelift_codegen::ir::{types, AbiParam, Signature, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::Module;
use std::cell::{Cell, RefCell};

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
    /// `trampoline`, a `VectorFn`), if compiled with the code (it was wanted: `Later`),
    /// else 0; one compiled later is kept by `Compiled` only.
    pub vector_entry: usize,
    /// The same as a wrapper's vectorcall slot (`trampoline::Form::Slot`), likewise.
    pub slot_entry: usize,
    /// The entry for direct calls from native code (`trampoline::emit_direct`), likewise.
    pub direct_entry: usize,
    /// The `Later` entries made or tried (bits), so that a failed one is not tried again.
    tried: Cell<u8>,
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
    /// Bytes of machine code: the function and its entries.
    pub code_bytes: Cell<usize>,
    /// Bytes of the function's machine code per linear instruction (its templates and
    /// inlined callees, then its slow paths: in cold blocks), then the rest (prologue,
    /// shared exits); the entries' are not in it. What `dump` and `stats` break the code
    /// size down by.
    pub code_at: Vec<(u32, u32)>,
    /// Keeps the code's memory mapped, and its entries' compiled later.
    _module: JITModule,
    later: RefCell<Vec<JITModule>>,
}

impl NativeCode {
    /// Whether `compile_later` would try entry `l` of `c` (this code's function): not
    /// made or tried yet, and possible at all.
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn may_make(&self, c: &Compiled, l: Later) -> bool {
        self.tried.get() & l.bit() == 0 && l.possible(c)
    }
}

/// The entries compiled only once something wants them, with the function's code if
/// that was already so, else on their own when first wanted: each is a copy of a small
/// function's whole body (or a call of a larger one's), and compiling every entry of
/// every function was about half of all compile time (richards: median 2.7 ms with them,
/// 0.9 ms without), where most functions are called from native code only, most small
/// ones inline at their call sites.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Later {
    /// The trampoline for calls from CPython (and tier 1), wanted once many such calls
    /// found the code native (`Compiled::entry_for_cpython`).
    FromRust,
    /// A wrapper's vectorcall slot, wanted once a site calls with the same types twice.
    Slot,
    /// The direct-call entry, wanted by a caller's compile that calls it (not inline).
    Direct,
}

impl Later {
    /// Every entry, in the order `stats(f)["native_entries"]` lists them.
    pub const ALL: [Later; 3] = [Later::FromRust, Later::Slot, Later::Direct];

    /// Its name in `stats(f)["native_entries"]`.
    pub fn name(self) -> &'static str {
        match self {
            Later::FromRust => "cpython",
            Later::Slot => "slot",
            Later::Direct => "direct",
        }
    }

    /// Its bit in `Compiled`'s wanted entries and `NativeCode::tried`.
    pub fn bit(self) -> u8 {
        match self {
            Later::FromRust => 1,
            Later::Slot => 2,
            Later::Direct => 4,
        }
    }

    /// Whether `c` can have this entry at all.
    ///
    /// # Safety
    /// GIL held.
    unsafe fn possible(self, c: &Compiled) -> bool {
        match self {
            Later::FromRust => c.plain_arity.is_some(),
            Later::Slot => {
                c.plain_arity.is_some()
                    && c.type_key.is_some()
                    && crate::runtime::wrapper_abi().is_some()
            }
            Later::Direct => c.linear.nregs <= crate::ops::calls::DIRECT_MAX_REGS,
        }
    }
}

// Cranelift contexts this thread finished compiling with, kept for its next compiles
// (at most `SPARES_KEPT` of each: compiles nest when a direct call site makes its
// callee's entry). A context keeps its allocations from one function to the next, the
// register allocator's above all, as Cranelift asks of its users; a fresh pair per
// function cost a small function's compile about a twentieth of its instructions (50
// one-attribute getters: 71.1M instructions compiling, 67.4M reusing them).
thread_local! {
    static SPARE_CONTEXTS: RefCell<Vec<Context>> = const { RefCell::new(Vec::new()) };
    static SPARE_BUILDERS: RefCell<Vec<FunctionBuilderContext>> = const { RefCell::new(Vec::new()) };
}
const SPARES_KEPT: usize = 4;

/// A `Context` from this thread's spares (or a new one), cleared and given back when
/// dropped.
struct ReusedContext(Option<Context>);

impl ReusedContext {
    fn take() -> ReusedContext {
        let spare = SPARE_CONTEXTS.with(|s| s.borrow_mut().pop());
        ReusedContext(Some(spare.unwrap_or_else(Context::new)))
    }
}

impl std::ops::Deref for ReusedContext {
    type Target = Context;
    fn deref(&self) -> &Context {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for ReusedContext {
    fn deref_mut(&mut self) -> &mut Context {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for ReusedContext {
    fn drop(&mut self) {
        if let Some(mut ctx) = self.0.take() {
            ctx.clear();
            SPARE_CONTEXTS.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARES_KEPT {
                    s.push(ctx);
                }
            });
        }
    }
}

/// A `FunctionBuilderContext` from this thread's spares, or a new one.
fn take_builder_context() -> FunctionBuilderContext {
    SPARE_BUILDERS
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_default()
}

/// Gives `fctx` back to this thread's spares: only after every function built with it was
/// finished (`FunctionBuilder::finalize` empties it; a build that failed halfway may not
/// have, and its context is dropped instead).
fn give_back_builder_context(fctx: FunctionBuilderContext) {
    SPARE_BUILDERS.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARES_KEPT {
            s.push(fctx);
        }
    });
}

/// Declares a function of signature `sig` in `module`; returns it and the context to
/// build it in (keeping its machine code listing for `dump`).
fn declare(
    module: &mut JITModule,
    sig: Signature,
    listings: bool,
) -> Result<(cranelift_module::FuncId, ReusedContext), String> {
    let id = module
        .declare_anonymous_function(&sig)
        .map_err(|e| e.to_string())?;
    let mut ctx = ReusedContext::take();
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

    /// Defines the trampoline of `form`.
    fn trampoline(&mut self, form: trampoline::Form) -> Result<cranelift_module::FuncId, String> {
        let nargs = self
            .c
            .plain_arity
            .expect("trampolines are made for plain signatures");
        let title = match form {
            trampoline::Form::FromRust => "entry from CPython (trampoline)",
            trampoline::Form::Slot { .. } => {
                "entry from CPython (trampoline as the wrapper's vectorcall)"
            }
        };
        let sig = trampoline::signature(
            form,
            self.call_conv(),
            self.module.target_config().pointer_type(),
        );
        self.define(sig, title, |e, main| trampoline::emit(e, nargs, main, form))
    }

    /// Defines the entry for direct calls.
    fn direct(&mut self) -> Result<cranelift_module::FuncId, String> {
        let sig = trampoline::direct_signature(
            self.call_conv(),
            self.module.target_config().pointer_type(),
        );
        let title = "entry for direct calls from native code";
        self.define(sig, title, trampoline::emit_direct)
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
        dead::remove_dead_loads(&mut ctx.func);
        layout::sink_cold(&mut ctx.func);
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

/// `compile`, with the listings (`NativeCode::clif`, `disasm`) only when `listings` (and
/// then with every entry it can have).
unsafe fn compile_with(c: &Compiled, listings: bool) -> Result<NativeCode, String> {
    let mut module = JITModule::new(JITBuilder::with_isa(
        isa(opt_level(c))?,
        cranelift_module::default_libcall_names(),
    ));
    let ptr = module.target_config().pointer_type();
    let sig = main_signature(&module);
    let (id, mut ctx) = declare(&mut module, sig, listings)?;
    let mut fctx = take_builder_context();
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
    dead::remove_dead_loads(&mut ctx.func);
    layout::sink_cold(&mut ctx.func);
    layout::mark_cold(&mut ctx.func);
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
    let code_at = ctx.compiled_code().map_or_else(Vec::new, |cc| {
        layout::bytes_per_instruction(cc, c.linear.insts.len())
    });
    // The trampolines for calls from CPython, when the signature is plain: the one
    // `Entry::call` calls, and (for a typed specialization, once the wrapper's layout is
    // registered) the one a wrapper's vectorcall slot may point at; the entry for direct
    // calls, where a call site may make one (`ops::calls::direct`). Those two only if
    // wanted already (`Later`), or for a listing.
    let mut forms = Vec::new();
    let wanted = |l: Later| l.possible(c) && (listings || c.wants_entry(l));
    if wanted(Later::FromRust) {
        forms.push(trampoline::Form::FromRust);
    }
    if wanted(Later::Slot) {
        forms.push(trampoline::Form::Slot {
            abi: crate::runtime::wrapper_abi().expect("possible() checked it"),
            invalid: invalid.as_ptr() as usize,
        });
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
    let tramp_ids = forms
        .iter()
        .map(|&form| entries.trampoline(form))
        .collect::<Result<Vec<_>, _>>()?;
    let direct_id = match wanted(Later::Direct) {
        true => Some(entries.direct()?),
        false => None,
    };
    give_back_builder_context(fctx);
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let code = module.get_finalized_function(id);
    // SAFETY: the function was declared with exactly NativeFn's signature.
    let entry = std::mem::transmute::<*const u8, NativeFn>(code);
    let form_entry = |which: fn(&trampoline::Form) -> bool| {
        forms
            .iter()
            .zip(&tramp_ids)
            .find(|(f, _)| which(f))
            .map_or(0, |(_, &tid)| module.get_finalized_function(tid) as usize)
    };
    let vector_entry = form_entry(|f| matches!(f, trampoline::Form::FromRust));
    let slot_entry = form_entry(|f| matches!(f, trampoline::Form::Slot { .. }));
    let direct_entry = direct_id.map_or(0, |did| module.get_finalized_function(did) as usize);
    let tried = [
        (Later::FromRust, vector_entry),
        (Later::Slot, slot_entry),
        (Later::Direct, direct_entry),
    ]
    .iter()
    .filter(|(_, a)| *a != 0)
    .fold(0, |t, (l, _)| t | l.bit());
    Ok(NativeCode {
        entry,
        vector_entry,
        slot_entry,
        direct_entry,
        tried: Cell::new(tried),
        width_at_compile: c.quick.iter().map(|q| q.get().width()).collect(),
        clif,
        disasm,
        templates,
        inlined,
        invalid,
        code_bytes: Cell::new(code_bytes),
        code_at,
        _module: module,
        later: RefCell::new(Vec::new()),
    })
}

/// Compiles entry `l` of `c`'s native code `code` on its own, in a module of its own that
/// calls the code by its address; its address, or 0 if `c` cannot have it or it failed
/// (then not tried again).
///
/// # Safety
/// GIL held; `code` is `c`'s current native code.
pub unsafe fn compile_later(c: &Compiled, code: &NativeCode, l: Later) -> usize {
    if !code.may_make(c, l) {
        return 0;
    }
    code.tried.set(code.tried.get() | l.bit());
    let made = || -> Result<usize, String> {
        let mut builder = JITBuilder::with_isa(
            isa(opt_level(c))?,
            cranelift_module::default_libcall_names(),
        );
        builder.symbol(MAIN, code.entry as *const u8);
        let mut module = JITModule::new(builder);
        let sig = main_signature(&module);
        let main = module
            .declare_function(MAIN, cranelift_module::Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        let mut fctx = take_builder_context();
        let (mut disasm, mut code_bytes) = (String::new(), 0);
        let mut entries = Entries {
            module: &mut module,
            fctx: &mut fctx,
            c,
            main,
            listings: false,
            disasm: &mut disasm,
            code_bytes: &mut code_bytes,
        };
        let id = match l {
            Later::FromRust => entries.trampoline(trampoline::Form::FromRust)?,
            Later::Slot => entries.trampoline(trampoline::Form::Slot {
                abi: crate::runtime::wrapper_abi().expect("possible() checked it"),
                invalid: code.invalid.as_ptr() as usize,
            })?,
            Later::Direct => entries.direct()?,
        };
        give_back_builder_context(fctx);
        module.finalize_definitions().map_err(|e| e.to_string())?;
        let addr = module.get_finalized_function(id) as usize;
        code.code_bytes.set(code.code_bytes.get() + code_bytes);
        code.later.borrow_mut().push(module);
        Ok(addr)
    };
    made().unwrap_or(0)
}

/// The symbol an entry compiled later calls the function's code by.
const MAIN: &str = "tiered_native_main";

/// `NativeFn`'s signature in `module`.
fn main_signature(module: &JITModule) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = Signature::new(module.isa().default_call_conv());
    for t in [ptr, ptr, types::I32, ptr] {
        sig.params.push(AbiParam::new(t));
    }
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

thread_local! {
    /// The target descriptions, by optimization level ("speed", "none"): made once (each
    /// detects the CPU's features again).
    static ISAS: RefCell<Vec<(&'static str, OwnedTargetIsa)>> = const { RefCell::new(Vec::new()) };
}

/// The target description for optimization level `opt`. Cranelift's IR verifier runs in
/// debug builds only (release: about 6% of compile time).
fn isa(opt: &'static str) -> Result<OwnedTargetIsa, String> {
    if let Some(isa) = ISAS.with(|i| {
        i.borrow()
            .iter()
            .find(|(o, _)| *o == opt)
            .map(|(_, i)| i.clone())
    }) {
        return Ok(isa);
    }
    let mut flags = settings::builder();
    flags.set("opt_level", opt).map_err(|e| e.to_string())?;
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    flags
        .set("enable_verifier", verify)
        .map_err(|e| e.to_string())?;
    let isa = cranelift_native::builder()
        .map_err(|e| e.to_string())?
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())?;
    ISAS.with(|i| i.borrow_mut().push((opt, isa.clone())));
    Ok(isa)
}

/// For tests of passes over Cranelift IR: an empty function taking and returning one i64,
/// and the builder's finishing step for it.
#[cfg(test)]
pub(crate) mod test_function {
    use cranelift_codegen::ir::{types, AbiParam, Function, Signature};
    use cranelift_codegen::isa::CallConv;
    use cranelift_frontend::FunctionBuilder;

    /// `fn(i64) -> i64`, empty.
    pub(crate) fn new() -> Function {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        Function::with_name_signature(Default::default(), sig)
    }

    /// Seals and finalizes what `b` built, for the host.
    pub(crate) fn finish(mut b: FunctionBuilder) {
        b.seal_all_blocks();
        b.finalize(super::isa("none").expect("host ISA").frontend_config());
    }
}
