//! Reads a live 3.11 code object into the frontend's plain `CodeInfo`, keeping the Python
//! objects (constants, names) the interpreter needs beside it.

use crate::value::{Owned, PyResult, Raised};
use pyo3_ffi as ffi;
use std::ffi::CString;
use tiered_frontend::lines::LineTable;
use tiered_frontend::CodeInfo;
use tiered_ir::ConstRepr;

/// Python objects of a code object, owned for as long as the compiled form lives.
pub struct CodeObjects {
    /// The code object itself.
    pub code: Owned,
    /// `co_consts` items (borrowed from the tuple `consts_tuple` keeps alive).
    pub consts: Vec<*mut ffi::PyObject>,
    consts_tuple: Owned,
    /// `co_names` items (borrowed from `names_tuple`).
    pub names: Vec<*mut ffi::PyObject>,
    names_tuple: Owned,
    /// Locals-plus names, for error messages.
    pub local_names: Vec<Owned>,
    /// `co_name`, for tracebacks.
    pub name: CString,
    /// `co_filename`, for tracebacks.
    pub filename: CString,
    /// `co_firstlineno`.
    pub firstlineno: i32,
}

impl CodeObjects {
    /// The same objects, with references of their own (for another compilation of the
    /// same code: `runtime::specialize`).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn share(&self) -> CodeObjects {
        CodeObjects {
            code: self.code.share(),
            consts: self.consts.clone(),
            consts_tuple: self.consts_tuple.share(),
            names: self.names.clone(),
            names_tuple: self.names_tuple.share(),
            local_names: self.local_names.iter().map(|o| o.share()).collect(),
            name: self.name.clone(),
            filename: self.filename.clone(),
            firstlineno: self.firstlineno,
        }
    }
}

unsafe fn attr(o: *mut ffi::PyObject, name: &str) -> PyResult<Owned> {
    let cname = CString::new(name).map_err(|_| Raised)?;
    // SAFETY: o is a live object; the C string outlives the call.
    Owned::new(ffi::PyObject_GetAttrString(o, cname.as_ptr()))
}

unsafe fn tuple_items(t: &Owned) -> PyResult<Vec<*mut ffi::PyObject>> {
    if ffi::PyTuple_Check(t.ptr()) == 0 {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"code object field is not a tuple".as_ptr(),
        );
        return Err(Raised);
    }
    let n = ffi::PyTuple_GET_SIZE(t.ptr());
    Ok((0..n).map(|i| ffi::PyTuple_GET_ITEM(t.ptr(), i)).collect())
}

unsafe fn rust_str(o: *mut ffi::PyObject) -> PyResult<String> {
    if ffi::PyUnicode_Check(o) == 0 {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"code object name is not a str".as_ptr(),
        );
        return Err(Raised);
    }
    let mut len: ffi::Py_ssize_t = 0;
    let p = ffi::PyUnicode_AsUTF8AndSize(o, &mut len);
    if p.is_null() {
        // Lone surrogates: keep going with a lossy form (only used for printing).
        ffi::PyErr_Clear();
        return Ok("<unprintable>".to_string());
    }
    let bytes = std::slice::from_raw_parts(p as *const u8, len as usize);
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

unsafe fn strings(t: &Owned) -> PyResult<Vec<String>> {
    tuple_items(t)?.into_iter().map(|o| rust_str(o)).collect()
}

pub(crate) unsafe fn int_attr(o: *mut ffi::PyObject, name: &str) -> PyResult<i64> {
    let v = attr(o, name)?;
    let x = ffi::PyLong_AsLongLong(v.ptr());
    if x == -1 && !ffi::PyErr_Occurred().is_null() {
        return Err(Raised);
    }
    Ok(x)
}

unsafe fn bytes_attr(o: *mut ffi::PyObject, name: &str) -> PyResult<Vec<u8>> {
    let v = attr(o, name)?;
    if ffi::PyBytes_Check(v.ptr()) == 0 {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"code object field is not bytes".as_ptr(),
        );
        return Err(Raised);
    }
    let p = ffi::PyBytes_AsString(v.ptr());
    let n = ffi::PyBytes_Size(v.ptr());
    Ok(std::slice::from_raw_parts(p as *const u8, n as usize).to_vec())
}

/// A printable form of a constant, stable across runs.
unsafe fn const_repr(o: *mut ffi::PyObject) -> ConstRepr {
    if o == ffi::Py_None() {
        return ConstRepr::Singleton("None");
    }
    if o == ffi::Py_True() {
        return ConstRepr::Singleton("True");
    }
    if o == ffi::Py_False() {
        return ConstRepr::Singleton("False");
    }
    if o == ffi::Py_Ellipsis() {
        return ConstRepr::Singleton("Ellipsis");
    }
    if ffi::PyLong_CheckExact(o) != 0 {
        let mut overflow = 0;
        let x = ffi::PyLong_AsLongLongAndOverflow(o, &mut overflow);
        if overflow == 0 {
            return ConstRepr::Int(x);
        }
        return ConstRepr::BigInt(repr_string(o).unwrap_or_else(|| "<int>".into()));
    }
    if ffi::PyFloat_CheckExact(o) != 0 {
        return ConstRepr::Float(ffi::PyFloat_AS_DOUBLE(o));
    }
    if ffi::PyUnicode_CheckExact(o) != 0 {
        if let Ok(s) = rust_str(o) {
            return ConstRepr::Str(s);
        }
    }
    if ffi::PyCode_Check(o) != 0 {
        let name = attr(o, "co_qualname")
            .ok()
            .and_then(|n| rust_str(n.ptr()).ok());
        ffi::PyErr_Clear();
        return ConstRepr::Other(format!("code {}", name.unwrap_or_default()));
    }
    // Tuples, bytes, frozensets...: their repr is stable.
    match repr_string(o) {
        Some(s) if s.len() <= 60 => ConstRepr::Other(s),
        _ => {
            let tp = std::ffi::CStr::from_ptr((*ffi::Py_TYPE(o)).tp_name);
            ConstRepr::Other(tp.to_string_lossy().into_owned())
        }
    }
}

unsafe fn repr_string(o: *mut ffi::PyObject) -> Option<String> {
    let r = ffi::PyObject_Repr(o);
    if r.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    let r = Owned::new(r).ok()?;
    let s = rust_str(r.ptr()).ok();
    ffi::PyErr_Clear();
    s
}

/// Reads a code object. Errors (a broken hand-made object) leave a Python exception set.
///
/// # Safety
/// GIL held; `code` is a live code object.
pub unsafe fn read_code(code: *mut ffi::PyObject) -> PyResult<(CodeInfo, CodeObjects)> {
    if ffi::PyCode_Check(code) == 0 {
        ffi::PyErr_SetString(ffi::PyExc_TypeError, c"expected a code object".as_ptr());
        return Err(Raised);
    }
    let consts_tuple = attr(code, "co_consts")?;
    let names_tuple = attr(code, "co_names")?;
    let consts = tuple_items(&consts_tuple)?;
    let names = tuple_items(&names_tuple)?;
    let mut info = CodeInfo {
        qualname: rust_str(attr(code, "co_qualname")?.ptr())?,
        code: bytes_attr(code, "co_code")?,
        exception_table: bytes_attr(code, "co_exceptiontable")?,
        consts: consts.iter().map(|&c| const_repr(c)).collect(),
        names: names
            .iter()
            .map(|&n| rust_str(n))
            .collect::<PyResult<_>>()?,
        argcount: int_attr(code, "co_argcount")? as u32,
        posonlyargcount: int_attr(code, "co_posonlyargcount")? as u32,
        kwonlyargcount: int_attr(code, "co_kwonlyargcount")? as u32,
        flags: int_attr(code, "co_flags")? as u32,
        ..CodeInfo::default()
    };
    let varnames = attr(code, "co_varnames")?;
    let cellvars = attr(code, "co_cellvars")?;
    let freevars = attr(code, "co_freevars")?;
    info.set_locals(
        &strings(&varnames)?,
        &strings(&cellvars)?,
        &strings(&freevars)?,
    );
    // Local-name objects in locals-plus order, for UnboundLocalError/NameError messages.
    let mut local_names = Vec::new();
    for t in [&varnames, &cellvars, &freevars] {
        for o in tuple_items(t)? {
            let s = rust_str(o)?;
            if t.ptr() == cellvars.ptr() && info.local_names[..local_names.len()].contains(&s) {
                continue; // an argument that is also a cell shares its slot
            }
            ffi::Py_INCREF(o);
            local_names.push(Owned::new(o)?);
        }
    }
    info.lines = LineTable::new(line_table(code, info.code.len() / 2)?);
    let name = rust_str(attr(code, "co_name")?.ptr())?;
    let filename = rust_str(attr(code, "co_filename")?.ptr())?;
    let firstlineno = int_attr(code, "co_firstlineno")? as i32;
    ffi::Py_INCREF(code);
    let objects = CodeObjects {
        code: Owned::new(code)?,
        consts,
        consts_tuple,
        names,
        names_tuple,
        local_names,
        name: CString::new(name.replace('\0', "?")).unwrap_or_default(),
        filename: CString::new(filename.replace('\0', "?")).unwrap_or_default(),
        firstlineno,
    };
    let _ = (&objects.consts_tuple, &objects.names_tuple);
    Ok((info, objects))
}

/// The line of every code unit, from `co_lines()` (-1 where there is none).
unsafe fn line_table(code: *mut ffi::PyObject, units: usize) -> PyResult<Vec<i32>> {
    let mut lines = vec![-1; units];
    let it = Owned::new(ffi::PyObject_CallMethod(
        code,
        c"co_lines".as_ptr(),
        std::ptr::null(),
    ))?;
    let it = Owned::new(ffi::PyObject_GetIter(it.ptr()))?;
    loop {
        let item = ffi::PyIter_Next(it.ptr());
        if item.is_null() {
            if !ffi::PyErr_Occurred().is_null() {
                return Err(Raised);
            }
            break;
        }
        let item = Owned::new(item)?;
        // `(start, end, line)`, read straight from the tuple (PyArg_ParseTuple's format
        // parsing was most of translating a small function).
        if ffi::PyTuple_Check(item.ptr()) == 0 || ffi::PyTuple_GET_SIZE(item.ptr()) != 3 {
            ffi::PyErr_SetString(
                ffi::PyExc_SystemError,
                c"tiered: co_lines() gave something other than (start, end, line)".as_ptr(),
            );
            return Err(Raised);
        }
        let field = |i| ffi::PyTuple_GET_ITEM(item.ptr(), i);
        let start = ffi::PyLong_AsSsize_t(field(0));
        let end = ffi::PyLong_AsSsize_t(field(1));
        if (start == -1 || end == -1) && !ffi::PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        let line = field(2);
        if line == ffi::Py_None() {
            continue;
        }
        let l = ffi::PyLong_AsLong(line) as i32;
        let (s, e) = ((start.max(0) as usize) / 2, (end.max(0) as usize) / 2);
        for slot in lines.iter_mut().take(e.min(units)).skip(s) {
            *slot = l;
        }
    }
    Ok(lines)
}
