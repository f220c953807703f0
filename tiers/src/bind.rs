//! Binds a call's arguments to a function's parameter registers, following CPython 3.11's
//! rules. Any call that does not bind is handed back to CPython, which raises its exact
//! TypeError without running the body: one source of truth for those messages.

use crate::runtime::Compiled;
use crate::value::{Owned, Value};
use pyo3_ffi as ffi;
use tiered_frontend::code::flags;

/// Why binding stopped.
pub enum BindError {
    /// A Python exception is set (e.g. out of memory).
    Raised,
    /// The call does not fit the signature: let CPython report it.
    Mismatch,
}

/// Fills `regs[0..total_args]`.
///
/// # Safety
/// GIL held; `func` is the live function of `c`; `args` holds `nargs` positional arguments
/// followed by one per name in `kwnames` (vectorcall's contract).
pub unsafe fn bind(
    c: &Compiled,
    func: *mut ffi::PyFunctionObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
    regs: &mut [Value],
) -> Result<(), BindError> {
    let nkw = if kwnames.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kwnames) as usize
    };
    // The common shape: exactly the positional parameters, nothing else.
    if nkw == 0 && c.plain_arity == Some(nargs) {
        for (i, r) in regs.iter_mut().take(nargs).enumerate() {
            *r = Value::from_borrowed(*args.add(i));
        }
        return Ok(());
    }
    let info = &c.info;
    let argcount = info.argcount as usize;
    let varargs = info.flags & flags::VARARGS != 0;
    let varkw = info.flags & flags::VARKEYWORDS != 0;
    let kwonly = info.kwonlyargcount as usize;
    if nargs > argcount && !varargs {
        return Err(BindError::Mismatch);
    }
    let npos = nargs.min(argcount);
    for (i, r) in regs.iter_mut().take(npos).enumerate() {
        *r = Value::from_borrowed(*args.add(i));
    }
    let mut slot = argcount + kwonly;
    if varargs {
        let extra = nargs.saturating_sub(argcount);
        let t = Owned::new(ffi::PyTuple_New(extra as ffi::Py_ssize_t))
            .map_err(|_| BindError::Raised)?;
        for k in 0..extra {
            let o = *args.add(argcount + k);
            ffi::Py_INCREF(o);
            ffi::PyTuple_SET_ITEM(t.ptr(), k as ffi::Py_ssize_t, o);
        }
        regs[slot] = t.into_value();
        slot += 1;
    }
    let kwdict = if varkw {
        let d = Owned::new(ffi::PyDict_New()).map_err(|_| BindError::Raised)?;
        let p = d.ptr();
        regs[slot] = d.into_value();
        p
    } else {
        std::ptr::null_mut()
    };
    let posonly = info.posonlyargcount as usize;
    for k in 0..nkw {
        let name = ffi::PyTuple_GET_ITEM(kwnames, k as ffi::Py_ssize_t);
        let value = *args.add(nargs + k);
        let mut found = None;
        for j in posonly..argcount + kwonly {
            let pname = c.objects.local_names[j].ptr();
            if pname == name {
                found = Some(j);
                break;
            }
        }
        if found.is_none() {
            for j in posonly..argcount + kwonly {
                let pname = c.objects.local_names[j].ptr();
                if ffi::PyUnicode_Check(name) != 0 && ffi::PyUnicode_Compare(name, pname) == 0 {
                    found = Some(j);
                    break;
                }
                if !ffi::PyErr_Occurred().is_null() {
                    return Err(BindError::Raised);
                }
            }
        }
        match found {
            Some(j) if regs[j].is_null() => regs[j] = Value::from_borrowed(value),
            Some(_) => return Err(BindError::Mismatch),
            None if varkw => {
                if ffi::PyDict_SetItem(kwdict, name, value) < 0 {
                    return Err(BindError::Raised);
                }
            }
            None => return Err(BindError::Mismatch),
        }
    }
    if nargs < argcount {
        let defaults = (*func).func_defaults;
        let nd = if defaults.is_null() {
            0
        } else {
            ffi::PyTuple_GET_SIZE(defaults) as usize
        };
        let first_default = argcount.saturating_sub(nd);
        for (i, r) in regs.iter_mut().enumerate().take(argcount).skip(nargs) {
            if r.is_null() {
                if i < first_default {
                    return Err(BindError::Mismatch);
                }
                *r = Value::from_borrowed(ffi::PyTuple_GET_ITEM(
                    defaults,
                    (i - first_default) as ffi::Py_ssize_t,
                ));
            }
        }
    }
    if kwonly > 0 {
        let kwdefaults = (*func).func_kwdefaults;
        for (i, r) in regs
            .iter_mut()
            .enumerate()
            .take(argcount + kwonly)
            .skip(argcount)
        {
            if r.is_null() {
                if kwdefaults.is_null() {
                    return Err(BindError::Mismatch);
                }
                let d = ffi::PyDict_GetItemWithError(kwdefaults, c.objects.local_names[i].ptr());
                if d.is_null() {
                    if !ffi::PyErr_Occurred().is_null() {
                        return Err(BindError::Raised);
                    }
                    return Err(BindError::Mismatch);
                }
                *r = Value::from_borrowed(d);
            }
        }
    }
    Ok(())
}
