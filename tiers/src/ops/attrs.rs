//! Attribute access and method lookup.

use crate::interp::Ctx;
use crate::value::{status, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

/// LoadAttr: `o.name`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn load_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyObject_GetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
    ))
}

/// StoreAttr: `o.name = v`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn store_attr(ctx: &Ctx, name: NameIdx, o: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
        v.as_ptr(),
    ))
}

/// DeleteAttr: `del o.name`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn delete_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
        std::ptr::null_mut(),
    ))
}

/// LoadMethod: (unbound method, self) when the type has a plain method, else
/// (NULL, attribute), exactly as LOAD_METHOD pushes them.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn load_method(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<(Value, Value)> {
    let mut meth: *mut ffi::PyObject = std::ptr::null_mut();
    let found = crate::cpy::_PyObject_GetMethod(o.as_ptr(), super::name_obj(ctx, name)?, &mut meth);
    if meth.is_null() {
        return Err(Raised);
    }
    let meth = Value::from_owned(meth)?;
    if found != 0 {
        Ok((meth, o.clone()))
    } else {
        Ok((Value::Null, meth))
    }
}

/// Quickened forms of LoadAttr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrVariant {
    /// An attribute of a plain instance, read from its `__dict__`: its type (checked by
    /// identity and version tag, which changes whenever the class or a base changes) uses
    /// generic attribute lookup and has no class attribute of that name, so nothing but
    /// the instance dict can supply it. A miss takes the generic op (AttributeError).
    InstanceDict {
        /// The type seen (compared by identity).
        tp: *mut ffi::PyTypeObject,
        /// Its version tag then.
        version: std::os::raw::c_uint,
    },
}

/// Names of LoadAttr's variants, for coverage.
pub const ATTR_VARIANTS: &[&str] = &["LoadAttrInstanceDict"];

impl AttrVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            AttrVariant::InstanceDict { .. } => ATTR_VARIANTS[0],
        }
    }
}

extern "C" {
    /// The MRO lookup generic attribute access starts with (borrowed result, no error).
    fn _PyType_Lookup(tp: *mut ffi::PyTypeObject, name: *mut ffi::PyObject) -> *mut ffi::PyObject;
    /// Where an object keeps its `__dict__` (materializing 3.11's inline values if needed).
    fn _PyObject_GetDictPtr(o: *mut ffi::PyObject) -> *mut *mut ffi::PyObject;
}

/// Which LoadAttr variant fits this object, if any.
///
/// # Safety
/// GIL held.
pub unsafe fn observe_load_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> Option<AttrVariant> {
    let p = o.as_ptr();
    if p.is_null() {
        return None;
    }
    let n = super::name_obj(ctx, name).ok()?;
    let tp = ffi::Py_TYPE(p);
    // libpython's exported function has one address, which types store in tp_getattro.
    let generic = ffi::PyObject_GenericGetAttr
        as unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;
    match (*tp).tp_getattro {
        Some(f) if std::ptr::fn_addr_eq(f, generic) => {}
        _ => return None,
    }
    // The lookup also gives the type a version tag if it can have one.
    if !_PyType_Lookup(tp, n).is_null() || (*tp).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0 {
        return None;
    }
    let dp = _PyObject_GetDictPtr(p);
    if dp.is_null() || (*dp).is_null() {
        return None;
    }
    Some(AttrVariant::InstanceDict {
        tp,
        version: (*tp).tp_version_tag,
    })
}

/// The quickened LoadAttr (`None` when the guard fails or the dict lacks the name).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn load_attr_quick(
    ctx: &Ctx,
    name: NameIdx,
    v: AttrVariant,
    o: &Value,
) -> Option<PyResult<Value>> {
    let AttrVariant::InstanceDict { tp, version } = v;
    let p = o.as_ptr();
    if p.is_null()
        || ffi::Py_TYPE(p) != tp
        || (*tp).tp_version_tag != version
        || (*tp).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0
    {
        return None;
    }
    let dp = _PyObject_GetDictPtr(p);
    if dp.is_null() || (*dp).is_null() {
        return None;
    }
    let n = super::name_obj(ctx, name).ok()?;
    let r = ffi::PyDict_GetItemWithError(*dp, n);
    if r.is_null() {
        if ffi::PyErr_Occurred().is_null() {
            return None;
        }
        return Some(Err(Raised));
    }
    Some(Ok(Value::from_borrowed(r)))
}
