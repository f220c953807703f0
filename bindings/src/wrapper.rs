//! The `TieredFunction` type: what `@tiered` returns. Built with `PyType_FromSpec` so it can
//! use CPython's vectorcall protocol (a pyo3 pyclass would go through tp_call and an args
//! tuple, ~2.5x the call cost), bind as a method, and carry a `__dict__` for
//! `functools.update_wrapper`.

use pyo3_ffi as ffi;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use tiered_tiers::runtime::Entry;
use tiered_tiers::value::Owned;

/// The instance layout.
#[repr(C)]
pub struct TieredObject {
    ob_base: ffi::PyObject,
    vectorcall: Option<ffi::vectorcallfunc>,
    dict: *mut ffi::PyObject,
    weaklist: *mut ffi::PyObject,
    entry: *mut Entry,
}

extern "C" {
    /// A bound method (not in pyo3-ffi).
    fn PyMethod_New(func: *mut ffi::PyObject, self_: *mut ffi::PyObject) -> *mut ffi::PyObject;
    /// `staticmethod(f)`.
    fn PyStaticMethod_New(f: *mut ffi::PyObject) -> *mut ffi::PyObject;
    /// `classmethod(f)`.
    fn PyClassMethod_New(f: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

static mut TYPE: *mut ffi::PyObject = null_mut();

/// The type object (created by `create_type` at module init).
pub fn type_object() -> *mut ffi::PyObject {
    // SAFETY: written once at module init under the GIL, read-only afterwards.
    unsafe { TYPE }
}

/// The wrapped function's entry, if `o` is a TieredFunction.
///
/// # Safety
/// GIL held; `o` live.
pub unsafe fn entry_of<'a>(o: *mut ffi::PyObject) -> Option<&'a Entry> {
    if ffi::PyObject_TypeCheck(o, type_object() as *mut ffi::PyTypeObject) == 0 {
        return None;
    }
    let e = (*(o as *mut TieredObject)).entry;
    if e.is_null() {
        None
    } else {
        Some(&*e)
    }
}

/// Whether calls of wrapper `o` from CPython currently enter a native trampoline directly
/// (its vectorcall slot points at one, see `tiered_tiers::native::trampoline`).
///
/// # Safety
/// GIL held; `o` is a live TieredFunction.
pub unsafe fn native_entry_installed(o: *mut ffi::PyObject) -> bool {
    let slot = (*(o as *mut TieredObject)).vectorcall;
    slot.map_or(0, |f| f as usize) != vectorcall as *const () as usize
}

/// A new TieredFunction around `func` (a Python function).
///
/// # Safety
/// GIL held; `func` is a function object.
pub unsafe fn new_wrapper(
    func: *mut ffi::PyObject,
    strict: bool,
    tuning: tiered_tiers::runtime::Tuning,
) -> *mut ffi::PyObject {
    let tp = type_object() as *mut ffi::PyTypeObject;
    let alloc = match (*tp).tp_alloc {
        Some(a) => a,
        None => return null_mut(),
    };
    let o = alloc(tp, 0);
    if o.is_null() {
        return null_mut();
    }
    ffi::Py_INCREF(func);
    let Ok(f) = Owned::new(func) else {
        return null_mut();
    };
    let t = o as *mut TieredObject;
    (*t).vectorcall = Some(vectorcall);
    (*t).entry = Box::into_raw(Box::new(Entry::new(f, strict, tuning)));
    o
}

unsafe extern "C" fn vectorcall(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let e = (*(callable as *mut TieredObject)).entry;
    if e.is_null() {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tiered: uninitialized TieredFunction".as_ptr(),
        );
        return null_mut();
    }
    // Panics never cross into Python: they become SystemError.
    match catch_unwind(AssertUnwindSafe(|| {
        (*e).call(
            callable,
            tiered_tiers::cpy::ThreadState::current(),
            args,
            nargsf,
            kwnames,
        )
    })) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let m =
                std::ffi::CString::new(format!("tiered: internal error: {msg}").replace('\0', "?"))
                    .unwrap_or_default();
            ffi::PyErr_SetString(ffi::PyExc_SystemError, m.as_ptr());
            null_mut()
        }
    }
}

unsafe extern "C" fn dealloc(o: *mut ffi::PyObject) {
    let tp = ffi::Py_TYPE(o);
    ffi::PyObject_GC_UnTrack(o as *mut c_void);
    let t = o as *mut TieredObject;
    if !(*t).weaklist.is_null() {
        ffi::PyObject_ClearWeakRefs(o);
    }
    clear(o);
    let e = std::mem::replace(&mut (*t).entry, null_mut());
    if !e.is_null() {
        drop(Box::from_raw(e));
    }
    if let Some(free) = (*tp).tp_free {
        free(o as *mut c_void);
    }
    // Instances of heap types own a reference to their type.
    ffi::Py_DECREF(tp as *mut ffi::PyObject);
}

unsafe extern "C" fn traverse(
    o: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    let t = o as *mut TieredObject;
    if !(*t).dict.is_null() {
        let r = visit((*t).dict, arg);
        if r != 0 {
            return r;
        }
    }
    if !(*t).entry.is_null() {
        let r = visit((*(*t).entry).func.ptr(), arg);
        if r != 0 {
            return r;
        }
    }
    // Heap types must visit their type.
    visit(ffi::Py_TYPE(o) as *mut ffi::PyObject, arg)
}

unsafe extern "C" fn clear(o: *mut ffi::PyObject) -> c_int {
    let t = o as *mut TieredObject;
    let d = std::mem::replace(&mut (*t).dict, null_mut());
    ffi::Py_XDECREF(d);
    0
}

unsafe extern "C" fn descr_get(
    this: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    _tp: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if obj.is_null() || obj == ffi::Py_None() {
        ffi::Py_INCREF(this);
        return this;
    }
    PyMethod_New(this, obj)
}

unsafe extern "C" fn repr(o: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let q = ffi::PyObject_GetAttrString(o, c"__qualname__".as_ptr());
    if q.is_null() {
        return null_mut();
    }
    let r = ffi::PyUnicode_FromFormat(c"<tiered function %S at %p>".as_ptr(), q, o);
    ffi::Py_DECREF(q);
    r
}

/// `__set_name__(owner, name)`: CPython's class creation turns a plain function named
/// `__new__` into a staticmethod and one named `__init_subclass__` or `__class_getitem__`
/// into a classmethod (type_new_set_attrs), but tests for the exact function type, which a
/// wrapper is not. Called right after (type_new_set_names, before the parent's
/// `__init_subclass__` runs), this does the same for a wrapper bound under those names.
unsafe extern "C" fn set_name(
    this: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    if nargs != 2 {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"__set_name__() takes exactly 2 arguments (owner, name)".as_ptr(),
        );
        return null_mut();
    }
    let (owner, name) = (*args, *args.add(1));
    if ffi::PyType_Check(owner) != 0 && ffi::PyUnicode_Check(name) != 0 {
        let make: Option<unsafe extern "C" fn(*mut ffi::PyObject) -> *mut ffi::PyObject> =
            if ffi::PyUnicode_CompareWithASCIIString(name, c"__new__".as_ptr()) == 0 {
                Some(PyStaticMethod_New)
            } else if ffi::PyUnicode_CompareWithASCIIString(name, c"__init_subclass__".as_ptr())
                == 0
                || ffi::PyUnicode_CompareWithASCIIString(name, c"__class_getitem__".as_ptr()) == 0
            {
                Some(PyClassMethod_New)
            } else {
                None
            };
        let dict = (*(owner as *mut ffi::PyTypeObject)).tp_dict;
        // Only the class's own binding (a wrapper also bound under another name, or
        // reached through a base, stays as it is, as a function would).
        if let Some(make) =
            make.filter(|_| !dict.is_null() && ffi::PyDict_GetItemWithError(dict, name) == this)
        {
            let wrapped = make(this);
            if wrapped.is_null() {
                return null_mut();
            }
            let r = ffi::PyObject_SetAttr(owner, name, wrapped);
            ffi::Py_DECREF(wrapped);
            if r < 0 {
                return null_mut();
            }
        }
        if !ffi::PyErr_Occurred().is_null() {
            return null_mut();
        }
    }
    ffi::Py_INCREF(ffi::Py_None());
    ffi::Py_None()
}

/// `__reduce__`: pickle by reference, as functions are.
unsafe extern "C" fn reduce(o: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi::PyObject_GetAttrString(o, c"__qualname__".as_ptr())
}

macro_rules! forward_attr {
    ($get:ident, $set:ident, $name:literal) => {
        unsafe extern "C" fn $get(o: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
            match entry_of(o) {
                Some(e) => ffi::PyObject_GetAttrString(e.func.ptr(), $name.as_ptr()),
                None => null_mut(),
            }
        }
        unsafe extern "C" fn $set(
            o: *mut ffi::PyObject,
            v: *mut ffi::PyObject,
            _: *mut c_void,
        ) -> c_int {
            match entry_of(o) {
                Some(e) => ffi::PyObject_SetAttrString(e.func.ptr(), $name.as_ptr(), v),
                None => -1,
            }
        }
    };
}
forward_attr!(get_defaults, set_defaults, c"__defaults__");
forward_attr!(get_kwdefaults, set_kwdefaults, c"__kwdefaults__");
forward_attr!(get_code, set_code, c"__code__");
forward_attr!(get_globals, set_globals, c"__globals__");
forward_attr!(get_closure, set_closure, c"__closure__");
forward_attr!(get_annotations, set_annotations, c"__annotations__");
forward_attr!(get_builtins, set_builtins, c"__builtins__");

/// `__class__`: `types.FunctionType`, so `isinstance(w, types.FunctionType)` and
/// `inspect.isfunction(w)` answer as for the function it wraps (`isinstance` falls back to
/// `__class__` when the type itself is not a subclass; `type(w)` is still ours).
unsafe extern "C" fn get_class(_: *mut ffi::PyObject, _: *mut c_void) -> *mut ffi::PyObject {
    let t = std::ptr::addr_of_mut!(ffi::PyFunction_Type) as *mut ffi::PyObject;
    ffi::Py_INCREF(t);
    t
}

/// Creates the type; call once at module init.
///
/// # Safety
/// GIL held.
pub unsafe fn create_type() -> *mut ffi::PyObject {
    let getsets: &'static mut [ffi::PyGetSetDef] = Box::leak(Box::new([
        getset(c"__defaults__", get_defaults, Some(set_defaults)),
        getset(c"__kwdefaults__", get_kwdefaults, Some(set_kwdefaults)),
        getset(c"__code__", get_code, Some(set_code)),
        getset(c"__globals__", get_globals, None),
        getset(c"__closure__", get_closure, None),
        getset(c"__annotations__", get_annotations, Some(set_annotations)),
        getset(c"__builtins__", get_builtins, None),
        getset(c"__class__", get_class, None),
        ffi::PyGetSetDef {
            name: c"__dict__".as_ptr(),
            get: Some(ffi::PyObject_GenericGetDict),
            set: Some(ffi::PyObject_GenericSetDict),
            doc: null_mut(),
            closure: null_mut(),
        },
        ffi::PyGetSetDef {
            name: std::ptr::null(),
            get: None,
            set: None,
            doc: std::ptr::null(),
            closure: null_mut(),
        },
    ]));
    let _ = (set_globals, set_closure, set_builtins);
    let members: &'static mut [ffi::PyMemberDef] = Box::leak(Box::new([
        member(
            c"__vectorcalloffset__",
            std::mem::offset_of!(TieredObject, vectorcall),
        ),
        member(c"__dictoffset__", std::mem::offset_of!(TieredObject, dict)),
        member(
            c"__weaklistoffset__",
            std::mem::offset_of!(TieredObject, weaklist),
        ),
        ffi::PyMemberDef {
            name: std::ptr::null(),
            type_code: 0,
            offset: 0,
            flags: 0,
            doc: std::ptr::null(),
        },
    ]));
    let methods: &'static mut [ffi::PyMethodDef] = Box::leak(Box::new([
        ffi::PyMethodDef {
            ml_name: c"__reduce__".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: reduce,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: c"Pickle by reference (module and qualified name), as functions pickle."
                .as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"__set_name__".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFast: set_name,
            },
            ml_flags: ffi::METH_FASTCALL,
            ml_doc: c"Makes __new__ a staticmethod and __init_subclass__ and __class_getitem__ classmethods, as class creation does for functions."
                .as_ptr(),
        },
        ffi::PyMethodDef::zeroed(),
    ]));
    let slots: &'static mut [ffi::PyType_Slot] = Box::leak(Box::new([
        slot(ffi::Py_tp_dealloc, dealloc as *mut c_void),
        slot(ffi::Py_tp_traverse, traverse as *mut c_void),
        slot(ffi::Py_tp_clear, clear as *mut c_void),
        slot(ffi::Py_tp_call, ffi::PyVectorcall_Call as *mut c_void),
        slot(ffi::Py_tp_descr_get, descr_get as *mut c_void),
        slot(ffi::Py_tp_repr, repr as *mut c_void),
        slot(ffi::Py_tp_getset, getsets.as_mut_ptr() as *mut c_void),
        slot(ffi::Py_tp_members, members.as_mut_ptr() as *mut c_void),
        slot(ffi::Py_tp_methods, methods.as_mut_ptr() as *mut c_void),
        slot(
            ffi::Py_tp_doc,
            c"A function compiled by tiered: called like the function it wraps.".as_ptr()
                as *mut c_void,
        ),
        slot(0, null_mut()),
    ]));
    let spec: &'static mut ffi::PyType_Spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: c"tiered.TieredFunction".as_ptr(),
        basicsize: std::mem::size_of::<TieredObject>() as c_int,
        itemsize: 0,
        // METHOD_DESCRIPTOR: `obj.f(...)` may call `f(obj, ...)` without a bound method,
        // which is exactly what binding would do.
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_HAVE_GC
            | ffi::Py_TPFLAGS_HAVE_VECTORCALL
            | ffi::Py_TPFLAGS_METHOD_DESCRIPTOR) as _,
        slots: slots.as_mut_ptr(),
    }));
    let t = ffi::PyType_FromSpec(spec);
    TYPE = t;
    if !t.is_null() {
        tiered_tiers::runtime::register_wrapper_type(tiered_tiers::runtime::WrapperAbi {
            tp: t as usize,
            entry_offset: std::mem::offset_of!(TieredObject, entry) as i32,
            slot_offset: std::mem::offset_of!(TieredObject, vectorcall) as i32,
            generic: vectorcall as *const () as usize,
        });
    }
    t
}

fn slot(id: c_int, p: *mut c_void) -> ffi::PyType_Slot {
    ffi::PyType_Slot { slot: id, pfunc: p }
}

fn member(name: &'static std::ffi::CStr, offset: usize) -> ffi::PyMemberDef {
    ffi::PyMemberDef {
        name: name.as_ptr(),
        type_code: ffi::Py_T_PYSSIZET,
        offset: offset as ffi::Py_ssize_t,
        flags: ffi::Py_READONLY,
        doc: std::ptr::null(),
    }
}

type Getter = unsafe extern "C" fn(*mut ffi::PyObject, *mut c_void) -> *mut ffi::PyObject;
type Setter = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject, *mut c_void) -> c_int;

fn getset(name: &'static std::ffi::CStr, get: Getter, set: Option<Setter>) -> ffi::PyGetSetDef {
    ffi::PyGetSetDef {
        name: name.as_ptr(),
        get: Some(get),
        set,
        doc: std::ptr::null(),
        closure: null_mut(),
    }
}
