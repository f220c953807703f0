//! Small enums and index newtypes carried as op immediates.

use std::fmt;

/// An index into the code object's `co_consts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConstIdx(pub u32);

/// An index into the code object's `co_names` (globals, attributes, imports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameIdx(pub u32);

/// An index into the code object's locals-plus names (`co_varnames + cellvars + freevars`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalIdx(pub u32);

/// An optional `co_consts` index (the tuple of keyword names of a call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KwNames(pub Option<ConstIdx>);

macro_rules! simple_enum {
    ($(#[$m:meta])* $name:ident { $($(#[doc = $d:literal])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[doc = $d])* $v),* }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// The Python spelling of the operator.
            pub fn symbol(self) -> &'static str { match self { $($name::$v => $s),* } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.symbol()) }
        }
    };
}

simple_enum! {
    /// A binary operator, numbered as 3.11's BINARY_OP oparg (NB_* in opcode.h).
    BinOp {
        /// `+`
        Add = "+", And = "&", FloorDivide = "//", Lshift = "<<", MatrixMultiply = "@",
        Multiply = "*", Remainder = "%", Or = "|", Power = "**", Rshift = ">>",
        Subtract = "-", TrueDivide = "/", Xor = "^",
        InplaceAdd = "+=", InplaceAnd = "&=", InplaceFloorDivide = "//=", InplaceLshift = "<<=",
        InplaceMatrixMultiply = "@=", InplaceMultiply = "*=", InplaceRemainder = "%=",
        InplaceOr = "|=", InplacePower = "**=", InplaceRshift = ">>=", InplaceSubtract = "-=",
        InplaceTrueDivide = "/=", InplaceXor = "^=",
    }
}

impl BinOp {
    /// Decodes BINARY_OP's oparg; `None` for an out-of-range (hand-made) oparg.
    pub fn from_oparg(arg: u32) -> Option<BinOp> {
        BinOp::ALL.get(arg as usize).copied()
    }
    /// The operator without its in-place form (`+=` to `+`): the 13 in-place forms follow
    /// the 13 plain ones, as in NB_*.
    #[inline]
    pub fn base(self) -> BinOp {
        BinOp::ALL[self as usize % 13]
    }
    /// Whether this is an augmented assignment (`+=`), which tries `__iadd__` first.
    pub fn is_inplace(self) -> bool {
        self.base() != self
    }
}

simple_enum! {
    /// A rich comparison, numbered as COMPARE_OP's oparg (Py_LT..Py_GE).
    CmpOp { Lt = "<", Le = "<=", Eq = "==", Ne = "!=", Gt = ">", Ge = ">=" }
}

impl CmpOp {
    /// Decodes COMPARE_OP's oparg; `None` when out of range.
    pub fn from_oparg(arg: u32) -> Option<CmpOp> {
        CmpOp::ALL.get(arg as usize).copied()
    }
}

simple_enum! {
    /// A unary operator.
    UnaryOp { Negative = "-", Positive = "+", Invert = "~", Not = "not" }
}

/// The shape of RAISE_VARARGS: bare re-raise, `raise exc`, or `raise exc from cause`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaiseKind {
    /// `raise` with no operand: re-raise the exception being handled.
    Reraise,
    /// `raise exc`.
    Exc,
    /// `raise exc from cause`.
    ExcFrom,
}

impl fmt::Display for RaiseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RaiseKind::Reraise => "bare",
            RaiseKind::Exc => "exc",
            RaiseKind::ExcFrom => "from",
        })
    }
}

/// FORMAT_VALUE's conversion: none, `!s`, `!r` or `!a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// No conversion.
    None,
    /// `!s`
    Str,
    /// `!r`
    Repr,
    /// `!a`
    Ascii,
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conversion::None => "",
            Conversion::Str => "!s",
            Conversion::Repr => "!r",
            Conversion::Ascii => "!a",
        })
    }
}
