//! Module globals and builtins, looked up at every run so rebinding is always seen.

use crate::interp::Ctx;
use crate::value::{status, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

unsafe fn name_obj(ctx: &Ctx, name: NameIdx) -> PyResult<*mut ffi::PyObject> {
    ctx.compiled
        .objects
        .names
        .get(name.0 as usize)
        .copied()
        .ok_or_else(|| super::raise(ffi::PyExc_SystemError, "tiered: name index out of range"))
}

/// Looks `key` up in a mapping: `Ok(None)` when missing (KeyError swallowed).
unsafe fn lookup(map: *mut ffi::PyObject, key: *mut ffi::PyObject) -> PyResult<Option<Value>> {
    if ffi::PyDict_CheckExact(map) != 0 {
        let v = ffi::PyDict_GetItemWithError(map, key);
        if v.is_null() {
            return if ffi::PyErr_Occurred().is_null() {
                Ok(None)
            } else {
                Err(Raised)
            };
        }
        return Ok(Some(Value::from_borrowed(v)));
    }
    let v = ffi::PyObject_GetItem(map, key);
    if v.is_null() {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError) != 0 {
            ffi::PyErr_Clear();
            return Ok(None);
        }
        return Err(Raised);
    }
    Ok(Some(Value::from_owned(v)?))
}

/// Raises NameError for `name`, with `.name` set as 3.11 does (for suggestions).
unsafe fn name_error(name: *mut ffi::PyObject) -> Raised {
    let text = super::str_of(name);
    super::raise(
        ffi::PyExc_NameError,
        &format!("name '{text}' is not defined"),
    );
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
    if !v.is_null() && ffi::PyObject_SetAttrString(v, c"name".as_ptr(), name) < 0 {
        ffi::PyErr_Clear();
    }
    ffi::PyErr_Restore(t, v, tb);
    Raised
}

/// LoadGlobal: globals, then builtins, else NameError.
///
/// # Safety
/// GIL held.
pub unsafe fn load_global(ctx: &Ctx, name: NameIdx) -> PyResult<Value> {
    let n = name_obj(ctx, name)?;
    if let Some(v) = lookup(ctx.globals, n)? {
        return Ok(v);
    }
    if let Some(v) = lookup(ctx.builtins, n)? {
        return Ok(v);
    }
    Err(name_error(n))
}

/// StoreGlobal: `globals[name] = v`.
///
/// # Safety
/// GIL held.
pub unsafe fn store_global(ctx: &Ctx, name: NameIdx, v: &Value) -> PyResult<()> {
    let n = name_obj(ctx, name)?;
    status(ffi::PyDict_SetItem(ctx.globals, n, v.as_ptr()))
}

/// DeleteGlobal: `del globals[name]`, NameError if unbound.
///
/// # Safety
/// GIL held.
pub unsafe fn delete_global(ctx: &Ctx, name: NameIdx) -> PyResult<()> {
    let n = name_obj(ctx, name)?;
    if ffi::PyDict_DelItem(ctx.globals, n) < 0 {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError) != 0 {
            ffi::PyErr_Clear();
            return Err(name_error(n));
        }
        return Err(Raised);
    }
    Ok(())
}

/// LoadBuildClass: `builtins.__build_class__`.
///
/// # Safety
/// GIL held.
pub unsafe fn load_build_class(ctx: &Ctx) -> PyResult<Value> {
    let key = ffi::PyUnicode_InternFromString(c"__build_class__".as_ptr());
    let key = crate::value::Owned::new(key)?;
    match lookup(ctx.builtins, key.ptr())? {
        Some(v) => Ok(v),
        None => Err(super::raise(
            ffi::PyExc_NameError,
            "__build_class__ not found",
        )),
    }
}
