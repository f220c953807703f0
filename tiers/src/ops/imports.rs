//! `import` and `from ... import` inside functions.

use crate::interp::Ctx;
use crate::value::{Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

/// ImportName: `builtins.__import__(name, globals, None, fromlist, level)`, as IMPORT_NAME
/// calls it for a function frame (whose locals are None).
///
/// # Safety
/// GIL held.
pub unsafe fn import_name(
    ctx: &Ctx,
    name: NameIdx,
    level: &Value,
    fromlist: &Value,
) -> PyResult<Value> {
    let n = super::name_obj(ctx, name)?;
    let key = Owned::new(ffi::PyUnicode_InternFromString(c"__import__".as_ptr()))?;
    let import = ffi::PyDict_GetItemWithError(ctx.builtins, key.ptr());
    if import.is_null() {
        if ffi::PyErr_Occurred().is_null() {
            super::raise(ffi::PyExc_ImportError, "__import__ not found");
        }
        return Err(Raised);
    }
    let args = [
        n,
        ctx.globals,
        ffi::Py_None(),
        fromlist.as_ptr(),
        level.as_ptr(),
    ];
    Value::from_owned(ffi::PyObject_Vectorcall(
        import,
        args.as_ptr(),
        5,
        std::ptr::null_mut(),
    ))
}

/// ImportFrom: `module.name`, falling back to `sys.modules["pkg.name"]` (circular imports),
/// else ImportError worded as 3.11 words it.
///
/// # Safety
/// GIL held.
pub unsafe fn import_from(ctx: &Ctx, name: NameIdx, module: &Value) -> PyResult<Value> {
    let n = super::name_obj(ctx, name)?;
    let m = module.as_ptr();
    let mut x = std::ptr::null_mut();
    match crate::cpy::_PyObject_LookupAttr(m, n, &mut x) {
        1 => return Value::from_owned(x),
        0 => {}
        _ => return Err(Raised),
    }
    let pkgname = ffi::PyObject_GetAttrString(m, c"__name__".as_ptr());
    let pkgname = if pkgname.is_null() {
        ffi::PyErr_Clear();
        None
    } else if ffi::PyUnicode_Check(pkgname) == 0 {
        ffi::Py_DECREF(pkgname);
        None
    } else {
        Some(Owned::new(pkgname)?)
    };
    if let Some(pkg) = &pkgname {
        let full = Owned::new(ffi::PyUnicode_FromFormat(c"%U.%U".as_ptr(), pkg.ptr(), n))?;
        let found = ffi::PyImport_GetModule(full.ptr());
        if !found.is_null() {
            return Value::from_owned(found);
        }
        if !ffi::PyErr_Occurred().is_null() {
            return Err(Raised);
        }
    }
    let pkg_or_unknown = match &pkgname {
        Some(p) => {
            ffi::Py_INCREF(p.ptr());
            Owned::new(p.ptr())?
        }
        None => Owned::new(ffi::PyUnicode_FromString(c"<unknown module name>".as_ptr()))?,
    };
    let pkgname_ptr = pkgname
        .as_ref()
        .map(|p| p.ptr())
        .unwrap_or(std::ptr::null_mut());
    let path = ffi::PyModule_GetFilenameObject(m);
    if path.is_null() || ffi::PyUnicode_Check(path) == 0 {
        ffi::PyErr_Clear();
        ffi::Py_XDECREF(path);
        let msg = Owned::new(ffi::PyUnicode_FromFormat(
            c"cannot import name %R from %R (unknown location)".as_ptr(),
            n,
            pkg_or_unknown.ptr(),
        ))?;
        crate::cpy::PyErr_SetImportError(msg.ptr(), pkgname_ptr, std::ptr::null_mut());
        return Err(Raised);
    }
    let path = Owned::new(path)?;
    let spec = ffi::PyObject_GetAttrString(m, c"__spec__".as_ptr());
    let initializing = if spec.is_null() {
        ffi::PyErr_Clear();
        false
    } else {
        let init = ffi::PyObject_GetAttrString(spec, c"_initializing".as_ptr());
        ffi::Py_DECREF(spec);
        if init.is_null() {
            ffi::PyErr_Clear();
            false
        } else {
            let t = ffi::PyObject_IsTrue(init);
            ffi::Py_DECREF(init);
            if t < 0 {
                ffi::PyErr_Clear();
            }
            t > 0
        }
    };
    let fmt = if initializing {
        c"cannot import name %R from partially initialized module %R (most likely due to a circular import) (%S)"
    } else {
        c"cannot import name %R from %R (%S)"
    };
    let msg = Owned::new(ffi::PyUnicode_FromFormat(
        fmt.as_ptr(),
        n,
        pkg_or_unknown.ptr(),
        path.ptr(),
    ))?;
    crate::cpy::PyErr_SetImportError(msg.ptr(), pkgname_ptr, path.ptr());
    Err(Raised)
}
