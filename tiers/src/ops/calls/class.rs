//! CallClass: `cls(*args)` for a plain Python class, its instance made as `object.__new__`
//! makes it and its `__init__` entered in our tiers (natively, a direct call: `direct`).

use super::{CallShape, CallVariant};
use crate::interp::Ctx;
use crate::value::Value;
use pyo3_ffi as ffi;

/// The Class variant for calling `cls`, if it is a plain Python class: metaclass
/// `type`, instances from `object.__new__`, not abstract, `__init__` a Python function
/// whose code runs in our tiers (and is warm: met `warmup` times, `runtime::warm_enough`),
/// a valid version tag.
///
/// # Safety
/// GIL held; `args` holds `nargs` live objects.
pub(super) unsafe fn observe(
    cls: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    warmup: u64,
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
    if !crate::runtime::warm_enough(code, warmup) {
        return None;
    }
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

/// The function an `__init__` runs: a Python function, or a `@tiered` wrapper's
/// function (every method of a class decorated, as a user tiers a whole module).
///
/// # Safety
/// GIL held; `init` live.
pub(super) unsafe fn init_function(init: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    match crate::runtime::entry_of_wrapper(init) {
        Some(entry) => Some(entry.func.ptr()),
        None if ffi::PyFunction_Check(init) != 0 => Some(init),
        None => None,
    }
}

/// The code an `__init__` runs (`init_function`'s).
///
/// # Safety
/// GIL held; `init` live.
unsafe fn init_code(init: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    init_function(init).map(|f| (*(f as *mut ffi::PyFunctionObject)).func_code)
}

/// The Class variant `v`'s call (`None` when its guards fail): `cls(*args)` as
/// `instantiate` makes it.
///
/// # Safety
/// GIL held; `c` is a call whose args[-1] may be written.
pub(super) unsafe fn call_quick(
    ctx: &Ctx,
    c: &CallShape,
    v: CallVariant,
) -> Option<*mut ffi::PyObject> {
    let CallVariant::Class {
        cls,
        version,
        init,
        code,
        compiled,
    } = v
    else {
        return None;
    };
    let tp = cls as *mut ffi::PyTypeObject;
    if c.callable != cls
        || (*tp).tp_version_tag != version
        || init_code(init) != Some(code)
        || ctx.tstate.tracing()
    {
        return None;
    }
    Some(instantiate(ctx, c, cls, init, &*compiled))
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
    compiled: &crate::runtime::Compiled,
) -> *mut ffi::PyObject {
    let obj = new_instance(cls);
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
    init_returned(r, obj)
}

/// A new instance of `cls` (a Class variant's, its guards held): `object.__new__(cls)`,
/// as type_call makes it (3.11's allocates and then makes the instance's managed dict
/// values, which the attribute caches rely on), or NULL with an exception set. Native code
/// calls it once a direct call of `__init__` is committed.
///
/// # Safety
/// GIL held; `cls` a live type.
pub(crate) unsafe extern "C" fn new_instance(cls: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let tp = cls as *mut ffi::PyTypeObject;
    let Some(new) = (*tp).tp_new else {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tiered: a class without tp_new".as_ptr(),
        );
        return std::ptr::null_mut();
    };
    // object_new ignores its arguments here (the class defines __init__); the empty
    // tuple is a singleton.
    let empty = ffi::PyTuple_New(0);
    if empty.is_null() {
        return empty;
    }
    let obj = new(tp, empty, std::ptr::null_mut());
    ffi::Py_DECREF(empty);
    obj
}

/// What `cls(...)` gives once `__init__` returned `r` (a new reference, or NULL raised)
/// for the new instance `obj` (owned): `obj`, or NULL with slot_tp_init's TypeError when
/// `r` is not None (`obj` released either way it fails).
///
/// # Safety
/// GIL held.
unsafe fn init_returned(r: *mut ffi::PyObject, obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    if r.is_null() {
        ffi::Py_DECREF(obj);
        return r;
    }
    let none = r == ffi::Py_None();
    if !none {
        let msg = format!(
            "__init__() should return None, not '{}'",
            super::super::type_name(r)
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

/// A direct call of `__init__` that did not return None at once (native code checks
/// that): with its status (0 returned, 1 raised, 2 returned with a hook on) and its
/// result in `*out`, makes `*out` the instance `obj` (owned) as `init_returned` says and
/// returns the call's status then (1 when it raised).
///
/// # Safety
/// Called by native code with the GIL held; `out` is the call's result `Value`.
pub(crate) unsafe extern "C" fn finish_init(
    out: *mut Value,
    obj: *mut ffi::PyObject,
    status: i64,
) -> i64 {
    crate::native::helpers::guarded(1, || {
        // Raised: `*out` is empty, and the exception is set.
        let r = std::mem::take(&mut *out).into_ptr();
        let obj = init_returned(r, obj);
        match Value::from_owned(obj) {
            Ok(v) => {
                *out = v;
                status
            }
            Err(_) => 1,
        }
    })
}
