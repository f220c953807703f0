//! A generator's values held in its register file while it is suspended.
//!
//! At a plain yield whose slots are registers of their own (`Suspension::in_place`), a
//! suspension leaves the values in the register file, each in its resume parameter's
//! register (most already are), and a resumption finds them there: no moves into the
//! frame and back (a `set(genexpr)` of 8 items moved four values out and back at every
//! step: 11,756 instructions a call -> 10,541 with `values::number_registers`; CPython's
//! 8,749). Numbers are boxed at the yield all the same, as the frame would hold them, so
//! that the garbage collector's view (`gc.get_referents`) stays CPython's. The frame is
//! filled only when something of CPython's could read its slots: `gi_frame` (its locals),
//! the finalizer (which closes the generator in CPython's loop), a step in CPython's loop
//! (a trace function set). The garbage collector visits the held values through our
//! `tp_traverse`. A suspension keeps the frame's way (`generator::suspend`) wherever the
//! frame could be read behind our back: a frame object made while it ran, locals synced
//! into the frame.

use super::{compiled_of, registers};
use crate::cpy::frame::InterpreterFrame;
use crate::cpy::gen as g;
use crate::lower::Suspension;
use crate::native::helpers::guarded;
use crate::value::{PyResult, Value};
use pyo3_ffi as ffi;
use std::os::raw::{c_int, c_void};

/// The suspension `gen` is suspended at with its values in registers (its frame's slots
/// empty), if it is: an in-place yield with slots to hold (`stacktop` 0 there means the
/// frame has not been filled: a filled frame, or one CPython's loop suspended, has them
/// all).
///
/// # Safety
/// GIL held; `gen` a live generator of ours.
#[inline]
pub(crate) unsafe fn suspended_in_place(gen: *mut ffi::PyObject) -> Option<&'static Suspension> {
    let f = g::iframe(gen);
    if g::head(gen).gi_frame_state != g::FRAME_SUSPENDED || (*f).stacktop != 0 {
        return None;
    }
    let c = compiled_of(gen);
    let point = c.linear.suspension_at(c.offset_of_unit((*f).prev_instr))?;
    (point.in_place && point.params.len() > 1).then_some(point)
}

/// As `suspended_in_place`, with the register file holding the values.
///
/// # Safety
/// As `suspended_in_place`.
pub(crate) unsafe fn held(
    gen: *mut ffi::PyObject,
) -> Option<(&'static Suspension, &'static mut [Value])> {
    let point = suspended_in_place(gen)?;
    Some((point, registers(gen)?))
}

/// Moves the values held in registers `regs` at `point` into frame `f`'s slots, numbers
/// boxed, as a suspension the frame's way leaves them. Boxing fails before anything moves.
///
/// # Safety
/// GIL held; `f` the frame of a generator suspended at `point` with its values in `regs`.
pub(crate) unsafe fn fill_frame(
    f: *mut InterpreterFrame,
    point: &Suspension,
    regs: &mut [Value],
) -> PyResult<()> {
    let slots = &point.params[..point.params.len() - 1];
    for &r in slots {
        regs[r as usize].box_in_place()?;
    }
    for (slot, &r) in (*f).localsplus(slots.len()).iter_mut().zip(slots) {
        *slot = std::mem::take(&mut regs[r as usize]).into_ptr();
    }
    (*f).stacktop = slots.len() as c_int;
    Ok(())
}

/// Fills `gen`'s frame if its values are held in registers, for code about to read it.
///
/// # Safety
/// GIL held; `gen` a live generator of ours.
pub(crate) unsafe fn fill(gen: *mut ffi::PyObject) -> PyResult<()> {
    match held(gen) {
        Some((point, regs)) => fill_frame(g::iframe(gen), point, regs),
        None => Ok(()),
    }
}

/// Releases the values `gen` holds in registers (a generator freed while suspended so,
/// which its finalizer did not close).
///
/// # Safety
/// GIL held; `gen` a generator of ours being freed.
#[inline]
pub(crate) unsafe fn release(gen: *mut ffi::PyObject) {
    if let Some((point, regs)) = held(gen) {
        for &r in &point.params[..point.params.len() - 1] {
            drop(std::mem::take(&mut regs[r as usize]));
        }
    }
}

/// CPython's `gen_traverse`, `tp_finalize` and the `gi_frame` getter, which ours end in.
static mut BASE_TRAVERSE: Option<ffi::traverseproc> = None;
static mut BASE_FINALIZE: Option<ffi::destructor> = None;
static mut BASE_GI_FRAME: Option<ffi::getter> = None;

/// `tp_traverse`: CPython's (the frame, the code, the name), then the values held in
/// registers.
unsafe extern "C" fn traverse(
    gen: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    if let Some(base) = BASE_TRAVERSE {
        let r = base(gen, visit, arg);
        if r != 0 {
            return r;
        }
    }
    if let Some((point, regs)) = held(gen) {
        for &r in &point.params[..point.params.len() - 1] {
            if let Value::Obj(o) = regs[r as usize] {
                let v = visit(o.as_ptr(), arg);
                if v != 0 {
                    return v;
                }
            }
        }
    }
    0
}

/// `tp_finalize`: the frame filled, then CPython's (which closes an unfinished generator
/// in its own loop, from the frame). If it cannot be filled (out of memory boxing), the
/// generator is not closed (its values are released when it is freed) and the error is
/// reported as unraisable, as the finalizer's own errors are.
unsafe extern "C" fn finalize(gen: *mut ffi::PyObject) {
    // (Most generators are finished when freed: nothing to fill, no error to keep.)
    let filled = suspended_in_place(gen).is_none()
        || guarded(false, || {
            let (mut t, mut v, mut tb) = (
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
            let ok = fill(gen).is_ok();
            if !ok {
                ffi::PyErr_WriteUnraisable(gen);
            }
            ffi::PyErr_Restore(t, v, tb);
            ok
        });
    if let (true, Some(base)) = (filled, BASE_FINALIZE) {
        base(gen);
    }
}

/// `gi_frame`: the frame filled, then CPython's getter (the frame object, whose locals
/// read the slots).
unsafe extern "C" fn gi_frame(gen: *mut ffi::PyObject, closure: *mut c_void) -> *mut ffi::PyObject {
    guarded(std::ptr::null_mut(), || {
        if fill(gen).is_err() {
            return std::ptr::null_mut();
        }
        match BASE_GI_FRAME {
            Some(base) => base(gen, closure),
            None => std::ptr::null_mut(),
        }
    })
}

/// Gives generator type `t` (a copy of CPython's, not yet ready) the slots above.
///
/// # Safety
/// GIL held; at import, before `PyType_Ready(t)`.
pub(super) unsafe fn install(t: *mut ffi::PyTypeObject) -> PyResult<()> {
    let base = std::ptr::addr_of_mut!(ffi::PyGen_Type);
    BASE_TRAVERSE = (*base).tp_traverse;
    BASE_FINALIZE = (*base).tp_finalize;
    let mut at = (*base).tp_getset;
    while !at.is_null() && !(*at).name.is_null() {
        if std::ffi::CStr::from_ptr((*at).name) == c"gi_frame" {
            BASE_GI_FRAME = (*at).get;
            break;
        }
        at = at.add(1);
    }
    let Some(_) = BASE_GI_FRAME else {
        ffi::PyErr_SetString(
            ffi::PyExc_ImportError,
            c"tiered: the generator type has no gi_frame".as_ptr(),
        );
        return Err(crate::value::Raised);
    };
    (*t).tp_traverse = Some(traverse);
    (*t).tp_finalize = Some(finalize);
    let table = Box::leak(Box::new([
        ffi::PyGetSetDef {
            name: c"gi_frame".as_ptr(),
            get: Some(gi_frame),
            set: None,
            doc: std::ptr::null(),
            closure: std::ptr::null_mut(),
        },
        ffi::PyGetSetDef {
            name: std::ptr::null(),
            get: None,
            set: None,
            doc: std::ptr::null(),
            closure: std::ptr::null_mut(),
        },
    ]));
    (*t).tp_getset = table.as_mut_ptr();
    Ok(())
}
