//! Structural pattern matching (`match`): the subject tests and extractions behind 3.11's
//! GET_LEN, MATCH_MAPPING, MATCH_SEQUENCE, MATCH_KEYS and MATCH_CLASS, with ceval.c's
//! messages and its order of lookups (`__match_args__`, then attributes left to right).

use crate::value::{status, Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use std::os::raw::{c_char, c_int, c_ulong};

/// `_Py_TPFLAGS_MATCH_SELF` (Include/object.h): builtins (int, str, list...) whose single
/// positional sub-pattern matches the subject itself when they lack `__match_args__`.
const TPFLAGS_MATCH_SELF: c_ulong = 1 << 22;

/// Whether the subject's type has `flag` set.
///
/// # Safety
/// GIL held; `v` is an object.
#[inline]
unsafe fn type_has(v: &Value, flag: c_ulong) -> bool {
    (*ffi::Py_TYPE(v.as_ptr())).tp_flags & flag != 0
}

/// A type's `tp_name`, as ceval.c's `%s` prints it.
///
/// # Safety
/// GIL held; `t` is a type object.
#[inline]
unsafe fn tp_name(t: *mut ffi::PyObject) -> *const c_char {
    (*(t as *mut ffi::PyTypeObject)).tp_name
}

/// GetLen: `len(subject)` (PyObject_Length), leaving the subject in place.
///
/// # Safety
/// GIL held; the operand is an object.
pub unsafe fn get_len(v: &Value) -> PyResult<Value> {
    let n = ffi::PyObject_Length(v.as_ptr());
    if n < 0 {
        return Err(Raised);
    }
    Value::from_owned(ffi::PyLong_FromSsize_t(n))
}

/// MatchMapping: whether the subject's type is flagged as a mapping (dict, Mapping ABCs).
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn match_mapping(v: &Value) -> Value {
    Value::Bool(type_has(v, ffi::Py_TPFLAGS_MAPPING))
}

/// MatchSequence: whether the subject's type is flagged as a sequence (not str/bytes).
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn match_sequence(v: &Value) -> Value {
    Value::Bool(type_has(v, ffi::Py_TPFLAGS_SEQUENCE))
}

/// MatchKeys: the values of `keys` in the subject, looked up with `subject.get(key, dummy)`
/// (so `__missing__` never runs), or None at the first missing key; ValueError on a
/// duplicate key.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn match_keys(subject: &Value, keys: &Value) -> PyResult<Value> {
    let (map, keys) = (subject.as_ptr(), keys.as_ptr());
    if ffi::PyTuple_CheckExact(keys) == 0 {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: MATCH_KEYS keys are not a tuple",
        ));
    }
    let nkeys = ffi::PyTuple_GET_SIZE(keys);
    if nkeys == 0 {
        return Value::from_owned(ffi::PyTuple_New(0));
    }
    let name = Owned::new(ffi::PyUnicode_InternFromString(c"get".as_ptr()))?;
    let mut get = std::ptr::null_mut();
    let unbound = crate::cpy::_PyObject_GetMethod(map, name.ptr(), &mut get) != 0;
    let get = Owned::new(get)?;
    let seen = Owned::new(ffi::PySet_New(std::ptr::null_mut()))?;
    let dummy = Owned::new(ffi::PyObject_CallNoArgs(
        std::ptr::addr_of_mut!(ffi::PyBaseObject_Type) as *mut ffi::PyObject,
    ))?;
    let values = Owned::new(ffi::PyTuple_New(nkeys))?;
    for i in 0..nkeys {
        let key = ffi::PyTuple_GET_ITEM(keys, i);
        // As ceval.c: an error from either set call also ends here (with its own exception).
        if ffi::PySet_Contains(seen.ptr(), key) != 0 || ffi::PySet_Add(seen.ptr(), key) != 0 {
            if ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_Format(
                    ffi::PyExc_ValueError,
                    c"mapping pattern checks duplicate key (%R)".as_ptr(),
                    key,
                );
            }
            return Err(Raised);
        }
        let args = [map, key, dummy.ptr()];
        let value = if unbound {
            ffi::PyObject_Vectorcall(get.ptr(), args.as_ptr(), 3, std::ptr::null_mut())
        } else {
            ffi::PyObject_Vectorcall(get.ptr(), args.as_ptr().add(1), 2, std::ptr::null_mut())
        };
        let value = Owned::new(value)?;
        if value.ptr() == dummy.ptr() {
            return Ok(Value::from_borrowed(ffi::Py_None()));
        }
        // The tuple takes over the reference `value` owns.
        let p = value.ptr();
        std::mem::forget(value);
        ffi::PyTuple_SET_ITEM(values.ptr(), i, p);
    }
    Ok(values.into_value())
}

/// One attribute for a class pattern: `Ok(None)` when the subject lacks it (no match),
/// TypeError when a sub-pattern names it twice.
///
/// # Safety
/// GIL held; `name` is a str, `seen` a set, `cls` a type.
unsafe fn match_class_attr(
    subject: *mut ffi::PyObject,
    cls: *mut ffi::PyObject,
    name: *mut ffi::PyObject,
    seen: *mut ffi::PyObject,
) -> PyResult<Option<Owned>> {
    if ffi::PySet_Contains(seen, name) != 0 || ffi::PySet_Add(seen, name) != 0 {
        if ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Format(
                ffi::PyExc_TypeError,
                c"%s() got multiple sub-patterns for attribute %R".as_ptr(),
                tp_name(cls),
                name,
            );
        }
        return Err(Raised);
    }
    let attr = ffi::PyObject_GetAttr(subject, name);
    if attr.is_null() {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) != 0 {
            ffi::PyErr_Clear();
            return Ok(None);
        }
        return Err(Raised);
    }
    Ok(Some(Owned::new(attr)?))
}

/// MatchClass: `isinstance(subject, cls)`, then the attributes named by the first `nargs`
/// entries of `cls.__match_args__` and by `names`, as a tuple; None when the subject is not
/// an instance or lacks an attribute.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn match_class(
    nargs: u32,
    subject: &Value,
    cls: &Value,
    names: &Value,
) -> PyResult<Value> {
    let (s, t, kwargs) = (subject.as_ptr(), cls.as_ptr(), names.as_ptr());
    if ffi::PyType_Check(t) == 0 {
        return Err(super::raise(
            ffi::PyExc_TypeError,
            "called match pattern must be a type",
        ));
    }
    if ffi::PyTuple_CheckExact(kwargs) == 0 {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "tiered: MATCH_CLASS names are not a tuple",
        ));
    }
    let no_match = || Ok(Value::from_borrowed(ffi::Py_None()));
    match ffi::PyObject_IsInstance(s, t) {
        r if r < 0 => return Err(Raised),
        0 => return no_match(),
        _ => {}
    }
    let seen = Owned::new(ffi::PySet_New(std::ptr::null_mut()))?;
    let attrs = Owned::new(ffi::PyList_New(0))?;
    if nargs > 0 {
        let nargs = nargs as ffi::Py_ssize_t;
        let mut match_self = false;
        let found = ffi::PyObject_GetAttrString(t, c"__match_args__".as_ptr());
        let match_args = if !found.is_null() {
            let m = Owned::new(found)?;
            if ffi::PyTuple_CheckExact(m.ptr()) == 0 {
                ffi::PyErr_Format(
                    ffi::PyExc_TypeError,
                    c"%s.__match_args__ must be a tuple (got %s)".as_ptr(),
                    tp_name(t),
                    (*ffi::Py_TYPE(m.ptr())).tp_name,
                );
                return Err(Raised);
            }
            m
        } else if ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) != 0 {
            ffi::PyErr_Clear();
            // MATCH_SELF counts only when the type does not define __match_args__.
            match_self = (*(t as *mut ffi::PyTypeObject)).tp_flags & TPFLAGS_MATCH_SELF != 0;
            Owned::new(ffi::PyTuple_New(0))?
        } else {
            return Err(Raised);
        };
        let allowed = if match_self {
            1
        } else {
            ffi::PyTuple_GET_SIZE(match_args.ptr())
        };
        if allowed < nargs {
            let plural = if allowed == 1 { c"" } else { c"s" };
            // ceval.c passes these Py_ssize_t values to `%d`, which reads an int.
            ffi::PyErr_Format(
                ffi::PyExc_TypeError,
                c"%s() accepts %d positional sub-pattern%s (%d given)".as_ptr(),
                tp_name(t),
                allowed as c_int,
                plural.as_ptr(),
                nargs as c_int,
            );
            return Err(Raised);
        }
        if match_self {
            status(ffi::PyList_Append(attrs.ptr(), s))?;
        } else {
            for i in 0..nargs {
                let name = ffi::PyTuple_GET_ITEM(match_args.ptr(), i);
                if ffi::PyUnicode_CheckExact(name) == 0 {
                    ffi::PyErr_Format(
                        ffi::PyExc_TypeError,
                        c"__match_args__ elements must be strings (got %s)".as_ptr(),
                        (*ffi::Py_TYPE(name)).tp_name,
                    );
                    return Err(Raised);
                }
                let Some(attr) = match_class_attr(s, t, name, seen.ptr())? else {
                    return no_match();
                };
                status(ffi::PyList_Append(attrs.ptr(), attr.ptr()))?;
            }
        }
    }
    for i in 0..ffi::PyTuple_GET_SIZE(kwargs) {
        let name = ffi::PyTuple_GET_ITEM(kwargs, i);
        let Some(attr) = match_class_attr(s, t, name, seen.ptr())? else {
            return no_match();
        };
        status(ffi::PyList_Append(attrs.ptr(), attr.ptr()))?;
    }
    Value::from_owned(ffi::PyList_AsTuple(attrs.ptr()))
}
