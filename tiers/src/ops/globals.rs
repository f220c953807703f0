//! Module globals and builtins, looked up at every run so rebinding is always seen.

use crate::interp::Ctx;
use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::value::{status, tag, PyResult, Raised, Value};
use cranelift_codegen::ir::{types, Block, InstBuilder};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

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
    let n = super::name_obj(ctx, name)?;
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
    let n = super::name_obj(ctx, name)?;
    status(ffi::PyDict_SetItem(ctx.globals, n, v.as_ptr()))
}

/// DeleteGlobal: `del globals[name]`, NameError if unbound.
///
/// # Safety
/// GIL held.
pub unsafe fn delete_global(ctx: &Ctx, name: NameIdx) -> PyResult<()> {
    let n = super::name_obj(ctx, name)?;
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

/// A LoadGlobal specialized on the versions of the globals and builtins dicts: while neither
/// dict changed, the name still denotes `value` (3.11 dict versions are globally unique and
/// change on every mutation, so a stale cache can never be hit).
#[derive(Clone, Copy, Debug)]
pub struct GlobalCache {
    globals_version: u64,
    builtins_version: u64,
    /// Borrowed: kept alive by the dict that held it, unchanged since.
    value: *mut ffi::PyObject,
}

/// Names of LoadGlobal's variants, for coverage.
pub const GLOBAL_VARIANTS: &[&str] = &["LoadGlobalCached"];

/// 3.11's PyDictObject head, up to its version tag.
#[repr(C)]
struct DictHead {
    ob_base: ffi::PyObject,
    ma_used: ffi::Py_ssize_t,
    ma_version_tag: u64,
}

#[inline]
unsafe fn version(d: *mut ffi::PyObject) -> Option<u64> {
    if ffi::PyDict_CheckExact(d) == 0 {
        return None;
    }
    // SAFETY: an exact dict has 3.11's PyDictObject layout.
    Some((*(d as *const DictHead)).ma_version_tag)
}

/// The cache for a global just loaded generically (exact dicts only).
///
/// # Safety
/// GIL held; `value` was just read from the globals or builtins.
pub unsafe fn observe_global(ctx: &Ctx, value: &Value) -> Option<GlobalCache> {
    Some(GlobalCache {
        globals_version: version(ctx.globals)?,
        builtins_version: version(ctx.builtins)?,
        value: value.as_ptr(),
    })
}

/// The cached LoadGlobal (`None` when either dict changed).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn load_global_quick(ctx: &Ctx, c: GlobalCache) -> Option<Value> {
    if version(ctx.globals)? != c.globals_version || version(ctx.builtins)? != c.builtins_version {
        return None;
    }
    Some(Value::from_borrowed(c.value))
}

/// The native template of a cached LoadGlobal: both dict versions compared with the ones
/// the cache holds at compile time, then the cached object.
pub(crate) fn emit_load_global(
    e: &mut Emit,
    pc: usize,
    q: Quick,
    fail: Block,
) -> Option<&'static str> {
    let Quick::Global(c) = q else { return None };
    let inst = e.c.linear.insts[pc];
    let ctx = e.ctx();
    for (off, version) in [
        (Emit::ctx_offset_globals(), c.globals_version),
        (Emit::ctx_offset_builtins(), c.builtins_version),
    ] {
        let d = e.b.ins().load(e.ptr, mem(), ctx, off);
        // PyDictObject: ma_version_tag at 24.
        let v = e.b.ins().load(types::I64, mem(), d, 24);
        e.guard_eq(v, version as i64, fail);
    }
    let p = e.b.ins().iconst(e.ptr, c.value as i64);
    e.incref(p);
    e.set(inst.dst, tag::OBJ, p);
    Some(GLOBAL_VARIANTS[0])
}
