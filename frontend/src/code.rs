//! The plain-data view of a CPython 3.11 code object that translation needs. The caller
//! (tiers) fills it from a live code object; tests build it by hand.

use crate::lines::LineTable;
use tiered_ir::ConstRepr;

/// `co_flags` bits we look at.
pub mod flags {
    /// Has `*args`.
    pub const VARARGS: u32 = 0x04;
    /// Has `**kwargs`.
    pub const VARKEYWORDS: u32 = 0x08;
    /// Is a generator function.
    pub const GENERATOR: u32 = 0x20;
    /// Is an `async def`.
    pub const COROUTINE: u32 = 0x80;
    /// Is a `types.coroutine` generator.
    pub const ITERABLE_COROUTINE: u32 = 0x100;
    /// Is an async generator.
    pub const ASYNC_GENERATOR: u32 = 0x200;
}

/// Locals-plus slot kinds (CPython's CO_FAST_*).
pub mod slot {
    /// An ordinary local (arguments included).
    pub const LOCAL: u8 = 0x20;
    /// A cell variable (a local captured by an inner function).
    pub const CELL: u8 = 0x40;
    /// A free variable (captured from an enclosing function).
    pub const FREE: u8 = 0x80;
}

/// What translation needs of a code object.
#[derive(Clone, Debug, Default)]
pub struct CodeInfo {
    /// `co_qualname`.
    pub qualname: String,
    /// `co_code` (or `_co_code_adaptive`: the decoder de-specializes).
    pub code: Vec<u8>,
    /// `co_exceptiontable`.
    pub exception_table: Vec<u8>,
    /// Printable `co_consts`.
    pub consts: Vec<ConstRepr>,
    /// `co_names`.
    pub names: Vec<String>,
    /// Locals-plus names: varnames, then cellvars that are not arguments, then freevars.
    pub local_names: Vec<String>,
    /// One `slot::*` bitset per locals-plus slot.
    pub local_kinds: Vec<u8>,
    /// `co_argcount`.
    pub argcount: u32,
    /// `co_posonlyargcount`.
    pub posonlyargcount: u32,
    /// `co_kwonlyargcount`.
    pub kwonlyargcount: u32,
    /// `co_flags`.
    pub flags: u32,
    /// Source line per code unit.
    pub lines: LineTable,
}

impl CodeInfo {
    /// Builds the locals-plus names and kinds the way CPython 3.11 lays them out: a cellvar
    /// that is also an argument shares the argument's slot.
    pub fn set_locals(&mut self, varnames: &[String], cellvars: &[String], freevars: &[String]) {
        self.local_names = varnames.to_vec();
        self.local_kinds = vec![slot::LOCAL; varnames.len()];
        for c in cellvars {
            match self.local_names.iter().position(|n| n == c) {
                Some(i) => self.local_kinds[i] |= slot::CELL,
                None => {
                    self.local_names.push(c.clone());
                    self.local_kinds.push(slot::CELL);
                }
            }
        }
        for f in freevars {
            self.local_names.push(f.clone());
            self.local_kinds.push(slot::FREE);
        }
    }

    /// The number of argument slots: positional, keyword-only, `*args`, `**kwargs`.
    pub fn total_args(&self) -> usize {
        let mut n = self.argcount as usize + self.kwonlyargcount as usize;
        if self.flags & flags::VARARGS != 0 {
            n += 1;
        }
        if self.flags & flags::VARKEYWORDS != 0 {
            n += 1;
        }
        n
    }

    /// The number of free variables (the tail of locals-plus).
    pub fn nfree(&self) -> usize {
        self.local_kinds
            .iter()
            .filter(|&&k| k & slot::FREE != 0)
            .count()
    }
}
