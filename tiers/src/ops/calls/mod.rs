//! Calls and function creation.

mod builtin;
mod class;
mod direct;

pub(crate) use direct::{direct_frame_size, directs, emit_type_guard, DIRECT_MAX_REGS};

use crate::interp::Ctx;
use crate::native::emit::Emit;
use crate::quick::Quick;
use crate::runtime::Compiled;
use crate::value::{Owned, PyResult, Raised, Value};
use cranelift_codegen::ir::{Block, InstBuilder};
use pyo3_ffi as ffi;
use tiered_ir::KwNames;

/// A call site's pieces: callable, argument array (writable one slot before, as
/// PY_VECTORCALL_ARGUMENTS_OFFSET allows), nargsf and kwnames.
struct CallShape {
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
}

/// Splits Call's operands (method or NULL, callable or self, args...) as CALL does.
unsafe fn shape(ctx: &Ctx, kwnames: KwNames, ptrs: &mut [*mut ffi::PyObject]) -> CallShape {
    let kw = match kwnames.0 {
        Some(i) => ctx
            .compiled
            .objects
            .consts
            .get(i.0 as usize)
            .copied()
            .unwrap_or(std::ptr::null_mut()),
        None => std::ptr::null_mut(),
    };
    let nkw = if kw.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kw) as usize
    };
    let (callable, args) = if ptrs[0].is_null() {
        (ptrs[1], &mut ptrs[2..])
    } else {
        (ptrs[0], &mut ptrs[1..])
    };
    CallShape {
        callable,
        args: args.as_ptr(),
        nargsf: (args.len() - nkw) | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
        kwnames: if nkw == 0 { std::ptr::null_mut() } else { kw },
    }
}

/// The object a Call's operands call (method or NULL, callable or self, args...).
pub fn callable_of(ptrs: &[*mut ffi::PyObject]) -> *mut ffi::PyObject {
    if ptrs[0].is_null() {
        ptrs[1]
    } else {
        ptrs[0]
    }
}

/// A call of a bound method of a Python function with no method slot (NULL, method,
/// args...) becomes a method call (function, self, args...) in `ptrs`, as 3.11's
/// PRECALL_BOUND_METHOD rewrites its stack; the method object stays alive in its
/// register for the call. Whether it was one.
///
/// # Safety
/// GIL held; `ptrs` a Call's operands (at least two).
unsafe fn unpack_bound_method(ptrs: &mut [*mut ffi::PyObject]) -> bool {
    if !ptrs[0].is_null() || ptrs[1].is_null() {
        return false;
    }
    match crate::cpy::bound_method_parts(ptrs[1]) {
        Some((f, me)) if ffi::PyFunction_Check(f) != 0 => {
            ptrs[0] = f;
            ptrs[1] = me;
            true
        }
        _ => false,
    }
}

static FRAME_READERS: crate::runtime::GilCell<Vec<usize>> =
    crate::runtime::GilCell::new(Vec::new());

/// Whether calling `callable` reads the caller's frame (its locals or arguments): `locals`,
/// `vars`, `dir`, `eval`, `exec`, `super`, `breakpoint`. Calls of these (however they are
/// reached: another name, an attribute) first make the frame's locals current
/// (`activation::sync_own`), and are never quickened into a path that skips that. (Frame
/// objects, `sys._getframe`'s included, sync when their `f_locals` is read.)
///
/// # Safety
/// GIL held.
pub unsafe fn reads_frame(callable: *mut ffi::PyObject) -> bool {
    FRAME_READERS.with(|set| {
        if set.is_empty() {
            let builtins = ffi::PyEval_GetBuiltins();
            for name in [
                c"locals",
                c"vars",
                c"dir",
                c"eval",
                c"exec",
                c"super",
                c"breakpoint",
            ] {
                let o = ffi::PyDict_GetItemString(builtins, name.as_ptr());
                if !o.is_null() {
                    ffi::Py_INCREF(o); // kept: identities must stay these objects
                    set.push(o as usize);
                }
            }
            set.push(0); // computed (never a callable)
        }
        set.contains(&(callable as usize))
    })
}

/// Call: operands (method or NULL, callable or self, args...) as CALL sees its stack.
/// Python functions nested in tiered code are entered in tier 1 directly.
///
/// # Safety
/// GIL held; `ptrs` is a scratch copy the callee may write `ptrs[k-1]` of
/// (PY_VECTORCALL_ARGUMENTS_OFFSET).
pub unsafe fn call(
    ctx: &Ctx,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> PyResult<Value> {
    let c = shape(ctx, kwnames, ptrs);
    let r = if ffi::PyFunction_Check(c.callable) != 0 {
        crate::runtime::call_function(ctx.tstate, c.callable, c.args, c.nargsf, c.kwnames)
    } else if ctx.tstate.tracing() {
        crate::tracing::call_c(ctx.tstate, c.callable, c.args, c.nargsf, c.kwnames)
    } else {
        ffi::PyObject_Vectorcall(c.callable, c.args, c.nargsf, c.kwnames)
    };
    Value::from_owned(r)
}

/// Quickened forms of Call.
#[derive(Clone, Copy, Debug)]
pub enum CallVariant {
    /// A Python function whose code runs in tier 1, entered directly (no CPython frame):
    /// callees are specialized too, not just the decorated function.
    PyFunction {
        /// The function seen (compared by identity, never dereferenced unless equal), or
        /// NULL for any function of this code: a closure, a function with defaults or
        /// one whose code is nested in tiered code (a comprehension's), which is likely
        /// made anew for each call and must not be kept alive (with what its cells and
        /// defaults hold) by the site's guard.
        func: *mut ffi::PyObject,
        /// Its code then (a reassigned `__code__` fails the guard).
        code: *mut ffi::PyObject,
        /// The compiled code (the registry keeps it for the process's life).
        compiled: *const Compiled,
        /// The site calls a bound method of this function (`get = obj.get; get()`): the
        /// method object is unpacked into the function and `self` first, as 3.11's
        /// PRECALL_BOUND_METHOD does, instead of going through the method's vectorcall.
        bound: bool,
    },
    /// A builtin function, a method of a builtin type or a builtin class (`len`,
    /// `list.append`, `str`...): called through vectorcall (`str(x)` as `PyObject_Str`),
    /// from native code directly.
    Builtin {
        /// The callable seen (kept alive by the code; compared by identity).
        callable: *mut ffi::PyObject,
    },
    /// A builtin method bound to an object (`append = lst.append; append(x)`), which is a
    /// new object each time the attribute is read: any `builtin_function_or_method` of
    /// this method definition, called with the `self` it holds (`builtin::bound_def`).
    BoundBuiltin {
        /// The definition (among the methods of a type the code keeps alive).
        ml: *mut ffi::PyMethodDef,
    },
    /// A Python class whose instances come from `object.__new__` and whose `__init__`
    /// is a Python function (3.12's CALL_ALLOC_AND_ENTER_INIT): the instance is made and
    /// `__init__` entered in our tiers, instead of type_call, slot_tp_init and a CPython
    /// frame.
    Class {
        /// The class (compared by identity; kept alive by the code).
        cls: *mut ffi::PyObject,
        /// Its version tag then: any change to it or its bases' namespaces changes it.
        version: u32,
        /// Its `__init__` then: a Python function or a `@tiered` wrapper.
        init: *mut ffi::PyObject,
        /// That function's code then (assigning `__init__.__code__` leaves the class's
        /// version tag as it was).
        code: *mut ffi::PyObject,
        /// The specialization of `__init__` for (instance, argument types).
        compiled: *const Compiled,
    },
    /// A `@tiered` wrapper, entered without the vectorcall protocol.
    Tiered {
        /// The wrapper seen (compared by identity).
        callable: *mut ffi::PyObject,
        /// The specialization its function had for the argument types seen (NULL: none),
        /// which native callers enter directly.
        compiled: *const Compiled,
    },
    /// A site that has called several `@tiered` functions, or one with arguments of
    /// several types, or instantiated one class with arguments of several types (2 to
    /// `POLY_MAX` entries: the site's first variant, PyFunction not bound, Tiered or
    /// Class, then Tiered ones or Class ones of that class, each with its own
    /// specialization; `widen_call`):
    /// native code tries each entry's guards in turn and enters the first that fits
    /// directly, as the single-entry variants do. Before, every call but the first
    /// entry's took the helper's general path (richards: 70% of its calls).
    Poly(&'static [CallVariant]),
}

/// Names of Call's variants (each has a template), for coverage.
pub const CALL_VARIANTS: &[&str] = &[
    "CallPyFunction",
    "CallTiered",
    "CallBuiltin",
    "CallClass",
    "CallBoundMethod",
    "CallBoundBuiltin",
    "CallPoly",
];

impl CallVariant {
    /// How a builtin variant recognizes its callable (None for the others).
    fn builtin_guard(self) -> Option<builtin::Guard> {
        match self {
            CallVariant::Builtin { callable } => Some(builtin::Guard::Is(callable)),
            CallVariant::BoundBuiltin { ml } => Some(builtin::Guard::Def(ml)),
            _ => None,
        }
    }

    /// Whether the site can widen into (or is) CallPoly: its entries are Python functions
    /// called directly.
    pub fn widens(self) -> bool {
        match self {
            CallVariant::PyFunction { bound, .. } => !bound,
            CallVariant::Tiered { .. } | CallVariant::Poly(_) | CallVariant::Class { .. } => true,
            CallVariant::Builtin { .. } | CallVariant::BoundBuiltin { .. } => false,
        }
    }

    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            CallVariant::PyFunction { bound: false, .. } => CALL_VARIANTS[0],
            CallVariant::PyFunction { bound: true, .. } => CALL_VARIANTS[4],
            CallVariant::Tiered { .. } => CALL_VARIANTS[1],
            CallVariant::Builtin { .. } => CALL_VARIANTS[2],
            CallVariant::Class { .. } => CALL_VARIANTS[3],
            CallVariant::BoundBuiltin { .. } => CALL_VARIANTS[5],
            CallVariant::Poly(_) => CALL_VARIANTS[6],
        }
    }
}

/// Which variant fits this call site's callable, if any (compiling a Python callee's code).
///
/// # Safety
/// GIL held.
pub unsafe fn observe_call(
    ctx: &Ctx,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> Option<CallVariant> {
    // Whether this observation finds its callee cold is read by the caller afterwards
    // (`runtime::took_cold`): an earlier one's answer that nobody read must not stand.
    crate::runtime::took_cold();
    let bound = unpack_bound_method(ptrs);
    let c = shape(ctx, kwnames, ptrs);
    if reads_frame(c.callable) {
        return None; // the generic path makes the frame current first
    }
    let nargs = ffi::PyVectorcall_NARGS(c.nargsf) as usize;
    // A Python callee (a function, a class's `__init__`) met for the first time runs in
    // CPython (the generic call), until it proves warm; under low thresholds (tests) it
    // is translated at once.
    let warmup = ctx.tuning.jit_threshold.min(crate::runtime::CALLEE_WARMUP);
    // The callee is specialized for the argument types this site passes.
    let specialization = |func: *mut ffi::PyObject| {
        let code = (*(func as *mut ffi::PyFunctionObject)).func_code;
        match crate::runtime::compiled_for_args(code, c.args, nargs) {
            Ok(compiled) if compiled.runnable() => Some(std::rc::Rc::as_ptr(&compiled)),
            Ok(_) => None,
            Err(_) => {
                ffi::PyErr_Clear();
                None
            }
        }
    };
    let v = if let Some(entry) = crate::runtime::entry_of_wrapper(c.callable) {
        CallVariant::Tiered {
            callable: c.callable,
            compiled: specialization(entry.func.ptr()).unwrap_or(std::ptr::null()),
        }
    } else if ffi::PyFunction_Check(c.callable) != 0 {
        let f = c.callable as *mut ffi::PyFunctionObject;
        if !crate::runtime::warm_enough((*f).func_code, warmup) {
            return None;
        }
        // A comprehension's or a lambda's function (its code a constant of tiered code)
        // is made anew for each run of the code that makes it, closure or not.
        let fresh = !(*f).func_closure.is_null()
            || !(*f).func_defaults.is_null()
            || !(*f).func_kwdefaults.is_null()
            || crate::runtime::is_nested_tiered((*f).func_code);
        CallVariant::PyFunction {
            func: if fresh {
                std::ptr::null_mut()
            } else {
                c.callable
            },
            code: (*f).func_code,
            compiled: specialization(c.callable)?,
            bound,
        }
    } else if bound {
        return None; // (the function's variant alone takes a bound method)
    } else if let Some((ml, owner)) = builtin::bound_def(c.callable) {
        // The type whose methods hold `ml` stays, not the method object (made anew per
        // read, it keeps its `self` alive).
        ctx.compiled.keep_alive(owner as *mut ffi::PyObject);
        return Some(CallVariant::BoundBuiltin { ml });
    } else if builtin::is_builtin(c.callable) {
        CallVariant::Builtin {
            callable: c.callable,
        }
    } else {
        class::observe(c.callable, c.args, nargs, warmup)?
    };
    // The guards compare the callable by identity: it must stay this object (a function
    // guarded by its code alone is not kept).
    if !matches!(v, CallVariant::PyFunction { func, .. } if func.is_null()) {
        ctx.compiled.keep_alive(c.callable);
    }
    Some(v)
}

/// How a Python-function entry (PyFunction, Tiered) fits a call of `callable` with
/// positional arguments `args`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fit {
    /// Another callable.
    No,
    /// Its callable, but the arguments' types are not those its specialization was made
    /// for: running it is still correct (a specialization guards what it assumes), only
    /// not the code a direct native call would enter.
    Callable,
    /// Its callable, and the types its specialization was made for.
    Exact,
}

/// Whether a PyFunction or Tiered variant `v` is for `callable` (a bound method's function
/// once unpacked): the function seen, or any function of its code; the wrapper seen.
///
/// # Safety
/// GIL held; `callable` live.
unsafe fn calls_same(v: CallVariant, callable: *mut ffi::PyObject) -> bool {
    match v {
        CallVariant::PyFunction { func, code, .. } => {
            let is_function = match func.is_null() {
                true => ffi::PyFunction_Check(callable) != 0,
                false => callable == func,
            };
            is_function && (*(callable as *mut ffi::PyFunctionObject)).func_code == code
        }
        CallVariant::Tiered {
            callable: wrapper, ..
        } => callable == wrapper,
        CallVariant::Builtin { .. }
        | CallVariant::BoundBuiltin { .. }
        | CallVariant::Class { .. }
        | CallVariant::Poly(_) => false,
    }
}

/// How entry `v` fits a call of `callable` with the `nargs` positional arguments `args`.
///
/// # Safety
/// GIL held; `args` holds `nargs` live objects.
unsafe fn fit(
    v: CallVariant,
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
) -> Fit {
    if let CallVariant::Class { cls, compiled, .. } = v {
        // The key of `__init__(self, *args)` for an instance of `cls`.
        let key = compiled.as_ref().and_then(|c| c.type_key);
        let tp = cls as *mut ffi::PyTypeObject;
        return match key {
            _ if callable != cls => Fit::No,
            Some(k) if k != crate::runtime::TypeKey::with_self(tp, args, nargs) => Fit::Callable,
            _ => Fit::Exact,
        };
    }
    let compiled = match v {
        CallVariant::PyFunction { compiled, .. } | CallVariant::Tiered { compiled, .. } => compiled,
        CallVariant::Builtin { .. }
        | CallVariant::BoundBuiltin { .. }
        | CallVariant::Class { .. }
        | CallVariant::Poly(_) => std::ptr::null(),
    };
    // SAFETY: specializations live in the registry for the process's life.
    let key = compiled.as_ref().and_then(|c| c.type_key);
    match (calls_same(v, callable), key) {
        (false, _) => Fit::No,
        (true, Some(k)) if !k.matches(args, nargs) => Fit::Callable,
        (true, _) => Fit::Exact,
    }
}

/// A Python-function or class Call site (PyFunction, Tiered, Class or Poly) widened for a
/// call that no entry fits exactly: another `@tiered` function, or argument types another
/// specialization of one (or of a class's `__init__`) is for (`t.runTask()` over four
/// task classes). `None` when it does not widen: an entry fits, the site is full
/// (`POLY_MAX`: it keeps calling through the entry of its callable, or misses), or the
/// new callee is neither `@tiered` nor a class the site has seen.
///
/// # Safety
/// GIL held; `ptrs` as for `call`.
unsafe fn widen_call(
    ctx: &Ctx,
    v: CallVariant,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> Option<CallVariant> {
    let seen: &[CallVariant] = match &v {
        CallVariant::Poly(es) => es,
        _ if v.widens() => std::slice::from_ref(&v),
        _ => return None,
    };
    let c = shape(ctx, kwnames, ptrs);
    let nargs = ffi::PyVectorcall_NARGS(c.nargsf) as usize;
    let fits = |e: &CallVariant| fit(*e, c.callable, c.args, nargs) == Fit::Exact;
    if seen.iter().any(fits) || seen.len() >= crate::quick::POLY_MAX {
        return None;
    }
    // A bound method would be unpacked in `ptrs` by observing it: no entry takes one.
    if ptrs[0].is_null() && crate::cpy::bound_method_parts(ptrs[1]).is_some() {
        return None;
    }
    // Only a `@tiered` callee, or a class the site instantiates already with arguments of
    // other types, can become an entry (below): anything else is not observed at all,
    // which would look its specialization up in the registry at every call that misses
    // (deepcopy's `y = copier(x, memo)`: 12% of its instructions).
    let same_class = seen
        .iter()
        .any(|e| matches!(e, CallVariant::Class { cls, .. } if *cls == c.callable));
    if !same_class {
        crate::runtime::entry_of_wrapper(c.callable)?;
    }
    let new = observe_call(ctx, kwnames, ptrs)?;
    // Entries are `@tiered` functions (whose wrappers make a specialization per argument
    // types anyway). A plain function stays out, another one or the same with other
    // types: the site misses and settles generic, or runs the specialization it has, as
    // before CallPoly. Measured with plain library callees as entries too:
    // pickle_pure_python 1.17x -> 1.59x and deepcopy 1.42x -> 1.57x, as the callees (pickle's
    // `save_*`, copy's `_deepcopy_*`) left CPython's loop for ours, where some of their
    // ops have no template; with only new specializations of callees already there, still
    // 1.34x and 1.53x, as `save(obj)` and `deepcopy(x)` split into a specialization per
    // argument type, each compiled and each longer in tier 1. The gains were all at sites
    // of decorated methods (richards, deltablue).
    // A class the site has seen takes another entry for other argument types (raytrace's
    // `Vector(x, y, z)` of ints, then of floats, which missed the direct call's type
    // guards at every call), not another class: classes made per call would each make
    // an entry and a specialization of their `__init__`.
    let known = match new {
        CallVariant::Tiered { .. } => true,
        CallVariant::Class { .. } => same_class,
        _ => false,
    };
    if !known || !fits(&new) {
        return None;
    }
    let mut all = seen.to_vec();
    all.push(new);
    // Leaked: at most POLY_MAX - 1 widenings per site between its returns to generic
    // (bounded by the flip limit), and compiled code refers to the entries by address.
    Some(CallVariant::Poly(Box::leak(all.into_boxed_slice())))
}

/// The variant a quickened Call site `q` runs this call with: its own, or its own widened
/// for a call no entry fits exactly (`widen_call`), which becomes the site's.
///
/// # Safety
/// GIL held; `ptrs` as for `call`.
#[inline]
pub unsafe fn quick_variant(
    ctx: &Ctx,
    q: &crate::quick::QuickCell,
    v: CallVariant,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> CallVariant {
    if !ctx.tuning.quicken || !v.widens() {
        return v;
    }
    match widen_call(ctx, v, kwnames, ptrs) {
        Some(w) => {
            q.specialize(Quick::Call(w));
            w
        }
        None => v,
    }
}

/// The quickened Call (`None` when the callable is not the one specialized on).
///
/// # Safety
/// GIL held; `ptrs` as for `call`.
#[inline]
pub unsafe fn call_quick(
    ctx: &Ctx,
    v: CallVariant,
    kwnames: KwNames,
    ptrs: &mut [*mut ffi::PyObject],
) -> Option<PyResult<Value>> {
    if let CallVariant::PyFunction { bound: true, .. } = v {
        if !unpack_bound_method(ptrs) {
            return None;
        }
    }
    let c = shape(ctx, kwnames, ptrs);
    let r = match v {
        CallVariant::Poly(es) => {
            // The entry made for these types, else one of the callable (`Fit`).
            let nargs = ffi::PyVectorcall_NARGS(c.nargsf) as usize;
            let mut by_callable = None;
            for &e in es {
                match fit(e, c.callable, c.args, nargs) {
                    Fit::Exact => return call_quick(ctx, e, kwnames, ptrs),
                    Fit::Callable => by_callable = by_callable.or(Some(e)),
                    Fit::No => {}
                }
            }
            return call_quick(ctx, by_callable?, kwnames, ptrs);
        }
        CallVariant::PyFunction { compiled, .. } => {
            if !calls_same(v, c.callable) || ctx.tstate.tracing() {
                return None;
            }
            // Callees entered from tiered code tier up as their caller does.
            match crate::runtime::call_compiled(
                &*compiled, c.callable, c.args, c.nargsf, c.kwnames, ctx.tuning, ctx.tstate,
            ) {
                crate::runtime::CallOutcome::Ran(r, _)
                | crate::runtime::CallOutcome::CpythonRan(r) => r,
            }
        }
        CallVariant::Builtin { .. } | CallVariant::BoundBuiltin { .. } => {
            builtin::call_quick(v.builtin_guard()?, c.callable, c.args, c.nargsf, c.kwnames)?
        }
        CallVariant::Class { .. } => class::call_quick(ctx, &c, v)?,
        CallVariant::Tiered { callable, .. } => {
            if !calls_same(v, c.callable) {
                return None;
            }
            crate::runtime::entry_of_wrapper(callable)?
                .call(callable, ctx.tstate, c.args, c.nargsf, c.kwnames)
        }
    };
    Some(Value::from_owned(r))
}

/// CallEx: `f(*args, **kwargs)`, with CALL_FUNCTION_EX's conversion of `args` and its
/// error for a non-iterable.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn call_ex(func: &Value, args: &Value, kwargs: Option<&Value>) -> PyResult<Value> {
    let f = func.as_ptr();
    let a = args.as_ptr();
    let tuple = if ffi::PyTuple_CheckExact(a) != 0 {
        ffi::Py_INCREF(a);
        Owned::new(a)?
    } else {
        if (*ffi::Py_TYPE(a)).tp_iter.is_none() && ffi::PySequence_Check(a) == 0 {
            return Err(func_error(
                f,
                &format!(
                    "argument after * must be an iterable, not {}",
                    super::type_name(a)
                ),
            ));
        }
        Owned::new(ffi::PySequence_Tuple(a))?
    };
    let kw = match kwargs {
        Some(k) if ffi::PyDict_CheckExact(k.as_ptr()) == 0 => {
            let d = Owned::new(ffi::PyDict_New())?;
            if crate::cpy::_PyDict_MergeEx(d.ptr(), k.as_ptr(), 2) < 0 {
                super::build::format_kwargs_error(f, k.as_ptr());
                return Err(Raised);
            }
            Some(d)
        }
        Some(k) => {
            ffi::Py_INCREF(k.as_ptr());
            Some(Owned::new(k.as_ptr())?)
        }
        None => None,
    };
    let kwp = kw.as_ref().map(|k| k.ptr()).unwrap_or(std::ptr::null_mut());
    Value::from_owned(ffi::PyObject_Call(f, tuple.ptr(), kwp))
}

/// The native template of CallEx for a Python function called with an exact tuple (and
/// an exact dict, for `**kwargs`): `PyObject_Call` directly, as `call_ex` ends up calling
/// it (a function never reads its caller's locals the way `locals()` and `vars()` do:
/// `reads_frame`). Any other callable or argument type takes the generic op, which
/// converts them with CALL_FUNCTION_EX's checks and messages. (`_reconstruct(x, memo,
/// *rv)` in `copy.deepcopy`: 131K a run through the tier-1 helper, with the ListExtend
/// and ListToTuple that build its tuple.)
pub(crate) fn emit_call_ex(e: &mut Emit, pc: usize, kwargs: bool) -> Option<&'static str> {
    let objs = e.operand_objects(pc);
    let slow = e.slow_block();
    e.guard_type(objs[0], std::ptr::addr_of_mut!(ffi::PyFunction_Type), slow);
    e.guard_type(objs[1], std::ptr::addr_of_mut!(ffi::PyTuple_Type), slow);
    let kw = match kwargs {
        true => {
            e.guard_type(objs[2], std::ptr::addr_of_mut!(ffi::PyDict_Type), slow);
            objs[2]
        }
        false => e.b.ins().iconst(e.ptr, 0),
    };
    let call = ffi::PyObject_Call as *const () as usize;
    e.call_for_result(pc, call, &[objs[0], objs[1], kw]);
    Some("CallEx")
}

/// Raises TypeError "`f()` <msg>" the way 3.11's call sites word errors about a callable
/// (`_PyObject_FunctionStr`: qualified name with module for functions).
pub(crate) unsafe fn func_error(f: *mut ffi::PyObject, msg: &str) -> Raised {
    let fstr = crate::cpy::_PyObject_FunctionStr(f);
    if fstr.is_null() {
        return Raised;
    }
    let name = super::str_of(fstr);
    ffi::Py_DECREF(fstr);
    super::raise(ffi::PyExc_TypeError, &format!("{name} {msg}"))
}

/// MakeFunction: a function from (code, then per flags: defaults, kwdefaults, annotations,
/// closure) in this function's globals.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn make_function(ctx: &Ctx, flags: u32, ops: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let code = ops[0];
    if ffi::PyCode_Check(code) == 0 {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: MAKE_FUNCTION of a non-code object",
        ));
    }
    let f = Owned::new(ffi::PyFunction_New(code, ctx.globals))?;
    let fp = f.ptr() as *mut ffi::PyFunctionObject;
    let mut k = 1;
    let mut next = || {
        let o = ops.get(k).copied().unwrap_or(std::ptr::null_mut());
        k += 1;
        o
    };
    let defaults = if flags & 0x01 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    let kwdefaults = if flags & 0x02 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    let annotations = if flags & 0x04 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    let closure = if flags & 0x08 != 0 {
        next()
    } else {
        std::ptr::null_mut()
    };
    // Set the fields directly as MAKE_FUNCTION does (annotations may be a tuple in 3.11,
    // which the setter functions would reject).
    for (field, v) in [
        (&mut (*fp).func_defaults, defaults),
        (&mut (*fp).func_kwdefaults, kwdefaults),
        (&mut (*fp).func_annotations, annotations),
        (&mut (*fp).func_closure, closure),
    ] {
        if !v.is_null() {
            ffi::Py_INCREF(v);
            let old = std::mem::replace(field, v);
            ffi::Py_XDECREF(old);
        }
    }
    Ok(f.into_value())
}

/// The native template of MakeFunction: one call of `helpers::make_function` (a
/// function made in a loop, as a lambda or a nested def, without the tier-1 helper's
/// dispatch).
pub(crate) fn emit_make_function(e: &mut Emit, pc: usize, flags: u32) -> Option<&'static str> {
    let mut args = vec![e.ctx(), e.b.ins().iconst(e.ptr, flags as i64)];
    args.extend(e.operand_objects(pc));
    // The operands past the code (defaults, closure...) as `flags` says; NULL for the rest.
    while args.len() < 2 + 5 {
        args.push(e.b.ins().iconst(e.ptr, 0));
    }
    let helper = crate::native::helpers::make_function as *const () as usize;
    e.call_for_result(pc, helper, &args);
    Some("MakeFunction")
}

/// The native template of a quickened Call: a direct native call when the site qualifies
/// (`direct`), else one helper call that checks the callee and enters it (no generic op
/// dispatch); another callee takes the slow path.
pub(crate) fn emit_call(
    e: &mut Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: Block,
) -> Option<&'static str> {
    let crate::quick::Quick::Call(v) = q else {
        return None;
    };
    let done = e.b.create_block();
    let helper = e.b.create_block();
    let mut is_direct = false;
    // A direct call moves its arguments out at their last use: where the Drop after the
    // call releases some of them, its direct paths go past that Drop, releasing the rest
    // themselves (`continue_moved`), per set of registers moved; only the helper's path
    // (cold) goes through the whole Drop. Each moved register the Drop tested was about
    // 30 bytes of hot code (a third of the registers dropped right after an instruction
    // in richards, deltablue and raytrace were a call's moved arguments).
    let mut past_drop: std::collections::BTreeMap<Vec<u32>, Block> = Default::default();
    if let Some(guard) = v.builtin_guard() {
        builtin::emit(e, pc, guard, helper, done);
    } else {
        // SAFETY: compiling runs with the GIL held; `directs` only reads objects the
        // site's specialization keeps alive.
        let ds = unsafe { directs(e.c, pc) };
        is_direct = !ds.is_empty();
        // Each entry's guards in turn; the last one's failure takes the helper. A
        // polymorphic site's callees are called, not inlined: four bodies at one site
        // doubled richards' `schedule` (33 -> 65 KB) and added 9% to deltablue's compile
        // work, for no steady gain (instructions: richards +2.6%, deltablue -2.9%).
        let may_inline = !matches!(v, CallVariant::Poly(_));
        for (i, d) in ds.iter().enumerate() {
            let next = match i + 1 < ds.len() {
                true => e.b.create_block(),
                false => helper,
            };
            let moved = direct::moved_operands(e, pc, d);
            let to = match moved.is_empty() {
                true => done,
                false => *past_drop.entry(moved).or_insert_with(|| e.b.create_block()),
            };
            direct::emit_direct(e, pc, d, may_inline, next, to);
            if next != helper {
                e.b.switch_to_block(next);
            }
        }
        if !is_direct {
            e.b.ins().jump(helper, &[]);
        }
    }
    // Where the site calls directly (or a builtin's guards held), the helper is the rare
    // path: laid out with the cold blocks, out of the hot path's instruction cache lines.
    let rare = is_direct || v.builtin_guard().is_some();
    let mark = e.cold_mark();
    if rare {
        e.b.set_cold_block(helper);
    }
    e.b.switch_to_block(helper);
    e.call_guarded_helper(pc, crate::native::helpers::call as *const () as usize, fail);
    // No eval breaker check follows a direct call's site (`events::emit_eval_breaker`):
    // a callee run through the helper may have switched a trace or profile hook on.
    if is_direct {
        e.leave_if_hooked(pc + 1);
    }
    e.b.ins().jump(done, &[]);
    if rare {
        e.cold_since(mark);
    }
    for (moved, block) in past_drop {
        e.b.switch_to_block(block);
        e.continue_moved(pc, &moved);
    }
    e.b.switch_to_block(done);
    Some(v.name())
}
