//! The one table of IR ops. The `Op` enum, names, families, docs, arities, result counts,
//! effects and the immediate printer are all derived from `for_each_op!`; tiers match on
//! `Op` exhaustively, so an op added here and forgotten by a tier does not compile.

use crate::kinds::{
    BinOp, CmpOp, ConstIdx, Conversion, KwNames, LocalIdx, NameIdx, RaiseKind, UnaryOp,
};

/// How many operands an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Fixed(usize),
    /// Any number (the immediates or the operand list say how they split).
    Var,
}

/// What an op may do besides computing its results; the verifier and later passes ask this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// No side effects and cannot raise.
    Pure,
    /// Changes state (the handled exception) but never raises.
    NoRaise,
    /// May run arbitrary Python code, and so may raise and change anything.
    Any,
    /// Always raises: control never continues after it.
    Raises,
}

/// Invokes `$m!` with the op table. Each row: doc line, `Name { immediates }`, family,
/// `args(...)` arity, `results(expr over the immediates)`, effect.
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m! {
            /// A constant from the code object's `co_consts`.
            Const { index: ConstIdx } "values" args(Fixed(0)) results(1) Pure;
            /// The NULL that 3.11 pushes below a callable or an unbound local: no object.
            Null {} "values" args(Fixed(0)) results(1) Pure;
            /// The instruction index 3.11 pushes below the exception for a handler that asks (`lasti`): NULL here, an int in a suspended generator's frame.
            Lasti {} "values" args(Fixed(0)) results(1) Pure;
            /// Raises UnboundLocalError if its operand is NULL (a local read before assignment).
            CheckBound { local: LocalIdx } "values" args(Fixed(1)) results(1) Any;
            /// The builtin AssertionError class (LOAD_ASSERTION_ERROR).
            LoadAssertionError {} "values" args(Fixed(0)) results(1) Pure;
            /// `builtins.__build_class__` (NameError if missing), for a class statement.
            LoadBuildClass {} "globals" args(Fixed(0)) results(1) Any;
            /// A module global, else a builtin (NameError if neither), looked up at each run.
            LoadGlobal { name: NameIdx } "globals" args(Fixed(0)) results(1) Any;
            /// Binds a module global.
            StoreGlobal { name: NameIdx } "globals" args(Fixed(1)) results(0) Any;
            /// Deletes a module global (NameError if unbound).
            DeleteGlobal { name: NameIdx } "globals" args(Fixed(0)) results(0) Any;
            /// A binary or in-place operator, as PyNumber_* would compute it.
            Binary { op: BinOp } "arith" args(Fixed(2)) results(1) Any;
            /// A unary operator; `not` gives a bool.
            Unary { op: UnaryOp } "arith" args(Fixed(1)) results(1) Any;
            /// A rich comparison; `jump` when a conditional jump takes the result at once (3.11 specializes only those, and checks the recursion limit in every other).
            Compare { op: CmpOp, jump: bool } "compare" args(Fixed(2)) results(1) Any;
            /// `is` / `is not`: identity, never raises.
            Is { invert: bool } "compare" args(Fixed(2)) results(1) Pure;
            /// `in` / `not in` (PySequence_Contains).
            Contains { invert: bool } "compare" args(Fixed(2)) results(1) Any;
            /// The truth value of its operand as a bool (PyObject_IsTrue), for branches.
            Truth {} "compare" args(Fixed(1)) results(1) Any;
            /// Whether its operand is None, for POP_JUMP_IF_(NOT_)NONE.
            IsNone {} "compare" args(Fixed(1)) results(1) Pure;
            /// `iter(x)` (GET_ITER).
            GetIter {} "iter" args(Fixed(1)) results(1) Any;
            /// `next(it)`: results (item, exhausted); item is NULL when exhausted.
            ForIter {} "iter" args(Fixed(1)) results(2) Any;
            /// Where a generator resumes: the value sent in, or (NULL: `throw()`, `close()`) raises the exception thrown in, at the yield.
            Thrown {} "generators" args(Fixed(1)) results(1) Any;
            /// `iter(x)` for `yield from x` (GET_YIELD_FROM_ITER): generators and, in a coroutine, coroutines as they are.
            GetYieldFromIter { coroutine: bool } "generators" args(Fixed(1)) results(1) Any;
            /// `await x`'s iterator (GET_AWAITABLE): a coroutine itself, else `x.__await__()`; `kind` 1 and 2 name `async with`'s `__aenter__` and `__aexit__` in errors.
            GetAwaitable { kind: u32 } "generators" args(Fixed(1)) results(1) Any;
            /// `async for`'s iterator (GET_AITER): `x.__aiter__()`, which must have `__anext__`.
            GetAiter {} "generators" args(Fixed(1)) results(1) Any;
            /// `async for`'s next awaitable (GET_ANEXT): `it.__anext__()`, made awaitable.
            GetAnext {} "generators" args(Fixed(1)) results(1) Any;
            /// `async for`'s end (END_ASYNC_FOR): nothing for StopAsyncIteration, else re-raises its operand.
            EndAsyncFor {} "generators" args(Fixed(1)) results(0) Any;
            /// An async generator's yielded value, wrapped to tell it from what its awaits pass through (ASYNC_GEN_WRAP).
            AsyncGenWrap {} "generators" args(Fixed(1)) results(1) Any;
            /// One step of `yield from`/`await` (SEND); operands (receiver, sent): results (value, returned), `returned` when the receiver finished.
            Send {} "generators" args(Fixed(2)) results(2) Any;
            /// `o.name`.
            LoadAttr { name: NameIdx } "attrs" args(Fixed(1)) results(1) Any;
            /// `o.name = v`; operands (o, v).
            StoreAttr { name: NameIdx } "attrs" args(Fixed(2)) results(0) Any;
            /// `del o.name`.
            DeleteAttr { name: NameIdx } "attrs" args(Fixed(1)) results(0) Any;
            /// LOAD_METHOD: results (method or NULL, self or bound attribute), as CPython pushes them.
            LoadMethod { name: NameIdx } "attrs" args(Fixed(1)) results(2) Any;
            /// `o[k]`.
            Subscr {} "subscr" args(Fixed(2)) results(1) Any;
            /// `o[k] = v`; operands (v, o, k) in stack order.
            StoreSubscr {} "subscr" args(Fixed(3)) results(0) Any;
            /// `del o[k]`.
            DeleteSubscr {} "subscr" args(Fixed(2)) results(0) Any;
            /// `slice(a, b[, c])`.
            BuildSlice { count: u32 } "subscr" args(Var) results(1) Any;
            /// A call: operands (method or NULL, callable or self, args...); trailing args named by kwnames.
            Call { kwnames: KwNames } "calls" args(Var) results(1) Any;
            /// `f(*args[, **kwargs])` (CALL_FUNCTION_EX); operands (callable, args[, kwargs]).
            CallEx { kwargs: bool } "calls" args(Var) results(1) Any;
            /// A new function from a code object; operands (code, then per flags: defaults,
            /// kwdefaults, annotations, closure).
            MakeFunction { flags: u32 } "calls" args(Var) results(1) Any;
            /// A tuple of its operands.
            BuildTuple {} "build" args(Var) results(1) Any;
            /// A list of its operands.
            BuildList {} "build" args(Var) results(1) Any;
            /// A set of its operands.
            BuildSet {} "build" args(Var) results(1) Any;
            /// A dict from (key, value) operand pairs.
            BuildMap {} "build" args(Var) results(1) Any;
            /// A dict from values and a const tuple of keys (the last operand).
            BuildConstKeyMap {} "build" args(Var) results(1) Any;
            /// The concatenation of its str operands (f-strings).
            BuildString {} "build" args(Var) results(1) Any;
            /// `format(v[, spec])` after a conversion, for f-strings.
            FormatValue { conversion: Conversion, spec: bool } "build" args(Var) results(1) Any;
            /// `list.append(l, v)` for comprehensions; operands (list, v).
            ListAppend {} "build" args(Fixed(2)) results(0) Any;
            /// `set.add(s, v)`; operands (set, v).
            SetAdd {} "build" args(Fixed(2)) results(0) Any;
            /// `d[k] = v` for dict comprehensions; operands (dict, k, v).
            MapAdd {} "build" args(Fixed(3)) results(0) Any;
            /// `l.extend(it)` for `[*a]`; operands (list, iterable).
            ListExtend {} "build" args(Fixed(2)) results(0) Any;
            /// `s.update(it)` for `{*a}`; operands (set, iterable).
            SetUpdate {} "build" args(Fixed(2)) results(0) Any;
            /// `d.update(m)` for `{**m}`; operands (dict, mapping).
            DictUpdate {} "build" args(Fixed(2)) results(0) Any;
            /// Merges `**m` into call kwargs, rejecting duplicates; operands (callable, dict, m).
            DictMerge {} "build" args(Fixed(3)) results(0) Any;
            /// `tuple(list)`.
            ListToTuple {} "build" args(Fixed(1)) results(1) Any;
            /// `a, b = v`: exactly `count` results, the items in order.
            UnpackSequence { count: u32 } "build" args(Fixed(1)) results(count as usize) Any;
            /// `a, *b, c = v`: before + 1 + after results (the middle one a list), in order.
            UnpackEx { before: u32, after: u32 } "build" args(Fixed(1)) results((before + after + 1) as usize) Any;
            /// A new cell holding its operand, or empty if it is NULL (MAKE_CELL).
            MakeCell {} "cells" args(Fixed(1)) results(1) Any;
            /// The cell of free variable `index` of the running function's closure.
            LoadClosure { index: u32 } "cells" args(Fixed(0)) results(1) Any;
            /// The contents of a cell; NameError/UnboundLocalError if empty.
            LoadDeref { local: LocalIdx } "cells" args(Fixed(1)) results(1) Any;
            /// Sets a cell's contents; operands (cell, v).
            StoreDeref {} "cells" args(Fixed(2)) results(0) Any;
            /// Empties a cell; raises if already empty.
            DeleteDeref { local: LocalIdx } "cells" args(Fixed(1)) results(0) Any;
            /// Makes its operand the handled exception; result: the previously handled one.
            PushExcInfo {} "exceptions" args(Fixed(1)) results(1) NoRaise;
            /// Restores the handled exception saved by PushExcInfo.
            PopExcept {} "exceptions" args(Fixed(1)) results(0) NoRaise;
            /// Whether exception operand 0 matches class(es) operand 1 (`except T:`).
            CheckExcMatch {} "exceptions" args(Fixed(2)) results(1) Any;
            /// `raise`, `raise e`, `raise e from c`.
            Raise { kind: RaiseKind } "exceptions" args(Var) results(0) Raises;
            /// Re-raises its operand exception unchanged (RERAISE).
            Reraise {} "exceptions" args(Fixed(1)) results(0) Raises;
            /// Enters a context manager: results (bound `__exit__`, `__enter__()` result).
            BeforeWith {} "exceptions" args(Fixed(1)) results(2) Any;
            /// `async with` entry (BEFORE_ASYNC_WITH): results (bound `__aexit__`, `__aenter__()`'s awaitable).
            BeforeAsyncWith {} "exceptions" args(Fixed(1)) results(2) Any;
            /// Calls `exit(type(e), e, tb)`; operands (exit, e).
            WithExceptStart {} "exceptions" args(Fixed(2)) results(1) Any;
            /// `except* T` (CHECK_EG_MATCH): operands (exc, T); results (rest or exc, match or None).
            CheckEgMatch {} "exceptions" args(Fixed(2)) results(2) Any;
            /// The exception an `except*` block re-raises (PREP_RERAISE_STAR); operands (orig, list).
            PrepReraiseStar {} "exceptions" args(Fixed(2)) results(1) Any;
            /// `import name`; operands (level, fromlist).
            ImportName { name: NameIdx } "imports" args(Fixed(2)) results(1) Any;
            /// `from m import name`; operand the module.
            ImportFrom { name: NameIdx } "imports" args(Fixed(1)) results(1) Any;
            /// `len(subject)` as an int, for sequence patterns (GET_LEN).
            GetLen {} "matching" args(Fixed(1)) results(1) Any;
            /// Whether the subject's type is a mapping (Py_TPFLAGS_MAPPING), for `case {...}`.
            MatchMapping {} "matching" args(Fixed(1)) results(1) Pure;
            /// Whether the subject's type is a sequence (Py_TPFLAGS_SEQUENCE), for `case [...]`.
            MatchSequence {} "matching" args(Fixed(1)) results(1) Pure;
            /// Mapping-pattern lookup; operands (subject, keys tuple); the values tuple or None.
            MatchKeys {} "matching" args(Fixed(2)) results(1) Any;
            /// Class pattern, `count` positional; operands (subject, class, kw names); attrs tuple or None.
            MatchClass { count: u32 } "matching" args(Fixed(3)) results(1) Any;
            /// CPython's eval breaker check, where 3.11's eval loop makes it (function entry, back
            /// edges, after calls): runs signal handlers and pending calls, raises an exception
            /// another thread sent, lets a thread waiting for the GIL take it.
            EvalBreaker {} "events" args(Fixed(0)) results(0) Any;
            /// A CPython opcode we cannot translate: the whole function runs in CPython.
            Unsupported { opcode: u32, reason: &'static str } "unsupported" args(Var) results(0) Raises;
        }
    };
}

/// Expands the op table into the `Op` enum and its derived queries.
macro_rules! define_ops {
    ($( $(#[doc = $doc:literal])* $name:ident { $($f:ident : $t:ty),* }
        $family:literal args($($arity:tt)*) results($($res:tt)*) $effect:ident; )*) => {
        /// An IR operation with its immediates (operands live beside it in the instruction).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op {
            $( $(#[doc = $doc])* $name { $($f: $t),* }, )*
        }

        /// An op without its immediates: a dense index for per-op tables (counters, coverage).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum OpKind {
            $( $(#[doc = $doc])* $name, )*
        }

        /// Static facts about one op, for the coverage report.
        #[derive(Clone, Copy, Debug)]
        pub struct OpInfo {
            /// The op's name.
            pub name: &'static str,
            /// The family (and file under tiers/src/ops/) it belongs to.
            pub family: &'static str,
            /// Its one-line doc.
            pub doc: &'static str,
            /// Its kind.
            pub kind: OpKind,
        }

        /// Every op, in table order (indexable by `OpKind as usize`).
        pub const ALL_OPS: &[OpInfo] = &[
            $( OpInfo { name: stringify!($name), family: $family,
                        doc: concat!($($doc),*), kind: OpKind::$name }, )*
        ];

        impl Op {
            /// The op's kind.
            pub fn kind(&self) -> OpKind {
                match self { $( Op::$name { .. } => OpKind::$name, )* }
            }
            /// How many operands the op takes.
            pub fn arity(&self) -> Arity {
                match self { $( Op::$name { .. } => arity!($($arity)*), )* }
            }
            /// How many results the op defines.
            #[allow(unused_variables, clippy::identity_op)]
            pub fn result_count(&self) -> usize {
                match *self { $( Op::$name { $($f),* } => { $($res)* } )* }
            }
            /// Its effect class.
            pub fn effect(&self) -> Effect {
                match self { $( Op::$name { .. } => effect!($effect), )* }
            }
            /// Writes the immediates, each through `ImmFmt` so indices print by name.
            pub fn fmt_imms(&self, ctx: &dyn ImmCtx, out: &mut String) {
                match self {
                    $( Op::$name { $($f),* } => {
                        $( out.push(' '); $f.fmt_imm(ctx, out); )*
                    } )*
                }
            }
        }

        impl OpKind {
            /// The op's name.
            pub fn name(self) -> &'static str { ALL_OPS[self as usize].name }
            /// The op's family.
            pub fn family(self) -> &'static str { ALL_OPS[self as usize].family }
            /// The number of op kinds.
            pub const COUNT: usize = ALL_OPS.len();
        }
    };
}

macro_rules! arity {
    (Var) => {
        Arity::Var
    };
    (Fixed($n:expr)) => {
        Arity::Fixed($n)
    };
}

macro_rules! effect {
    (Pure) => {
        Effect::Pure
    };
    (NoRaise) => {
        Effect::NoRaise
    };
    (Any) => {
        Effect::Any
    };
    (Raises) => {
        Effect::Raises
    };
}

for_each_op!(define_ops);

/// What the printer needs to show an index immediate by name.
pub trait ImmCtx {
    /// A printable form of `co_consts[i]`.
    fn const_repr(&self, i: ConstIdx) -> String;
    /// `co_names[i]`.
    fn name(&self, i: NameIdx) -> String;
    /// The name of locals-plus slot `i`.
    fn local_name(&self, i: LocalIdx) -> String;
}

/// How one immediate prints (stably: indices print with the name or constant they denote).
pub trait ImmFmt {
    /// Appends the immediate's text.
    fn fmt_imm(&self, ctx: &dyn ImmCtx, out: &mut String);
}

macro_rules! display_imm {
    ($($t:ty),*) => {$(
        impl ImmFmt for $t {
            fn fmt_imm(&self, _: &dyn ImmCtx, out: &mut String) { out.push_str(&self.to_string()) }
        }
    )*};
}
display_imm!(u32, bool, BinOp, CmpOp, UnaryOp, RaiseKind);

impl ImmFmt for &'static str {
    fn fmt_imm(&self, _: &dyn ImmCtx, out: &mut String) {
        out.push_str(&format!("{self:?}"))
    }
}
impl ImmFmt for Conversion {
    fn fmt_imm(&self, _: &dyn ImmCtx, out: &mut String) {
        out.push_str(match self {
            Conversion::None => "none",
            Conversion::Str => "s",
            Conversion::Repr => "r",
            Conversion::Ascii => "a",
        })
    }
}
impl ImmFmt for ConstIdx {
    fn fmt_imm(&self, ctx: &dyn ImmCtx, out: &mut String) {
        out.push_str(&ctx.const_repr(*self))
    }
}
impl ImmFmt for NameIdx {
    fn fmt_imm(&self, ctx: &dyn ImmCtx, out: &mut String) {
        out.push_str(&ctx.name(*self))
    }
}
impl ImmFmt for LocalIdx {
    fn fmt_imm(&self, ctx: &dyn ImmCtx, out: &mut String) {
        out.push_str(&ctx.local_name(*self))
    }
}
impl ImmFmt for KwNames {
    fn fmt_imm(&self, ctx: &dyn ImmCtx, out: &mut String) {
        match self.0 {
            Some(c) => {
                out.push_str("kw=");
                out.push_str(&ctx.const_repr(c))
            }
            None => out.push_str("kw=()"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_dense_and_named() {
        for (i, info) in ALL_OPS.iter().enumerate() {
            assert_eq!(info.kind as usize, i);
            assert!(!info.doc.trim().is_empty(), "{} has no doc", info.name);
        }
        assert_eq!(OpKind::Binary.name(), "Binary");
    }

    #[test]
    fn results_follow_immediates() {
        assert_eq!(Op::UnpackSequence { count: 3 }.result_count(), 3);
        assert_eq!(
            Op::UnpackEx {
                before: 1,
                after: 2
            }
            .result_count(),
            4
        );
        assert_eq!(Op::ForIter {}.result_count(), 2);
    }
}
