//! Register values of the tier-1 interpreter.
//!
//! invariant: every `Value` is only created, cloned or dropped while the GIL is held (all
//! of tiers runs inside calls from CPython), which is what makes the refcounting below sound.

use pyo3_ffi as ffi;
use std::ptr::NonNull;

/// A Python exception is set in the thread state (the C-API convention of returning NULL/-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised;

/// The result of an op that may raise.
pub type PyResult<T> = Result<T, Raised>;

/// A register's content: NULL (an unbound local or 3.11's NULL stack marker), an unboxed bool
/// (the result of a test, no refcount traffic), or an owned object reference.
#[derive(Debug, Default)]
pub enum Value {
    /// No object: CPython's NULL.
    #[default]
    Null,
    /// `True`/`False`, unboxed.
    Bool(bool),
    /// An owned (incref'd) reference.
    Obj(NonNull<ffi::PyObject>),
}

impl Value {
    /// Takes ownership of a new reference; NULL means a Python exception is set.
    ///
    /// # Safety
    /// `p` must be NULL or a new reference the caller gives away.
    #[inline]
    pub unsafe fn from_owned(p: *mut ffi::PyObject) -> PyResult<Value> {
        match NonNull::new(p) {
            Some(p) => Ok(Value::Obj(p)),
            None => Err(Raised),
        }
    }

    /// A new reference to a borrowed object (NULL gives `Null`).
    ///
    /// # Safety
    /// `p` must be NULL or a live object.
    #[inline]
    pub unsafe fn from_borrowed(p: *mut ffi::PyObject) -> Value {
        match NonNull::new(p) {
            Some(p) => {
                // SAFETY: p is live (caller's contract) and we hold the GIL.
                ffi::Py_INCREF(p.as_ptr());
                Value::Obj(p)
            }
            None => Value::Null,
        }
    }

    /// A borrowed pointer to the object (NULL for `Null`); valid while `self` lives.
    #[inline]
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        match self {
            Value::Null => std::ptr::null_mut(),
            // SAFETY: taking the address of the static bool singletons reads nothing.
            Value::Bool(true) => unsafe { ffi::Py_True() },
            Value::Bool(false) => unsafe { ffi::Py_False() },
            Value::Obj(p) => p.as_ptr(),
        }
    }

    /// A new reference (NULL for `Null`), for handing to CPython.
    #[inline]
    pub fn new_ref(&self) -> *mut ffi::PyObject {
        let p = self.as_ptr();
        if !p.is_null() {
            // SAFETY: p is live while self is, and we hold the GIL (module invariant).
            unsafe { ffi::Py_INCREF(p) };
        }
        p
    }

    /// Whether this is NULL.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Gives away the reference (NULL for `Null`).
    #[inline]
    pub fn into_ptr(self) -> *mut ffi::PyObject {
        let p = self.new_ref();
        drop(self);
        p
    }
}

impl Clone for Value {
    #[inline]
    fn clone(&self) -> Value {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Obj(p) => {
                // SAFETY: p is owned by self, so live; GIL held (module invariant).
                unsafe { ffi::Py_INCREF(p.as_ptr()) };
                Value::Obj(*p)
            }
        }
    }
}

impl Drop for Value {
    #[inline]
    fn drop(&mut self) {
        if let Value::Obj(p) = self {
            // SAFETY: we own this reference; GIL held (module invariant).
            unsafe { ffi::Py_DECREF(p.as_ptr()) };
        }
    }
}

/// An owned reference for temporaries inside ops (decref'd on drop).
pub struct Owned(NonNull<ffi::PyObject>);

impl Owned {
    /// Takes a new reference; NULL means an exception is set.
    ///
    /// # Safety
    /// `p` must be NULL or a new reference.
    #[inline]
    pub unsafe fn new(p: *mut ffi::PyObject) -> PyResult<Owned> {
        NonNull::new(p).map(Owned).ok_or(Raised)
    }
    /// The borrowed pointer.
    #[inline]
    pub fn ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }
    /// Converts into a register value.
    #[inline]
    pub fn into_value(self) -> Value {
        let v = Value::Obj(self.0);
        std::mem::forget(self);
        v
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: we own this reference; GIL held (module invariant).
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) };
    }
}

/// Converts a C-API int status (-1 = error) into a result.
#[inline]
pub fn status(rc: std::os::raw::c_int) -> PyResult<()> {
    if rc < 0 {
        Err(Raised)
    } else {
        Ok(())
    }
}
