//! Calls and function creation.

mod builtin;

use crate::interp::Ctx;
use crate::lower::LKind;
use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::runtime::Compiled;
use crate::value::tag;
use crate::value::{Owned, PyResult, Raised, Value};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;
use tiered_ir::KwNames;
use tiered_ir::Op;

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
    /// A site that has called several Python functions, or one with arguments of several
    /// types (2 to `POLY_MAX` entries, each PyFunction, not bound, or Tiered, with its own
    /// specialization): native code tries each entry's guards in turn and enters the first
    /// that fits directly, as the single-entry variants do. Before, every call but the
    /// first entry's took the helper's general path (richards: 70% of its calls).
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
            CallVariant::Tiered { .. } | CallVariant::Poly(_) => true,
            CallVariant::Builtin { .. }
            | CallVariant::BoundBuiltin { .. }
            | CallVariant::Class { .. } => false,
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
    let bound = unpack_bound_method(ptrs);
    let c = shape(ctx, kwnames, ptrs);
    if reads_frame(c.callable) {
        return None; // the generic path makes the frame current first
    }
    let nargs = ffi::PyVectorcall_NARGS(c.nargsf) as usize;
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
        observe_class(c.callable, c.args, nargs)?
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
    let (same, compiled) = match v {
        CallVariant::PyFunction {
            func,
            code,
            compiled,
            bound: false,
        } => {
            let is_function = match func.is_null() {
                true => ffi::PyFunction_Check(callable) != 0,
                false => callable == func,
            };
            let same = is_function && (*(callable as *mut ffi::PyFunctionObject)).func_code == code;
            (same, compiled)
        }
        CallVariant::Tiered {
            callable: wrapper,
            compiled,
        } => (callable == wrapper, compiled),
        CallVariant::PyFunction { bound: true, .. }
        | CallVariant::Builtin { .. }
        | CallVariant::BoundBuiltin { .. }
        | CallVariant::Class { .. }
        | CallVariant::Poly(_) => (false, std::ptr::null()),
    };
    // SAFETY: specializations live in the registry for the process's life.
    let key = compiled.as_ref().and_then(|c| c.type_key);
    match (same, key) {
        (false, _) => Fit::No,
        (true, Some(k)) if !k.matches(args, nargs) => Fit::Callable,
        (true, _) => Fit::Exact,
    }
}

/// A Python-function Call site (PyFunction, Tiered or Poly) widened for a call that no
/// entry fits exactly: another `@tiered` function, or argument types another
/// specialization of one is for (`t.runTask()` over four task classes). `None` when it
/// does not widen: an entry fits, the site is full (`POLY_MAX`: it keeps calling through
/// the entry of its callable, or misses), or the new callee is not `@tiered`.
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
    let new = observe_call(ctx, kwnames, ptrs)?;
    // Entries are `@tiered` functions (whose wrappers make a specialization per argument
    // types anyway). A plain function stays out, another one or the same with other
    // types: the site misses and settles generic, or runs the specialization it has, as
    // before CallPoly. Measured with plain library callees as entries too: pickle_pure_
    // python 1.17x -> 1.59x and deepcopy 1.42x -> 1.57x, as the callees (pickle's
    // `save_*`, copy's `_deepcopy_*`) left CPython's loop for ours, where some of their
    // ops have no template; with only new specializations of callees already there, still
    // 1.34x and 1.53x, as `save(obj)` and `deepcopy(x)` split into a specialization per
    // argument type, each compiled and each longer in tier 1. The gains were all at sites
    // of decorated methods (richards, deltablue).
    let known = matches!(new, CallVariant::Tiered { .. });
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

/// The Class variant for calling `cls`, if it is a plain Python class: metaclass
/// `type`, instances from `object.__new__`, not abstract, `__init__` a Python function
/// whose code runs in our tiers, a valid version tag.
///
/// # Safety
/// GIL held; `args` holds `nargs` live objects.
unsafe fn observe_class(
    cls: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
) -> Option<CallVariant> {
    if ffi::Py_TYPE(cls) != std::ptr::addr_of_mut!(ffi::PyType_Type) {
        return None;
    }
    let tp = cls as *mut ffi::PyTypeObject;
    let object_new = (*std::ptr::addr_of_mut!(ffi::PyBaseObject_Type)).tp_new;
    let same_new = match ((*tp).tp_new, object_new) {
        (Some(a), Some(b)) => std::ptr::fn_addr_eq(a, b),
        _ => false,
    };
    if (*tp).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0
        || (*tp).tp_flags & ffi::Py_TPFLAGS_IS_ABSTRACT != 0
        || !same_new
    {
        return None;
    }
    let name = ffi::PyUnicode_InternFromString(c"__init__".as_ptr());
    if name.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    // Looking it up also gives the type a version tag.
    let init = crate::cpy::_PyType_Lookup(tp, name);
    ffi::Py_DECREF(name);
    if init.is_null()
        || (*tp).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0
        || (*tp).tp_version_tag == 0
    {
        return None;
    }
    let code = init_code(init)?;
    let key = crate::runtime::TypeKey::with_self(tp, args, nargs);
    let compiled = match crate::runtime::compiled_for_key(code, key) {
        Ok(c) if c.runnable() => std::rc::Rc::as_ptr(&c),
        Ok(_) => return None,
        Err(_) => {
            ffi::PyErr_Clear();
            return None;
        }
    };
    Some(CallVariant::Class {
        cls,
        version: (*tp).tp_version_tag,
        init,
        code,
        compiled,
    })
}

/// The code an `__init__` runs: a Python function's, or a `@tiered` wrapper's function's
/// (every method of a class decorated, as a user tiers a whole module).
///
/// # Safety
/// GIL held; `init` live.
unsafe fn init_code(init: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    let f = match crate::runtime::entry_of_wrapper(init) {
        Some(entry) => entry.func.ptr(),
        None if ffi::PyFunction_Check(init) != 0 => init,
        None => return None,
    };
    Some((*(f as *mut ffi::PyFunctionObject)).func_code)
}

/// `cls(*args)` for a Class variant (its guards held): `object.__new__(cls)` as
/// type_call makes it, then `__init__(self, *args)` entered in our tiers (the slot
/// before `args` holds `self` meanwhile, as PY_VECTORCALL_ARGUMENTS_OFFSET allows), and
/// slot_tp_init's check that it returned None.
///
/// # Safety
/// GIL held; `c` is a call whose args[-1] may be written.
unsafe fn instantiate(
    ctx: &Ctx,
    c: &CallShape,
    cls: *mut ffi::PyObject,
    init: *mut ffi::PyObject,
    compiled: &Compiled,
) -> *mut ffi::PyObject {
    let tp = cls as *mut ffi::PyTypeObject;
    let Some(new) = (*tp).tp_new else {
        return std::ptr::null_mut();
    };
    // object_new ignores its arguments here (the class defines __init__).
    let empty = ffi::PyTuple_New(0);
    if empty.is_null() {
        return std::ptr::null_mut();
    }
    let obj = new(tp, empty, std::ptr::null_mut());
    ffi::Py_DECREF(empty);
    if obj.is_null() {
        return obj;
    }
    let slot = (c.args as *mut *mut ffi::PyObject).sub(1);
    let saved = std::mem::replace(&mut *slot, obj);
    let nargs = ffi::PyVectorcall_NARGS(c.nargsf) as usize + 1;
    let r = match crate::runtime::entry_of_wrapper(init) {
        // A `@tiered` __init__ as its wrapper runs it (its options, its counters), called
        // with the instance first as CPython's slot_tp_init would bind it.
        Some(entry) => entry.call(init, ctx.tstate, slot, nargs, c.kwnames),
        None => match crate::runtime::call_compiled(
            compiled, init, slot, nargs, c.kwnames, ctx.tuning, ctx.tstate,
        ) {
            crate::runtime::CallOutcome::Ran(r, _) | crate::runtime::CallOutcome::CpythonRan(r) => {
                r
            }
        },
    };
    *slot = saved;
    if r.is_null() {
        ffi::Py_DECREF(obj);
        return r;
    }
    let none = r == ffi::Py_None();
    if !none {
        let msg = format!(
            "__init__() should return None, not '{}'",
            super::type_name(r)
        );
        ffi::Py_DECREF(r);
        ffi::Py_DECREF(obj);
        let m = std::ffi::CString::new(msg).unwrap_or_default();
        ffi::PyErr_SetString(ffi::PyExc_TypeError, m.as_ptr());
        return std::ptr::null_mut();
    }
    ffi::Py_DECREF(r);
    obj
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
        CallVariant::PyFunction {
            func,
            code,
            compiled,
            ..
        } => {
            let same = match func.is_null() {
                true => ffi::PyFunction_Check(c.callable) != 0,
                false => c.callable == func,
            };
            if !same
                || (*(c.callable as *mut ffi::PyFunctionObject)).func_code != code
                || ctx.tstate.tracing()
            {
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
        CallVariant::Class {
            cls,
            version,
            init,
            code,
            compiled,
        } => {
            let tp = cls as *mut ffi::PyTypeObject;
            if c.callable != cls
                || (*tp).tp_version_tag != version
                || init_code(init) != Some(code)
                || ctx.tstate.tracing()
            {
                return None;
            }
            instantiate(ctx, &c, cls, init, &*compiled)
        }
        CallVariant::Tiered { callable, .. } => {
            if c.callable != callable {
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
            emit_direct(e, pc, d, may_inline, next, done);
            if next != helper {
                e.b.switch_to_block(next);
            }
        }
        if !is_direct {
            e.b.ins().jump(helper, &[]);
        }
    }
    e.b.switch_to_block(helper);
    e.call_guarded_helper(pc, crate::native::helpers::call as *const () as usize, fail);
    // No eval breaker check follows a direct call's site (`events::emit_eval_breaker`):
    // a callee run through the helper may have switched a trace or profile hook on.
    if is_direct {
        e.leave_if_hooked(pc + 1);
    }
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(done);
    Some(v.name())
}

/// Registers a callee may have for a direct call (its register file lives in the caller's
/// native frame).
const DIRECT_MAX_REGS: u32 = 128;

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
    /// The callable is a bound method of the function (CallBoundMethod): its `self` is
    /// the first argument, read from the method object (`callable_at` is 1).
    bound: bool,
    /// Where the function's `__defaults__` come from, when some parameters take theirs.
    defaults: Option<Defaults>,
    /// Per argument after the callable (positional ones, then keyword ones): its
    /// parameter (register).
    slots: Vec<u32>,
    /// The parameters no argument gives, each with its place counted back from the end
    /// of `__defaults__`.
    from_defaults: Vec<(u32, usize)>,
    /// The callee's parameters (arguments given, then defaults).
    params: usize,
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
    let bound = matches!(v, CallVariant::PyFunction { bound: true, .. });
    let (callable, func, callee, entry) = match v {
        CallVariant::PyFunction { func, compiled, .. } => {
            let f = (!func.is_null()).then_some(func as *mut ffi::PyFunctionObject);
            (func, f, compiled, None)
        }
        CallVariant::Tiered { callable, compiled } => {
            let entry = crate::runtime::entry_of_wrapper(callable)?;
            let f = entry.func.ptr() as *mut ffi::PyFunctionObject;
            (callable, Some(f), compiled, Some(entry))
        }
        // A class call allocates the instance first: its helper does that. (A polymorphic
        // site's entries are asked one by one: `directs`.)
        CallVariant::Builtin { .. }
        | CallVariant::BoundBuiltin { .. }
        | CallVariant::Class { .. }
        | CallVariant::Poly(_) => return None,
    };
    // SAFETY: specializations live in the registry for the process's life.
    let callee = callee.as_ref()?;
    let nargs = inst.nargs as usize;
    let n = callee.plain_arity?;
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
    // The call's form: a NULL first operand is a plain call, anything else a method call
    // (when the count matches exactly, the guards tell them apart at run time).
    let callable_at = match () {
        _ if bound => 1,
        _ if nkw == 0 && n == nargs - 2 => 1,
        _ if nkw == 0 && n == nargs - 1 => 0,
        _ if super::values::null_registers(c)[ops[0] as usize] => 1,
        _ => 0,
    };
    // A bound method's `self` is the first positional argument, given by no operand.
    let given = (nargs - 1 - callable_at).checked_sub(nkw)? + bound as usize;
    if given > n {
        return None;
    }
    // Each operand argument's parameter: positional ones in order, then each keyword's by
    // name (a positional-only name, an unknown one or one given twice is CPython's
    // TypeError: the ordinary path raises it).
    let mut slots: Vec<u32> = (bound as u32..given as u32).collect();
    let names = &callee.info.local_names;
    let posonly = callee.info.posonlyargcount as usize;
    for k in 0..nkw {
        // Keyword names are identifiers (valid Unicode), so comparing their text with
        // the parameters' (made the same way from `co_varnames`) is exact.
        let name = super::str_of(ffi::PyTuple_GET_ITEM(kw, k as ffi::Py_ssize_t));
        let at = (posonly.max(given)..n)
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
        bound,
        defaults,
        slots,
        from_defaults,
        params: n,
    })
}

/// Bytes of the frame area `c`'s direct calls need (the largest callee's registers, its
/// context, the result and its CPython frame); at least 16.
pub(crate) fn direct_frame_size(c: &Compiled) -> u32 {
    (0..c.linear.insts.len())
        // SAFETY: called while compiling, with the GIL held.
        .flat_map(|pc| unsafe { directs(c, pc) })
        .map(|d| {
            d.callee.linear.nregs * 16
                + std::mem::size_of::<Ctx>() as u32
                + 16
                + crate::activation::BACK_POINTER as u32
                + crate::cpy::frame::frame_size(d.callee.nlocalsplus) as u32
        })
        .max()
        .unwrap_or(0)
        .max(16)
        .next_multiple_of(16)
}

/// Emits a direct native call (see `Direct`), with the callee's code inline where
/// `may_inline` and it is small; any guard that fails before the call goes to `helper`
/// (the ordinary call path or the next entry's guards, not a deopt), and success
/// continues at `done`.
fn emit_direct<'a>(
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
    let bound_self = d.bound.then(|| {
        e.guard_type(p1, crate::cpy::bound_method_type(), helper);
        let (func_at, self_at) = crate::cpy::BOUND_METHOD_PARTS;
        let me = e.b.ins().load(ptr, mem(), p1, self_at);
        p1 = e.b.ins().load(ptr, mem(), p1, func_at);
        me
    });
    let f = match d.func {
        Some(func) => {
            e.guard_eq(p1, d.callable as i64, helper);
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
    let shift = d.bound as usize;
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
    // Native code of the callee right now (0 while cold or after invalidation).
    let slot = e.b.ins().iconst(ptr, d.callee.native_entry.as_ptr() as i64);
    let entry = e.b.ins().load(ptr, mem(), slot, 0);
    let cold = e.b.ins().icmp_imm_s(IntCC::Equal, entry, 0);
    e.fail_if(cold, helper);
    // No tracer or profiler (they see calls in CPython), stack and recursion depth left
    // (the helper path raises RecursionError).
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
    // Committed past this: the recursion level is entered.
    e.enter_checked(ts, limit, helper);
    let nregs = d.callee.linear.nregs;
    let cregs = e.call_frame();
    let cctx = e.b.ins().iadd_imm_s(cregs, (nregs * 16) as i64);
    let null = e.b.ins().iconst(types::I64, tag::NULL as i64);
    // Empty, but for the parameters (moved in next) and what the callee writes first.
    let written_first = super::values::written_first(d.callee);
    for r in d.params as u32..nregs {
        if !written_first[r as usize] {
            e.b.ins().store(mem(), null, cregs, (r * 16) as i32);
        }
    }
    // A bound method's `self`: the callee's own reference, in its first parameter.
    if let Some(me) = bound_self {
        e.incref(me);
        let obj = e.b.ins().iconst(types::I64, tag::OBJ as i64);
        e.b.ins().store(mem(), obj, cregs, 0);
        e.b.ins().store(mem(), me, cregs, 8);
    }
    for ((&r, &last_use), &slot) in ops[first..].iter().zip(&last[first..]).zip(&d.slots) {
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
        let p = match (d.defaults, defaults_end) {
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
    // SAFETY: a function known here is kept alive by the caller's code (it is the
    // callable, or the wrapper's function); its globals and builtins cannot be reassigned.
    // Another function of this code has its own: read from it where needed.
    let dicts = d.func.map(|func| unsafe {
        (
            e.b.ins().iconst(ptr, (*func).func_globals as i64),
            e.b.ins().iconst(ptr, (*func).func_builtins as i64),
        )
    });
    // A `@tiered` callee tiers up by its own options; a plain one inherits its caller's.
    let tuning = match d.entry {
        Some(entry) => e.b.ins().iconst(ptr, &entry.tuning as *const _ as i64),
        None => {
            e.b.ins()
                .load(ptr, mem(), ctx, std::mem::offset_of!(Ctx, tuning) as i32)
        }
    };
    // The result comes back in the Value after the context (empty until then), then the
    // callee's CPython frame (after the word pointing back at the context).
    let out =
        e.b.ins()
            .iadd_imm_s(cctx, std::mem::size_of::<Ctx>() as i64);
    let frame =
        e.b.ins()
            .iadd_imm_s(out, 16 + crate::activation::BACK_POINTER as i64);
    let fill = crate::native::emit::CtxFill {
        compiled: e.b.ins().iconst(ptr, d.callee as *const Compiled as i64),
        func: f,
        dicts,
        tuning,
        thread: (ts, limit),
        frame,
        regs: cregs,
    };
    let inline = may_inline && e.inlinable(d.callee);
    if !inline {
        e.store_ctx(cctx, &fill);
    }
    if let Some(entry) = d.entry {
        let entry = e.b.ins().iconst(ptr, entry as *const _ as i64);
        e.count_native_call(entry);
    }
    e.b.ins().store(mem(), null, out, 0);
    let status = if inline {
        // The callee's code right here: no call, no prologue, no entry dispatch, its
        // context written and its frame pushed only where something reads them; its exits
        // only ever return 0 or 1 (it has no loop to leave for tier 1 from).
        let returned = e.inline_body(d.callee, (cctx, fill), cregs, out, true);
        e.b.switch_to_block(returned);
        e.b.block_params(returned)[0]
    } else {
        // This function's frame is linked (and at this call) before the callee's goes on it.
        e.set_prev_instr();
        let dicts = e.dicts_of(&fill);
        e.push_frame(frame, cctx, ts, d.callee, f, dicts);
        let start = e.b.ins().iconst(types::I32, 0);
        let status = e
            .call_value(
                NATIVE_SIGNATURE_KEY,
                entry,
                &[ptr, ptr, types::I32, ptr],
                Some(types::I64),
                &[cctx, cregs, start, out],
            )
            .expect("returns");
        let status = e.finish_if_left(status, cctx, cregs, out, true);
        e.pop_frame(frame, ts);
        status
    };
    // The recursion level is left, and what the callee's registers still hold is released
    // (with its frame unlinked, as CPython clears a popped frame).
    e.leave_recursion(ts);
    e.release_registers(d.callee, cregs, status);
    e.finish_direct_call(pc, status, out, inst.dst, done);
}

/// Signature key of native entry points (`NativeFn`) among the emitter's call signatures.
const NATIVE_SIGNATURE_KEY: usize = usize::MAX;

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
