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

/// A register's content: NULL (an unboxed bool (the result of a test, no refcount traffic),
/// an unboxed int or float, or an owned object reference.
///
/// invariant: an `Int`/`Float` register holds a Python int/float whose identity nothing has
/// observed yet. It is boxed in place before anything could observe it (a generic op, a
/// copy to a second register, a return), so it is boxed at most once, just as CPython
/// would have made one object for it.
///
/// The layout is fixed (`repr(C, u64)`: a whole-word tag, payload at offset 8) so native code can
/// read and write registers.
#[derive(Debug, Default)]
#[repr(C, u64)]
pub enum Value {
    /// No object: CPython's NULL.
    #[default]
    Null = 0,
    /// `True`/`False`, unboxed.
    Bool(bool) = 1,
    /// An owned (incref'd) reference.
    Obj(NonNull<ffi::PyObject>) = 2,
    /// An exact int that fits in i64, unboxed.
    Int(i64) = 3,
    /// An exact float, unboxed.
    Float(f64) = 4,
}

/// Tag values of `Value`, for native code.
pub mod tag {
    /// `Value::Null`.
    pub const NULL: u8 = 0;
    /// `Value::Bool`.
    pub const BOOL: u8 = 1;
    /// `Value::Obj`.
    pub const OBJ: u8 = 2;
    /// `Value::Int`.
    pub const INT: u8 = 3;
    /// `Value::Float`.
    pub const FLOAT: u8 = 4;
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
    /// Unboxed numbers must have been boxed (`box_in_place`) first: they give NULL here.
    #[inline]
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        match self {
            Value::Null | Value::Int(_) | Value::Float(_) => std::ptr::null_mut(),
            // SAFETY: taking the address of the static bool singletons reads nothing.
            Value::Bool(true) => unsafe { ffi::Py_True() },
            Value::Bool(false) => unsafe { ffi::Py_False() },
            Value::Obj(p) => p.as_ptr(),
        }
    }

    /// Whether this is an unboxed number (which needs boxing before CPython may see it).
    #[inline]
    pub fn is_unboxed_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }

    /// Boxes an unboxed number in place (so later uses share the one object).
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    pub unsafe fn box_in_place(&mut self) -> PyResult<()> {
        let p = match *self {
            Value::Int(i) => ffi::PyLong_FromLongLong(i),
            Value::Float(x) => ffi::PyFloat_FromDouble(x),
            _ => return Ok(()),
        };
        *self = Value::from_owned(p)?;
        Ok(())
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

    /// Gives away the reference (NULL for `Null`, or if boxing failed with an exception).
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    pub unsafe fn into_ptr(mut self) -> *mut ffi::PyObject {
        if self.box_in_place().is_err() {
            return std::ptr::null_mut();
        }
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
            Value::Int(i) => Value::Int(*i),
            Value::Float(x) => Value::Float(*x),
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

/// An owned reference for temporaries inside ops (decref'd on drop). Transparent: native
/// code reads the pointer out of structs holding one (`Entry::func`).
#[repr(transparent)]
pub struct Owned(NonNull<ffi::PyObject>);

impl Owned {
    /// Another reference to the same object.
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn share(&self) -> Owned {
        ffi::Py_INCREF(self.0.as_ptr());
        Owned(self.0)
    }

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
