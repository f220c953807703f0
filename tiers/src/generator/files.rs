//! A generator's register file: one on the heap from its first step to its last, taken
//! from a pool its code keeps and given back, empty, when the generator finishes.
//!
//! A generator's frame lives inside the generator object, as CPython's does, but its
//! registers cannot (a file of more than 32 registers would take the object past
//! pymalloc's 512-byte limit, into glibc's malloc, for every generator made). They used
//! to run the first step on the native stack (cleared first: `with_registers`) and be
//! copied to a file from `PyMem_Malloc` at the first suspension, freed by `dealloc`.
//! Each generator paid a clear, a copy, an allocation and a free, and a file above 512
//! bytes went to glibc's malloc (async_tree_io: 1.15M malloc calls a run against
//! CPython's 10.8K). A file is cleared when it is given back (the finished step released
//! every reference in it: `runtime::release`), so the next generator takes it as it is.

use super::{compiled_of, held};
use crate::cpy::gen as g;
use crate::runtime::Compiled;
use crate::value::{PyResult, Value};
use pyo3_ffi as ffi;
use std::cell::Cell;

/// Register files a code keeps for its next generators (`Compiled::gen_files`): a list
/// linked through each file's first word (every other byte zero), at most `POOL_MAX`.
/// It also says whether the code's last first step ended suspended: a generator that
/// finishes in its first step (most coroutines: an `await` of one that never waits) runs
/// it on stack registers instead (`attach`), cleared as a pooled file would be but with
/// nothing to take or give back (fibonacci's coroutines ran 3% more instructions on
/// pooled files).
#[derive(Default)]
pub(crate) struct FilePool {
    head: Cell<usize>,
    len: Cell<u32>,
    suspends: Cell<bool>,
}

impl FilePool {
    /// A first step of the code ended suspended (`true`) or finished: what `attach`
    /// expects of the next one.
    #[inline]
    pub(crate) fn first_step_suspended(&self, suspended: bool) {
        self.suspends.set(suspended);
    }
}

/// Files a pool keeps. A generator's own step takes one and gives it back before its
/// caller takes another, so a few cover most code; nested generators of one code
/// (a recursive `yield from`, coroutines awaiting their own function) hold one each while
/// they run, and a pool this deep lets a descent after a return reuse those.
const POOL_MAX: u32 = 16;

/// Bytes of a register file of `c` (never zero: the free list's link needs a word).
fn file_bytes(c: &Compiled) -> usize {
    (c.linear.nregs as usize).max(1) * std::mem::size_of::<Value>()
}

/// An empty register file for a generator of `c` (every register `Null`): its pool's
/// first, else a new zeroed one; None out of memory (no exception set).
///
/// # Safety
/// GIL held (the pool is unsynchronized).
unsafe fn take_file(c: &Compiled) -> Option<*mut Value> {
    let pool = &c.gen_files;
    let head = pool.head.get();
    if head != 0 {
        // SAFETY: a pooled file is at least a word long (`file_bytes`) and holds the
        // next one's address in its first word; zeroing that word leaves it all Null.
        let link = head as *mut usize;
        pool.head.set(*link);
        *link = 0;
        pool.len.set(pool.len.get() - 1);
        return Some(head as *mut Value);
    }
    let f = ffi::PyMem_Calloc(1, file_bytes(c)) as *mut Value;
    (!f.is_null()).then_some(f)
}

/// Gives file `f` of `c` (all `Null`) back to `c`'s pool, or frees it if the pool is full.
///
/// # Safety
/// GIL held; `f` came from `take_file(c)`, is empty and is no longer used.
unsafe fn give_file(c: &Compiled, f: *mut Value) {
    let pool = &c.gen_files;
    if pool.len.get() >= POOL_MAX {
        ffi::PyMem_Free(f as *mut std::ffi::c_void);
        return;
    }
    // SAFETY: the file is at least a word long and owns nothing; its first word (the
    // first register's tag, 0) holds the link until `take_file` zeroes it again.
    *(f as *mut usize) = pool.head.get();
    pool.head.set(f as usize);
    pool.len.set(pool.len.get() + 1);
}

/// The register file generator `gen` runs on (`attach`): between steps it holds the
/// constants its code starts with (every block reads their registers) and, suspended at
/// an in-place yield, the generator's values (`held`); everything else is empty
/// (`suspend` moved the live values into the frame). None before its first step and
/// after its last.
///
/// # Safety
/// GIL held; `gen` a live generator of ours; the slice must not outlive it, nor be taken
/// twice at once (a running generator cannot be resumed again).
#[inline]
pub(crate) unsafe fn registers<'g>(gen: *mut ffi::PyObject) -> Option<&'g mut [Value]> {
    let base = *register_slot(gen) as *mut Value;
    if base.is_null() {
        return None;
    }
    let n = compiled_of(gen).linear.nregs as usize;
    // SAFETY: `attach` or `keep_registers` gave it a file of `n` Values.
    Some(std::slice::from_raw_parts_mut(base, n))
}

/// The footer word holding a generator's register file.
unsafe fn register_slot(gen: *mut ffi::PyObject) -> *mut usize {
    g::past_slots(gen).add(2)
}

/// Whether `gen` has a register file (nothing else of ours to release if not).
///
/// # Safety
/// GIL held; `gen` a live generator of ours.
#[inline]
pub(crate) unsafe fn has_registers(gen: *mut ffi::PyObject) -> bool {
    *register_slot(gen) != 0
}

/// A new generator has no register file yet.
///
/// # Safety
/// `gen` a generator of ours being made.
pub(crate) unsafe fn init(gen: *mut ffi::PyObject) {
    *register_slot(gen) = 0;
}

/// For the first step of `gen` (a generator of `c` without a register file): a file of
/// its own, its constants loaded (`load_constants`), if the code's last first step
/// ended suspended (`FilePool`). None if not, or out of memory: the step runs on stack
/// registers instead, kept if it suspends (`keep_registers`).
///
/// # Safety
/// GIL held; `gen` a generator of ours of `c` without a register file.
#[inline]
pub(crate) unsafe fn attach<'g>(gen: *mut ffi::PyObject, c: &Compiled) -> Option<&'g mut [Value]> {
    if !c.gen_files.suspends.get() {
        return None;
    }
    let f = take_file(c)?;
    *register_slot(gen) = f as usize;
    // SAFETY: `take_file` gave `nregs` empty registers.
    let regs = std::slice::from_raw_parts_mut(f, c.linear.nregs as usize);
    load_constants(c, regs);
    Some(regs)
}

/// `gen` is being freed: what its register file still holds (its constants, if its
/// last step was not ours; `held::release` released held values) released, and the file
/// back to its code's pool (`finished`).
///
/// # Safety
/// GIL held; `gen` a generator of ours that is not running nor suspended with values
/// held in its registers.
pub(crate) unsafe fn detach(gen: *mut ffi::PyObject) {
    let Some(regs) = registers(gen) else {
        return;
    };
    for &(r, _) in &compiled_of(gen).start_constants {
        drop(std::mem::take(&mut regs[r as usize]));
    }
    finished(gen);
}

/// `gen` finished in our tiers (its last step released every reference its registers
/// held: `runtime::release`): its register file back to its code's pool, cleared.
///
/// # Safety
/// GIL held; `gen` a generator of ours whose register file owns nothing.
#[inline]
pub(crate) unsafe fn finished(gen: *mut ffi::PyObject) {
    let Some(regs) = registers(gen) else {
        return;
    };
    debug_assert!(
        !regs.iter().any(|v| matches!(v, Value::Obj(_))),
        "a finished generator's register file owns something"
    );
    // SAFETY: nothing in it owns a reference (unboxed numbers and bools own nothing), so
    // zero bytes overwrite no reference. A pooled file must be all Null, as every fresh
    // register file is (`runtime::with_registers`): a step's registers start empty in
    // every tier, and a resumption writes its parameters over empty ones (`resume`).
    std::ptr::write_bytes(regs.as_mut_ptr(), 0, regs.len());
    *register_slot(gen) = 0;
    give_file(compiled_of(gen), regs.as_mut_ptr());
}

/// After a step on stack registers `regs` (`attach` gave none: the code's last first
/// step finished, or no memory) left generator `gen` suspended: its register file from
/// now on (`registers`), with the constants and any values held there (`held`) moved
/// in. Out of memory: the constants are
/// released instead, and the next step loads them again; held values go to the frame,
/// and if even that fails (boxing), the error, the values lost (the caller ends the
/// generator with it).
///
/// # Safety
/// GIL held; `gen` a suspended generator of ours without a register file.
pub(crate) unsafe fn keep_registers(gen: *mut ffi::PyObject, regs: &mut [Value]) -> PyResult<()> {
    let Some(kept) = take_file(compiled_of(gen)) else {
        return keep_none(gen, regs);
    };
    // SAFETY: `kept` has room for them; the stack file is left all Null (zero bytes),
    // owning nothing, as its owner expects.
    std::ptr::copy_nonoverlapping(regs.as_ptr(), kept, regs.len());
    std::ptr::write_bytes(regs.as_mut_ptr(), 0, regs.len());
    *register_slot(gen) = kept as usize;
    Ok(())
}

/// `keep_registers` out of memory (out of line: with it inline, the step's hot path
/// stopped inlining its callees, +1.5% on generators).
#[cold]
#[inline(never)]
unsafe fn keep_none(gen: *mut ffi::PyObject, regs: &mut [Value]) -> PyResult<()> {
    ffi::PyErr_Clear();
    // Values held in registers (`held`) go to the frame instead, for the next step.
    let filled = match held::suspended_in_place(gen) {
        Some(point) => held::fill_frame(g::iframe(gen), point, regs),
        None => Ok(()),
    };
    regs.iter_mut().for_each(|r| *r = Value::Null);
    filled
}

/// Loads the constants a generator's code starts with into registers `regs` (empty), for
/// a first step. Their list is made once per code (`Compiled::start_constants`): finding
/// them among the entry block's instructions at each step cost coroutines 5% of their
/// time.
///
/// # Safety
/// GIL held; `regs` is a register file of `c` whose registers are all empty.
pub(crate) unsafe fn load_constants(c: &Compiled, regs: &mut [Value]) {
    for &(r, o) in &c.start_constants {
        ffi::Py_INCREF(o.as_ptr());
        // SAFETY: the register is empty (owns nothing): nothing to release first.
        std::ptr::write(&mut regs[r as usize], Value::Obj(o));
    }
}
