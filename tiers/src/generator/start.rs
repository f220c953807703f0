//! A generator made straight from a call's arguments: what a generator function's code
//! does up to its RETURN_GENERATOR, without running it.
//!
//! The code of a generator, coroutine or async generator function starts with its
//! constants and NULLs and its closure's cells (COPY_FREE_VARS: a generator expression's
//! free variables), then suspends at RETURN_GENERATOR with its locals in the frame: the
//! arguments, the cells, and NULL for the other locals (a cell of its own, MAKE_CELL,
//! makes the code run as usual). A direct call from native code to such a function
//! (`ops::calls::direct`), and a call from CPython with exactly its positional parameters
//! (`runtime::call_compiled`), make the generator from the arguments instead
//! (`from_arguments`): no register file for the callee to clear, no frame to push and
//! pop, no entry into its code and no generic suspension (fibonacci's coroutines: 1,852
//! -> 1,585 instructions each, made, run and freed).

use super::{new_generator, Creator};
use crate::cpy::gen as g;
use crate::cpy::ThreadState;
use crate::lower::{LKind, Linear, NO_VALUE};
use crate::runtime::Compiled;
use crate::value::{PyResult, Value};
use std::os::raw::c_int;
use tiered_ir::Op;

/// What a frame slot of a new generator holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The argument of this parameter (its register).
    Arg(u32),
    /// The function's closure cell at this index.
    Cell(u32),
    /// NULL.
    Null,
}

/// How a generator function's RETURN_GENERATOR leaves the new generator's frame when its
/// code before it only loads constants, NULLs and its closure's cells.
#[derive(Clone, Debug)]
pub struct Start {
    /// Per frame slot the suspension stores: what it holds.
    pub slots: Vec<Slot>,
    /// The suspension's bytecode offset (the new frame's `prev_instr`).
    pub offset: u32,
    /// How many parameters the code takes (registers `0..nparams`).
    pub nparams: u32,
}

/// `lin`'s `Start`, if it is a generator function's code whose first suspension follows
/// nothing but Const, Null, Lasti and LoadClosure ops and jumps without moves, and stores
/// only its parameters, NULLs and closure cells.
pub fn of(lin: &Linear) -> Option<Start> {
    // What the ops on the way wrote into each register, as a frame slot: NULL, a closure
    // cell, or None for a constant (never a frame slot at the start: a suspension
    // storing one is left to the code). Registers nothing wrote are empty, as in any
    // fresh register file.
    let mut written: Vec<(u32, Option<Slot>)> = Vec::new();
    let mut pc = 0usize;
    // Each step moves forward or follows an edge: a bound on the walk whatever the code.
    for _ in 0..lin.insts.len() {
        let inst = lin.insts.get(pc)?;
        match inst.kind {
            LKind::Op(Op::Null {} | Op::Lasti {}) => written.push((inst.dst, Some(Slot::Null))),
            LKind::Op(Op::Const { .. }) => written.push((inst.dst, None)),
            LKind::Op(Op::LoadClosure { index }) => {
                written.push((inst.dst, Some(Slot::Cell(index))))
            }
            LKind::Jump(e) => {
                let e = lin.edges.get(e as usize)?;
                if e.moves_len != 0 || e.drops_len != 0 {
                    return None;
                }
                pc = e.target as usize;
                continue;
            }
            LKind::Suspend { value, index } if value == NO_VALUE => {
                let s = lin.suspensions.get(index as usize)?;
                if !s.lasti.is_empty() {
                    return None;
                }
                let ops = &lin.operands[inst.args as usize..(inst.args + inst.nargs) as usize];
                let slots = ops
                    .iter()
                    .map(|&r| match written.iter().rev().find(|w| w.0 == r) {
                        _ if r < lin.nparams => Some(Slot::Arg(r)),
                        Some(&(_, slot)) => slot,
                        None => Some(Slot::Null),
                    })
                    .collect::<Option<Vec<_>>>()?;
                return Some(Start {
                    slots,
                    offset: inst.offset,
                    nparams: lin.nparams,
                });
            }
            _ => return None,
        }
        pc += 1;
    }
    None
}

/// A new generator of `c` (a generator function's code with a `Start`), called as
/// function `func` on thread `ts` with the arguments `args` (one per parameter, owned:
/// they are taken, or released on failure): its frame as the code's RETURN_GENERATOR
/// would leave it.
///
/// # Safety
/// GIL held, on thread `ts`; `func` is a live function of `c`'s code; the calling frame
/// is the thread's innermost.
// Always inlined into its two callers (native code's helper and calls from CPython), with
// `make`: left to the compiler, they went out of line with unrelated changes, 22 more
// instructions a coroutine made.
#[inline(always)]
pub unsafe fn from_arguments(
    ts: ThreadState,
    c: &Compiled,
    func: *mut pyo3_ffi::PyFunctionObject,
    args: &mut [Value],
) -> PyResult<*mut pyo3_ffi::PyObject> {
    let made = make(ts, c, func, args);
    // Whatever was not moved into the frame (everything, on failure).
    for a in args.iter_mut() {
        drop(std::mem::take(a));
    }
    made
}

/// `from_arguments` but the release of the arguments left (inlined with it).
#[inline(always)]
unsafe fn make(
    ts: ThreadState,
    c: &Compiled,
    func: *mut pyo3_ffi::PyFunctionObject,
    args: &mut [Value],
) -> PyResult<*mut pyo3_ffi::PyObject> {
    let Some(start) = c.gen_start.as_ref() else {
        return Err(crate::ops::raise(
            pyo3_ffi::PyExc_SystemError,
            "tiered: not a generator function that starts with its arguments",
        ));
    };
    if args.len() != start.nparams as usize {
        return Err(crate::ops::raise(
            pyo3_ffi::PyExc_SystemError,
            "tiered: a generator made from the wrong number of arguments",
        ));
    }
    // Objects first (boxing may fail), so a failure leaves nothing half made; and the
    // closure's cells (LoadClosure's SystemError, for a function that lacks them).
    for a in args.iter_mut() {
        a.box_in_place()?;
    }
    for slot in &start.slots {
        if let Slot::Cell(index) = *slot {
            crate::ops::cells::load_closure(func, index)?;
        }
    }
    let gen = new_generator(&Creator {
        c,
        func,
        globals: (*func).func_globals,
        builtins: (*func).func_builtins,
        ts,
        // The caller's frame, innermost now (a native call marked and linked it).
        caller: (*ts.cframe()).current_frame,
    })?;
    let f = g::iframe(gen);
    let dst = (*f).localsplus(start.slots.len());
    for (slot, from) in dst.iter_mut().zip(&start.slots) {
        *slot = match *from {
            // `r < nparams == args.len()` (checked above).
            Slot::Arg(r) => std::mem::take(&mut args[r as usize]).into_ptr(),
            // Checked above: the closure has it.
            Slot::Cell(index) => {
                let cell = pyo3_ffi::PyTuple_GET_ITEM((*func).func_closure, index as isize);
                pyo3_ffi::Py_INCREF(cell);
                cell
            }
            Slot::Null => std::ptr::null_mut(),
        };
    }
    (*f).stacktop = start.slots.len() as c_int;
    (*f).prev_instr = c.code_unit(start.offset);
    pyo3_ffi::PyObject_GC_Track(gen as *mut std::ffi::c_void);
    Ok(gen)
}
