//! Direct native calls: a quickened Call whose callee has native code builds the callee's
//! registers and context in the caller's native frame and enters its code with no Rust in
//! between (or emits a small callee's code right there).

use super::CallVariant;
use crate::interp::Ctx;
use crate::lower::LKind;
use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::runtime::Compiled;
use crate::value::tag;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, BlockArg, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;
use tiered_ir::Op;

/// Registers a callee may have for a direct call (its register file lives in the caller's
/// native frame, which grows by 16 bytes a register of its largest direct callee; the
/// stack guard raises RecursionError before deep recursion could overflow it). 64 left
/// go's `Board.useful` to the helper: 357,708 helper calls a run, 3% of its instructions;
/// 128 left meteor_contest's recursive `solve` there (its run 1.09G -> 0.98G instructions
/// at 256, CPython's 0.92G).
pub(crate) const DIRECT_MAX_REGS: u32 = 256;

/// A quickened Call site whose callee native code enters directly: the callee's registers
/// and context are built in the caller's native frame and its native code is called with
/// no Rust in between, arguments moved in unboxed.
pub(crate) struct Direct<'c> {
    /// The callable the site is specialized on (kept alive by the caller's code).
    callable: *mut ffi::PyObject,
    /// The function that runs (the wrapper's function for a `@tiered` callee), or `None`:
    /// the callable, any function of this code.
    func: Option<*mut ffi::PyFunctionObject>,
    /// Its code when compiled (a reassigned `__code__` fails the guard).
    code: *mut ffi::PyObject,
    /// The callee's specialization.
    callee: &'c Compiled,
    /// The wrapper's entry for a `@tiered` callee (its counters and tuning).
    entry: Option<&'c crate::runtime::Entry>,
    /// The operand of the callable: 1 for a plain call (operand 0 NULL), 0 for a method
    /// call (`obj.method(...)`: the method, then `self` as the first argument).
    callable_at: usize,
    /// Where the callee's first parameter comes from when no operand gives it.
    self_from: SelfFrom,
    /// Where the function's `__defaults__` come from, when some parameters take theirs.
    defaults: Option<Defaults>,
    /// Per argument after the callable (positional ones, then keyword ones): its
    /// parameter (register).
    slots: Vec<u32>,
    /// The parameters no argument gives, each with its place counted back from the end
    /// of `__defaults__`.
    from_defaults: Vec<(u32, usize)>,
    /// The keyword-only parameters no keyword gives, from `__kwdefaults__` (read at the
    /// call: the dict may change).
    from_kwdefaults: Vec<u32>,
}

/// Where a direct call's callee gets a `self` that no operand gives (`callable_at` is 1
/// for both others).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SelfFrom {
    /// Every parameter given is an operand.
    Operands,
    /// The callable is a bound method of the function (CallBoundMethod): its `self`, read
    /// from the method object.
    Bound,
    /// The callable is a class (CallClass) and the callee its `__init__`: a new instance,
    /// made once the guards held (`class::new_instance`), which the call then gives
    /// (`class::finish_init`). Its version tag is guarded (its `__init__`, `__new__` and
    /// abstractness as they were).
    New { version: u32 },
}

impl SelfFrom {
    /// Parameters given before the operands' (0 or 1).
    fn count(self) -> usize {
        (self != SelfFrom::Operands) as usize
    }
}

/// The defaults a direct call fills parameters from.
#[derive(Clone, Copy)]
enum Defaults {
    /// The known function's tuple, guarded by identity at the call (a tuple never
    /// changes) and kept alive by the caller's code (so its address is never reused).
    Known(*mut ffi::PyObject),
    /// Any function of the code (a closure, or a function made by each call of its
    /// parent): its tuple read at the call, guarded to have enough items.
    Read,
}

/// The direct native calls Call `pc` of `c` can make: one per entry of its variant (a
/// polymorphic site's in order) that `direct` allows.
///
/// # Safety
/// GIL held.
pub(crate) unsafe fn directs(c: &Compiled, pc: usize) -> Vec<Direct<'_>> {
    match c.quick[pc].get() {
        Quick::Call(CallVariant::Poly(es)) => es.iter().filter_map(|&v| direct(c, pc, v)).collect(),
        Quick::Call(v) => direct(c, pc, v).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Whether Call `pc` of `c` can call variant `v`'s callee directly from native code: a
/// positional call to a callee whose parameters are exactly its positional arguments
/// (`self` first for a method the site's LoadMethod found: the callee was specialized
/// with that many).
///
/// # Safety
/// GIL held.
unsafe fn direct(c: &Compiled, pc: usize, v: CallVariant) -> Option<Direct<'_>> {
    let inst = c.linear.insts[pc];
    let LKind::Op(Op::Call { kwnames }) = inst.kind else {
        return None;
    };
    if inst.nargs < 2 {
        return None;
    }
    let (callable, func, callee, entry, self_from) = match v {
        CallVariant::PyFunction {
            func,
            compiled,
            bound,
            ..
        } => {
            let f = (!func.is_null()).then_some(func as *mut ffi::PyFunctionObject);
            let from = match bound {
                true => SelfFrom::Bound,
                false => SelfFrom::Operands,
            };
            (func, f, compiled, None, from)
        }
        CallVariant::Tiered { callable, compiled } => {
            let entry = crate::runtime::entry_of_wrapper(callable)?;
            let f = entry.func.ptr() as *mut ffi::PyFunctionObject;
            (callable, Some(f), compiled, Some(entry), SelfFrom::Operands)
        }
        CallVariant::Class {
            cls,
            version,
            init,
            compiled,
            ..
        } => {
            // `__init__` (its wrapper's function for a `@tiered` one), which the class
            // keeps while its version tag holds.
            let entry = crate::runtime::entry_of_wrapper(init);
            let f = super::class::init_function(init)? as *mut ffi::PyFunctionObject;
            (cls, Some(f), compiled, entry, SelfFrom::New { version })
        }
        // (A polymorphic site's entries are asked one by one: `directs`.)
        CallVariant::Builtin { .. } | CallVariant::BoundBuiltin { .. } | CallVariant::Poly(_) => {
            return None
        }
    };
    // SAFETY: specializations live in the registry for the process's life.
    let callee = callee.as_ref()?;
    let nargs = inst.nargs as usize;
    let (n, kwonly) = callee.arity();
    let kw = match kwnames.0 {
        Some(k) => *c.objects.consts.get(k.0 as usize)?,
        None => std::ptr::null_mut(),
    };
    let nkw = if kw.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kw) as usize
    };
    let ops = &c.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize];
    // The call's form: a NULL first operand is a plain call, anything else a method call.
    // A first operand that is always NULL decides it first: counting alone would take
    // `f(a, b)` of `def f(a, b, c=0)` for a method call (one operand short of the
    // parameters, as `obj.f(a, b)` is), and its guard would fail at every run. Otherwise
    // a count of exactly the parameters after the callable is a plain call, anything else
    // a method call, and the guards tell the forms apart at run time.
    let callable_at = match () {
        _ if self_from != SelfFrom::Operands => 1,
        _ if crate::ops::values::null_registers(c)[ops[0] as usize] => 1,
        _ if nkw == 0 && n == nargs - 2 => 1,
        _ => 0,
    };
    // A bound method's `self` or a new instance is the first positional argument, given
    // by no operand.
    let shift = self_from.count();
    let given = (nargs - 1 - callable_at).checked_sub(nkw)? + shift;
    if given > n {
        return None;
    }
    // Each operand argument's parameter: positional ones in order, then each keyword's by
    // name (a positional-only name, an unknown one or one given twice is CPython's
    // TypeError: the ordinary path raises it).
    let mut slots: Vec<u32> = (shift as u32..given as u32).collect();
    let names = &callee.info.local_names;
    let posonly = callee.info.posonlyargcount as usize;
    for k in 0..nkw {
        // Keyword names are identifiers (valid Unicode), so comparing their text with
        // the parameters' (made the same way from `co_varnames`) is exact.
        let name = crate::ops::str_of(ffi::PyTuple_GET_ITEM(kw, k as ffi::Py_ssize_t));
        let at = (posonly.max(given)..n + kwonly)
            .find(|&i| !name.is_empty() && names.get(i) == Some(&name))? as u32;
        if slots.contains(&at) {
            return None;
        }
        slots.push(at);
    }
    // The rest from the function's defaults, as CPython binds them (`sq.find()` for
    // `def find(self, update=False)`): each with its place counted back from the end of
    // `__defaults__`.
    let from_defaults: Vec<(u32, usize)> = (given..n)
        .filter(|&i| !slots.contains(&(i as u32)))
        .map(|i| (i as u32, n - i))
        .collect();
    // The keyword-only parameters no keyword gives, from `__kwdefaults__`.
    let from_kwdefaults: Vec<u32> = (n as u32..(n + kwonly) as u32)
        .filter(|i| !slots.contains(i))
        .collect();
    let defaults = match (from_defaults.first(), func) {
        (None, _) => None,
        (Some(&(_, back)), Some(f)) => {
            let defs = (*f).func_defaults;
            if defs.is_null() || (ffi::PyTuple_GET_SIZE(defs) as usize) < back {
                return None;
            }
            Some(Defaults::Known(defs))
        }
        (Some(_), None) => Some(Defaults::Read),
    };
    let code = callee.objects.code.ptr();
    if !callee.runnable()
        || callee.linear.nregs > DIRECT_MAX_REGS
        || func.is_some_and(|f| (*f).func_code != code)
    {
        return None;
    }
    Some(Direct {
        callable,
        func,
        code,
        callee,
        entry,
        callable_at,
        self_from,
        defaults,
        slots,
        from_defaults,
        from_kwdefaults,
    })
}

/// Bytes of the frame area `c`'s direct calls need (the largest callee's registers, its
/// context, the result and its CPython frame); at least 16.
pub(crate) fn direct_frame_size(c: &Compiled) -> u32 {
    (0..c.linear.insts.len())
        // SAFETY: called while compiling, with the GIL held.
        .flat_map(|pc| unsafe { directs(c, pc) })
        .map(|d| crate::native::trampoline::CallArea::of(d.callee).size as u32)
        .max()
        .unwrap_or(0)
        .max(16)
        .next_multiple_of(16)
}

/// Emits a direct native call (see `Direct`), with the callee's code inline where
/// `may_inline` and it is small; any guard that fails before the call goes to `helper`
/// (the ordinary call path or the next entry's guards, not a deopt), and success
/// continues at `done`.
pub(super) fn emit_direct<'a>(
    e: &mut Emit<'a>,
    pc: usize,
    d: &Direct<'a>,
    may_inline: bool,
    helper: Block,
    done: Block,
) {
    let inst = e.c.linear.insts[pc];
    let ops: Vec<u32> =
        e.c.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize].to_vec();
    let last: Vec<bool> =
        e.c.linear.last_use[inst.args as usize..(inst.args + inst.nargs) as usize].to_vec();
    let ptr = e.ptr;
    // Guards, with no side effect yet: the call's form (no bound self, or a method and
    // its self), the callable, its code.
    let at = d.callable_at;
    if at == 1 && !e.is_null_register(ops[0]) {
        let t0 = e.tag(ops[0]);
        e.guard_eq(t0, tag::NULL as i64, helper);
    }
    let t1 = e.tag(ops[at]);
    e.guard_eq(t1, tag::OBJ as i64, helper);
    let mut p1 = e.payload(ops[at], ptr);
    // A bound method: the function and `self` it holds (`cpy::bound_method_parts`).
    let bound_self = (d.self_from == SelfFrom::Bound).then(|| {
        e.guard_type(p1, crate::cpy::bound_method_type(), helper);
        let (func_at, self_at) = crate::cpy::BOUND_METHOD_PARTS;
        let me = e.b.ins().load(ptr, mem(), p1, self_at);
        p1 = e.b.ins().load(ptr, mem(), p1, func_at);
        me
    });
    let f = match d.func {
        Some(func) => {
            e.guard_eq(p1, d.callable as i64, helper);
            // A class: its `__init__` is still the function known here (which its
            // namespace keeps alive meanwhile) only while its version tag is the same.
            if let SelfFrom::New { version } = d.self_from {
                crate::ops::attrs::emit_version_guard(e, p1, version, helper);
            }
            e.b.ins().iconst(ptr, func as i64)
        }
        None => {
            // Any function object of this code: the callable itself runs.
            let ty = e.b.ins().load(ptr, mem(), p1, 8);
            let function_type = std::ptr::addr_of_mut!(ffi::PyFunction_Type) as i64;
            e.guard_eq(ty, function_type, helper);
            p1
        }
    };
    let code = e.b.ins().load(
        ptr,
        mem(),
        f,
        std::mem::offset_of!(ffi::PyFunctionObject, func_code) as i32,
    );
    e.guard_eq(code, d.code as i64, helper);
    // The defaults: the tuple as compiled (another one, or none, takes the ordinary call
    // path), or any tuple with as many items as the first filled parameter needs (the
    // address of its end is kept for filling the parameters in below).
    let missing = d.from_defaults.first().map_or(0, |&(_, back)| back);
    let defaults_end = d.defaults.and_then(|how| {
        let now = e.b.ins().load(
            ptr,
            mem(),
            f,
            std::mem::offset_of!(ffi::PyFunctionObject, func_defaults) as i32,
        );
        match how {
            Defaults::Known(defs) => {
                // SAFETY: compiling, with the GIL held.
                unsafe { e.c.keep_alive(defs) };
                e.guard_eq(now, defs as i64, helper);
                None
            }
            Defaults::Read => {
                let none = e.b.ins().icmp_imm_s(IntCC::Equal, now, 0);
                e.fail_if(none, helper);
                // A tuple (`__defaults__` takes nothing else): ob_size, then the items.
                let size = e.b.ins().load(types::I64, mem(), now, 16);
                let few =
                    e.b.ins()
                        .icmp_imm_s(IntCC::SignedLessThan, size, missing as i64);
                e.fail_if(few, helper);
                let bytes = e.b.ins().ishl_imm_u(size, 3);
                Some(e.b.ins().iadd(now, bytes))
            }
        }
    });
    // The arguments: the types the callee is specialized for (the helper path would pick
    // another specialization); an unboxed number that is also used later is boxed first.
    let key_types: Vec<usize> = d
        .callee
        .type_key
        .map(|k| k.types().to_vec())
        .unwrap_or_default();
    let first = at + 1;
    let shift = d.self_from.count();
    if let (Some(me), Some(&ty)) = (bound_self, key_types.first()) {
        e.guard_type(me, ty as *mut ffi::PyTypeObject, helper);
    }
    for (i, (&r, &last_use)) in ops[first..].iter().zip(&last[first..]).enumerate() {
        if !last_use {
            // An unboxed number also used later (a local, such as a loop's counter) is
            // boxed in place first, so both uses share one object (as tier 1 boxes an
            // op's operands); it took the ordinary call path before: `s.get(i)` in a
            // `for i in range(n)` loop cost 1,287 instructions a call instead of ~300.
            e.box_number(r, helper);
        }
        let t = e.tag(r);
        if let Some(&ty) = key_types.get(i + shift) {
            emit_type_guard(e, r, t, ty, helper);
        }
    }
    // A generator function's code starting with its arguments: the call makes the
    // generator from them (`generator::start`), running none of the callee's code (a
    // class's `__init__` must return None: such a call is left to the ordinary path).
    if d.callee.gen_start.is_some() && !matches!(d.self_from, SelfFrom::New { .. }) {
        let args = ArgsFrom {
            ops: &ops,
            last: &last,
            first,
            me: bound_self,
            defaults_end,
            kwdefaults: &[],
        };
        emit_new_generator(e, pc, d, args, f, helper, done);
        return;
    }
    // Native code of the callee right now (0 while cold or after invalidation): an
    // inline copy is of that code; a call goes through its direct-call entry.
    let inline = may_inline && e.inlinable(d.callee);
    // A recursive call makes the whole call here: its site is the callee's own hot code,
    // and going through the direct-call entry (a second native frame, its registers
    // saved and restored) cost fib(27) 21 instructions a call (0.42x -> 0.46x of CPython's).
    let recursive = std::ptr::eq(d.callee, e.c);
    let slot = match inline || recursive {
        true => d.callee.native_entry.as_ptr(),
        false => {
            // Compiled now if the callee is native already, else with its code.
            // SAFETY: compiles run with the GIL held.
            unsafe { d.callee.entry_wanted(crate::native::Later::Direct) };
            d.callee.direct_entry.as_ptr()
        }
    };
    let slot = e.b.ins().iconst(ptr, slot as i64);
    let entry = e.b.ins().load(ptr, mem(), slot, 0);
    let cold = e.b.ins().icmp_imm_s(IntCC::Equal, entry, 0);
    e.fail_if(cold, helper);
    let Committed {
        ctx,
        ts,
        limit,
        kwdefaults,
        fail,
        kwargs,
    } = emit_commit(e, pc, d, f, helper);
    // A class's new instance, made only now (made and dropped on a guard's failure, it
    // could have run a `__del__`).
    let new_self = match d.self_from {
        SelfFrom::New { .. } => {
            let owned: Vec<CValue> = kwdefaults.iter().copied().chain(kwargs).collect();
            Some(emit_new_instance(e, pc, d.callable, ts, &owned))
        }
        SelfFrom::Operands | SelfFrom::Bound => None,
    };
    let cregs = e.call_frame();
    let args = ArgsFrom {
        ops: &ops,
        last: &last,
        first,
        me: bound_self.or(new_self),
        defaults_end,
        kwdefaults: &kwdefaults,
    };
    emit_arguments(e, d, args, kwargs, cregs);
    // A `@tiered` callee tiers up by its own options; a plain one inherits its caller's.
    let tuning = match d.entry {
        Some(entry) => e.b.ins().iconst(ptr, &entry.tuning as *const _ as i64),
        None => {
            e.b.ins()
                .load(ptr, mem(), ctx, std::mem::offset_of!(Ctx, tuning) as i32)
        }
    };
    if let Some(entry) = d.entry {
        let entry = e.b.ins().iconst(ptr, entry as *const _ as i64);
        e.count_native_call(entry);
    }
    let area = crate::native::trampoline::CallArea::of(d.callee);
    let out = e.b.ins().iadd_imm_s(cregs, area.out);
    let status = if inline || recursive {
        use crate::native::trampoline::{emit_direct_rest, DirectCall, Enter};
        let call = DirectCall {
            callee: d.callee,
            regs: cregs,
            func: f,
            dicts: known_dicts(e, d),
            tuning,
            thread: (ts, limit),
        };
        // Inline: the callee's code right here: no call, no prologue, no entry dispatch,
        // its context written and its frame pushed only where something reads them; its
        // exits only ever return 0 or 1 (it has no loop to leave for tier 1 from).
        let enter = match inline {
            true => Enter::Inline,
            false => Enter::Pointer(entry),
        };
        emit_direct_rest(e, &call, enter)
    } else {
        // The rest of the call is the callee's direct-call entry's (the same for every
        // site): this function's frame is marked at this call before the callee's goes
        // on it (`call_value` does).
        e.call_value(
            crate::native::trampoline::DIRECT_SIGNATURE_KEY,
            entry,
            &[ptr; 5],
            Some(types::I64),
            &[cregs, f, tuning, ts, limit],
        )
        .expect("returns")
    };
    let status = match new_self {
        Some(obj) => emit_init_result(e, status, out, obj),
        None => status,
    };
    e.finish_direct_call(pc, status, out, inst.dst, done);
    fill_release(e, fail, &kwdefaults, helper);
}

/// Where a direct call's arguments come from: the call's operands (`ops`, whether each
/// is its last use), the first argument's operand, the first parameter's value when no
/// operand gives it (`me`: a bound method's `self` or a class call's new instance), and
/// the end of the defaults tuple when it is read at the call.
struct ArgsFrom<'o> {
    ops: &'o [u32],
    last: &'o [bool],
    first: usize,
    me: Option<CValue>,
    defaults_end: Option<CValue>,
    /// The keyword-only parameters' defaults (`Direct::from_kwdefaults`'s), owned.
    kwdefaults: &'o [CValue],
}

/// The values of direct call `d`'s keyword-only parameters that no keyword gives, from
/// function `f`'s `__kwdefaults__`, as new references once all are found (nothing runs
/// between the lookups and the increfs: a lookup of a str name among str keys runs no
/// code and allocates nothing); a function without that dict or a name it lacks branches
/// to `helper` before that, where the ordinary path raises CPython's TypeError.
fn emit_kwdefaults(e: &mut Emit, d: &Direct, f: CValue, helper: Block) -> Vec<CValue> {
    if d.from_kwdefaults.is_empty() {
        return Vec::new();
    }
    let ptr = e.ptr;
    let kwd = e.b.ins().load(
        ptr,
        mem(),
        f,
        std::mem::offset_of!(ffi::PyFunctionObject, func_kwdefaults) as i32,
    );
    let none = e.b.ins().icmp_imm_s(IntCC::Equal, kwd, 0);
    e.fail_if(none, helper);
    let get = ffi::PyDict_GetItem as *const () as usize;
    let mut found = Vec::with_capacity(d.from_kwdefaults.len());
    for &i in &d.from_kwdefaults {
        let name = d.callee.objects.local_names[i as usize].ptr();
        let name = e.b.ins().iconst(ptr, name as i64);
        let v = e
            .call(get, &[ptr, ptr], Some(ptr), &[kwd, name])
            .expect("returns");
        let missing = e.b.ins().icmp_imm_s(IntCC::Equal, v, 0);
        e.fail_if(missing, helper);
        found.push(v);
    }
    for &v in &found {
        e.incref(v);
    }
    found
}

/// `to` itself when `owned` is empty, else a new cold block for `fill_release` to fill
/// (once the current block is done): it releases the references `owned`, then goes to
/// `to`.
fn release_then(e: &mut Emit, owned: &[CValue], to: Block) -> Block {
    if owned.is_empty() {
        return to;
    }
    let b = e.b.create_block();
    e.b.set_cold_block(b);
    b
}

/// Fills block `b` from `release_then(e, owned, to)` (nothing to do when it is `to`).
fn fill_release(e: &mut Emit, b: Block, owned: &[CValue], to: Block) {
    if b == to {
        return;
    }
    e.b.switch_to_block(b);
    for &v in owned {
        e.decref(v);
    }
    e.b.ins().jump(to, &[]);
}

/// The empty tuple a direct call gives a callee's `*args` (no positional argument is
/// left for it: `direct`), kept alive by the caller's code.
///
/// # Safety
/// GIL held, compiling `c`.
unsafe fn empty_tuple(c: &Compiled) -> *mut ffi::PyObject {
    let t = ffi::PyTuple_New(0);
    if !t.is_null() {
        c.keep_alive(t);
        ffi::Py_DECREF(t);
    }
    t
}

/// A new empty dict for a direct call's callee's `**kwargs` (no keyword argument is left
/// for it: `direct`), made once the call is committed (recursion level `ts` entered, the
/// references `owned` taken): out of memory releases those, leaves that level and raises
/// at `pc`.
fn emit_kwargs(e: &mut Emit, pc: usize, ts: CValue, owned: &[CValue]) -> CValue {
    let ptr = e.ptr;
    let new = ffi::PyDict_New as *const () as usize;
    let d = e.call(new, &[], Some(ptr), &[]).expect("returns");
    let failed = e.b.ins().icmp_imm_s(IntCC::Equal, d, 0);
    e.raise_if_after(pc, failed, |e| {
        for &v in owned {
            e.decref(v);
        }
        e.leave_recursion(ts)
    });
    d
}

/// What a direct call has once committed (`emit_commit`).
struct Committed {
    /// The running activation's context, thread state and stack limit.
    ctx: CValue,
    ts: CValue,
    limit: CValue,
    /// The keyword-only parameters' defaults, owned (`emit_kwdefaults`).
    kwdefaults: Vec<CValue>,
    /// Where a guard that fails before the commit goes: `helper`, after releasing those
    /// (`release_then`; filled by `fill_release` once the call is emitted).
    fail: Block,
    /// The callee's `**kwargs` dict, if it takes one (owned).
    kwargs: Option<CValue>,
}

/// The last checks of direct call `d` of function `f`, then its commit: the keyword-only
/// defaults found, no tracer or profiler (they see calls in CPython), stack and
/// recursion depth left (the helper path raises RecursionError), each failure going to
/// `helper`; past them the recursion level is entered and the `**kwargs` dict made.
fn emit_commit(e: &mut Emit, pc: usize, d: &Direct, f: CValue, helper: Block) -> Committed {
    let ptr = e.ptr;
    let ctx = e.ctx();
    let ts =
        e.b.ins()
            .load(ptr, mem(), ctx, std::mem::offset_of!(Ctx, tstate) as i32);
    let limit = e.b.ins().load(
        ptr,
        mem(),
        ctx,
        std::mem::offset_of!(Ctx, stack_limit) as i32,
    );
    let kwdefaults = emit_kwdefaults(e, d, f, helper);
    let fail = release_then(e, &kwdefaults, helper);
    e.enter_checked(ts, limit, fail);
    let kwargs = d
        .callee
        .takes()
        .1
        .then(|| emit_kwargs(e, pc, ts, &kwdefaults));
    Committed {
        ctx,
        ts,
        limit,
        kwdefaults,
        fail,
        kwargs,
    }
}

/// The registers a direct call `d` at `pc` moves its arguments out of (their last use,
/// `emit_arguments`) that the Drop right after the call releases, but for the call's
/// result's (a result nothing reads, in a register an argument had, is dropped there).
pub(super) fn moved_operands(e: &Emit, pc: usize, d: &Direct) -> Vec<u32> {
    let inst = e.c.linear.insts[pc];
    let at = (inst.args as usize, (inst.args + inst.nargs) as usize);
    let ops = &e.c.linear.operands[at.0..at.1];
    let last = &e.c.linear.last_use[at.0..at.1];
    let dropped = e.dropped_after(pc);
    let first = d.callable_at + 1;
    ops[first.min(ops.len())..]
        .iter()
        .zip(&last[first.min(last.len())..])
        .filter(|&(&r, &last_use)| last_use && r != inst.dst && dropped.contains(&r))
        .map(|(&r, _)| r)
        .collect()
}

/// Writes direct call `d`'s arguments as the callee's parameters into the registers at
/// `cregs`, each a reference of their own: operands moved out at their last use, else
/// increfed; the parameters no argument gives from the defaults; the keyword-only
/// defaults, the `**kwargs` dict `kwargs` (owned: given to the callee); an empty `*args`.
fn emit_arguments(e: &mut Emit, d: &Direct, a: ArgsFrom, kwargs: Option<CValue>, cregs: CValue) {
    let ptr = e.ptr;
    // `me`: the callee's own reference, in its first parameter (a class call keeps its
    // own to the instance, to give as its result).
    if let Some(me) = a.me {
        e.incref(me);
        let obj = e.b.ins().iconst(types::I64, tag::OBJ as i64);
        e.b.ins().store(mem(), obj, cregs, 0);
        e.b.ins().store(mem(), me, cregs, 8);
    }
    for ((&r, &last_use), &slot) in a.ops[a.first..]
        .iter()
        .zip(&a.last[a.first..])
        .zip(&d.slots)
    {
        let t = e.tag(r);
        let p = e.payload(r, types::I64);
        if last_use {
            e.clear(r);
        } else {
            // An object (checked above): the callee gets its own reference.
            e.incref_loaded(t, p);
        }
        e.b.ins().store(mem(), t, cregs, (slot * 16) as i32);
        e.b.ins().store(mem(), p, cregs, (slot * 16 + 8) as i32);
    }
    // The parameters no argument gives, from the defaults: new references (the callee's
    // registers own what they hold).
    let obj = e.b.ins().iconst(types::I64, tag::OBJ as i64);
    for &(i, back) in &d.from_defaults {
        let p = match (d.defaults, a.defaults_end) {
            // SAFETY: a live tuple with enough items (checked in `direct`), kept alive.
            (Some(Defaults::Known(defs)), _) => unsafe {
                let k = ffi::PyTuple_GET_SIZE(defs) as usize - back;
                let item = ffi::PyTuple_GET_ITEM(defs, k as ffi::Py_ssize_t);
                e.b.ins().iconst(ptr, item as i64)
            },
            // PyTupleObject's items start at 24: item `size - back`.
            (_, Some(end)) => e.b.ins().load(ptr, mem(), end, 24 - 8 * back as i32),
            _ => unreachable!("a parameter no argument gives is filled from defaults"),
        };
        e.incref(p);
        e.b.ins().store(mem(), obj, cregs, (i * 16) as i32);
        e.b.ins().store(mem(), p, cregs, (i * 16 + 8) as i32);
    }
    for (&i, &v) in d.from_kwdefaults.iter().zip(a.kwdefaults) {
        e.b.ins().store(mem(), obj, cregs, (i * 16) as i32);
        e.b.ins().store(mem(), v, cregs, (i * 16 + 8) as i32);
    }
    // Then `*args`, an empty tuple, and `**kwargs`, the new dict (`bind`'s order).
    let (n, kwonly) = d.callee.arity();
    let mut r = (n + kwonly) as u32;
    if d.callee.takes().0 {
        // SAFETY: compiling, with the GIL held.
        let t = unsafe { empty_tuple(e.c) };
        let t = e.b.ins().iconst(ptr, t as i64);
        e.incref(t);
        e.b.ins().store(mem(), obj, cregs, (r * 16) as i32);
        e.b.ins().store(mem(), t, cregs, (r * 16 + 8) as i32);
        r += 1;
    }
    if let Some(kw) = kwargs {
        e.b.ins().store(mem(), obj, cregs, (r * 16) as i32);
        e.b.ins().store(mem(), kw, cregs, (r * 16 + 8) as i32);
    }
}

/// Direct call `d` to a generator function whose code starts with its arguments (its
/// guards held; `f` the function): the generator made from the arguments
/// (`helpers::new_generator`) into the call's result, or its exception raised at `pc`.
/// A trace or profile hook, or no recursion level left, takes `helper` (CPython's call
/// enters the function's frame, with its events and recursion check).
#[allow(clippy::too_many_arguments)]
fn emit_new_generator(
    e: &mut Emit,
    pc: usize,
    d: &Direct,
    a: ArgsFrom,
    f: CValue,
    helper: Block,
    done: Block,
) {
    let ptr = e.ptr;
    let Committed {
        ctx,
        ts,
        kwdefaults,
        fail,
        kwargs,
        ..
    } = emit_commit(e, pc, d, f, helper);
    let cregs = e.call_frame();
    let a = ArgsFrom {
        kwdefaults: &kwdefaults,
        ..a
    };
    emit_arguments(e, d, a, kwargs, cregs);
    if let Some(entry) = d.entry {
        let entry = e.b.ins().iconst(ptr, entry as *const _ as i64);
        e.count_native_call(entry);
    }
    let callee = e.b.ins().iconst(ptr, d.callee as *const Compiled as i64);
    let make = crate::native::helpers::new_generator as *const () as usize;
    let gen = e
        .call(make, &[ptr; 4], Some(ptr), &[ctx, cregs, callee, f])
        .expect("returns");
    e.leave_recursion(ts);
    let failed = e.b.ins().icmp_imm_s(IntCC::Equal, gen, 0);
    e.raise_if(pc, failed);
    let dst = e.c.linear.insts[pc].dst;
    e.reset(dst);
    let obj = e.b.ins().iconst(types::I64, tag::OBJ as i64);
    e.store_reg(dst, obj, gen);
    e.b.ins().jump(done, &[]);
    fill_release(e, fail, &kwdefaults, helper);
}

/// The globals and builtins of direct call `d`'s function when it is known at compile
/// time (else they are read from the function object where needed).
fn known_dicts(e: &mut Emit, d: &Direct) -> Option<(CValue, CValue)> {
    // SAFETY: a function known here is kept alive by the caller's code (it is the
    // callable, or the wrapper's function); its globals and builtins cannot be
    // reassigned. Another function of this code has its own.
    d.func.map(|func| unsafe {
        (
            e.b.ins().iconst(e.ptr, (*func).func_globals as i64),
            e.b.ins().iconst(e.ptr, (*func).func_builtins as i64),
        )
    })
}

/// A class call's instance (`class::new_instance`) once committed (recursion level `ts`
/// entered, the references `owned` taken: keyword-only defaults, the `**kwargs` dict):
/// an allocation failure releases those, leaves that level and raises at `pc`.
fn emit_new_instance(
    e: &mut Emit,
    pc: usize,
    cls: *mut ffi::PyObject,
    ts: CValue,
    owned: &[CValue],
) -> CValue {
    let ptr = e.ptr;
    let cls = e.b.ins().iconst(ptr, cls as i64);
    let new = super::class::new_instance as *const () as usize;
    let obj = e.call(new, &[ptr], Some(ptr), &[cls]).expect("returns");
    let failed = e.b.ins().icmp_imm_s(IntCC::Equal, obj, 0);
    e.raise_if_after(pc, failed, |e| {
        for &v in owned {
            e.decref(v);
        }
        e.leave_recursion(ts)
    });
    obj
}

/// A class call's result once its `__init__` returned with `status` and its result in
/// `out`: the instance `obj` (owned) when that is None, as slot_tp_init checks; anything
/// else (raised, another result, a hook on) through `class::finish_init`. Returns the
/// call's status then.
fn emit_init_result(e: &mut Emit, status: CValue, out: CValue, obj: CValue) -> CValue {
    let t = e.b.ins().load(types::I64, mem(), out, 0);
    let p = e.b.ins().load(types::I64, mem(), out, 8);
    // SAFETY: taking None's address reads nothing.
    let none = unsafe { ffi::Py_None() } as i64;
    let is_none = e.b.ins().icmp_imm_s(IntCC::Equal, p, none);
    let is_obj = e.b.ins().icmp_imm_s(IntCC::Equal, t, tag::OBJ as i64);
    let returned = e.b.ins().icmp_imm_s(IntCC::Equal, status, 0);
    let good = e.b.ins().band(is_none, is_obj);
    let good = e.b.ins().band(good, returned);
    let fast = e.b.create_block();
    let slow = e.b.create_block();
    e.b.set_cold_block(slow);
    let join = e.b.create_block();
    e.b.append_block_param(join, types::I64);
    e.b.ins().brif(good, fast, &[], slow, &[]);
    e.b.switch_to_block(fast);
    e.decref(p);
    e.b.ins().store(mem(), obj, out, 8);
    e.b.ins().jump(join, &[BlockArg::Value(status)]);
    e.b.switch_to_block(slow);
    let finish = super::class::finish_init as *const () as usize;
    let ptr = e.ptr;
    let s = e
        .call(
            finish,
            &[ptr, ptr, types::I64],
            Some(types::I64),
            &[out, obj, status],
        )
        .expect("returns");
    e.b.ins().jump(join, &[BlockArg::Value(s)]);
    e.b.switch_to_block(join);
    e.b.block_params(join)[0]
}

/// Branches to `fail` unless register `r` (tag `t`) holds a value of exact type `ty`.
pub(crate) fn emit_type_guard(e: &mut Emit, r: u32, t: CValue, ty: usize, fail: Block) {
    // Taking the addresses of CPython's static type objects reads nothing.
    let unboxed_tag = {
        if ty == std::ptr::addr_of_mut!(ffi::PyLong_Type) as usize {
            Some(tag::INT)
        } else if ty == std::ptr::addr_of_mut!(ffi::PyFloat_Type) as usize {
            Some(tag::FLOAT)
        } else if ty == std::ptr::addr_of_mut!(ffi::PyBool_Type) as usize {
            Some(tag::BOOL)
        } else {
            None
        }
    };
    // (A register that never holds a number holds no unboxed int or float to test for.)
    let unboxed_tag = unboxed_tag.filter(|&ut| ut == tag::BOOL || e.may_be_number(r));
    let join = e.b.create_block();
    if let Some(ut) = unboxed_tag {
        let is_unboxed = e.b.ins().icmp_imm_s(IntCC::Equal, t, ut as i64);
        let boxed = e.b.create_block();
        e.b.ins().brif(is_unboxed, join, &[], boxed, &[]);
        e.b.switch_to_block(boxed);
    }
    e.object_of_type(r, ty as *mut ffi::PyTypeObject, fail);
    e.b.ins().jump(join, &[]);
    e.b.switch_to_block(join);
}
