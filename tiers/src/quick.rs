//! In-place quickening: each tier-1 instruction carries a specialization state that generic
//! execution fills in from the operand types it sees, and that a failed guard empties again.
//! The variants themselves live in their op family's file.

use crate::ops::{arith, attrs, calls, compare, globals, iter, subscr};
use std::cell::Cell;
use tiered_ir::OpKind;

/// The specialization of one instruction.
#[derive(Clone, Copy, Debug, Default)]
pub enum Quick {
    /// Not specialized: run the generic op (and observe).
    #[default]
    Generic,
    /// A Binary variant.
    Binary(arith::BinaryVariant),
    /// A Compare variant.
    Compare(compare::CompareVariant),
    /// A ForIter variant.
    ForIter(iter::ForIterVariant),
    /// A LoadGlobal cached under dict-version guards.
    Global(globals::GlobalCache),
    /// A Call variant.
    Call(calls::CallVariant),
    /// A Subscr variant.
    Subscr(subscr::SubscrVariant),
    /// A StoreSubscr variant.
    StoreSubscr(subscr::StoreSubscrVariant),
    /// A LoadAttr or StoreAttr variant.
    Attr(attrs::AttrVariant),
    /// A LoadMethod variant.
    Method(attrs::MethodVariant),
    /// The kinds of operand a Truth met (feedback for its native template; tier 1 runs
    /// the op as ever).
    Truth(compare::TruthSeen),
}

impl Quick {
    /// The variant's name, for dumps and coverage (`None` when generic).
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Quick::Generic => None,
            Quick::Binary(v) => Some(v.name()),
            Quick::Compare(v) => Some(v.name()),
            Quick::ForIter(v) => Some(v.name()),
            Quick::Global(c) => Some(c.name()),
            Quick::Call(v) => Some(v.name()),
            Quick::Subscr(v) => Some(v.name()),
            Quick::StoreSubscr(v) => Some(v.name()),
            Quick::Attr(v) => Some(v.name()),
            Quick::Method(v) => Some(v.name()),
            Quick::Truth(s) => Some(s.name()),
        }
    }

    /// How many cases the site handles: 0 generic, a polymorphic variant's entries, else
    /// 1. Native code compiled with fewer than the site has now is stale there.
    pub fn width(&self) -> u8 {
        match self {
            Quick::Generic => 0,
            Quick::Call(calls::CallVariant::Poly(es)) => es.len() as u8,
            Quick::Attr(attrs::AttrVariant::Poly(es)) => es.len() as u8,
            Quick::Method(attrs::MethodVariant::Poly(ms)) => ms.len() as u8,
            Quick::Binary(_)
            | Quick::Compare(_)
            | Quick::ForIter(_)
            | Quick::Global(_)
            | Quick::Call(_)
            | Quick::Subscr(_)
            | Quick::StoreSubscr(_)
            | Quick::Attr(_)
            | Quick::Method(_)
            | Quick::Truth(_) => 1,
        }
    }
}

/// Entries a polymorphic site keeps: receiver classes of an attribute or method site
/// (CPython's caches keep one, V8's four), callees of a call site. A site that sees more
/// goes back to the generic path (megamorphic), and settles there once it has flipped
/// `FLIP_LIMIT` times.
pub const POLY_MAX: usize = 4;

/// Misses a variant tolerates before the instruction goes back to generic.
const MISS_LIMIT: u16 = 16;
/// How often an instruction may go back to generic before it stays generic for good, so a
/// polymorphic site cannot flip forever.
const FLIP_LIMIT: u8 = 4;

/// After this many observations in a row found no variant, a site waits 2^this
/// executions between looks (CPython's adaptive counters back off likewise).
const MAX_BACKOFF_EXP: u8 = 10;

/// An instruction's specialization state.
#[derive(Default)]
pub struct QuickCell {
    state: Cell<Quick>,
    misses: Cell<u16>,
    flips: Cell<u8>,
    /// Observations in a row that found no variant (the exponent of the next backoff).
    failures: Cell<u8>,
    /// Executions left before the site observes again.
    backoff: Cell<u16>,
}

impl QuickCell {
    /// The current specialization.
    #[inline]
    pub fn get(&self) -> Quick {
        self.state.get()
    }

    /// Installs a specialization seen by generic execution (unless the site gave up).
    #[inline]
    pub fn specialize(&self, q: Quick) {
        if self.flips.get() < FLIP_LIMIT {
            self.state.set(q);
            self.misses.set(0);
        }
    }

    /// Whether the site is generic for good, as far as anyone can tell: it observed its
    /// operands and no variant fit (it is backing off), or it gave up flipping. Native
    /// code may then call the generic operation directly; a site that is generic only
    /// because it has not run yet keeps the tier-1 helper, which can still quicken it.
    #[inline]
    pub fn settled_generic(&self) -> bool {
        matches!(self.state.get(), Quick::Generic)
            && (self.failures.get() > 0 || self.flips.get() >= FLIP_LIMIT)
    }

    /// Records a failed guard; past the limit the instruction returns to generic.
    #[inline]
    pub fn miss(&self) {
        let m = self.misses.get() + 1;
        self.misses.set(m);
        if m >= MISS_LIMIT {
            self.state.set(Quick::Generic);
            self.misses.set(0);
            self.flips.set(self.flips.get().saturating_add(1));
        }
    }

    /// Whether the site should observe its operands now for a specialization: it still
    /// accepts one, and is not backing off after observations that found none.
    #[inline]
    pub fn may_specialize(&self) -> bool {
        if !matches!(self.state.get(), Quick::Generic) || self.flips.get() >= FLIP_LIMIT {
            return false;
        }
        let b = self.backoff.get();
        if b > 0 {
            self.backoff.set(b - 1);
            return false;
        }
        true
    }

    /// An observation's outcome, passed through: when it found no variant the site backs
    /// off (2, 4, ... 1024 executions before it looks again), so a site that fits no
    /// variant does not pay for a type lookup on every execution; one that found a
    /// variant starts over.
    #[inline]
    pub fn observed<T>(&self, found: Option<T>) -> Option<T> {
        match found {
            None => {
                let f = (self.failures.get() + 1).min(MAX_BACKOFF_EXP);
                self.failures.set(f);
                self.backoff.set(1 << f);
            }
            Some(_) => self.failures.set(0),
        }
        found
    }
}

/// What the faster tiers have for an op: its quickened variants, and the native templates
/// tier 2 emits (every other variant and op runs its tier-1 helper from native code). One
/// exhaustive table, so a new op must say; the coverage report is derived from it.
pub fn tiers_of(kind: OpKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        OpKind::LoadGlobal => (globals::GLOBAL_VARIANTS, globals::GLOBAL_VARIANTS),
        // BinaryInt's template covers + - * // % & | ^, BinaryFloat's + - * /, BinaryNumber's
        // + - *; other operators take the tier-1 helper.
        OpKind::Binary => (arith::BINARY_VARIANTS, arith::BINARY_TEMPLATES),
        OpKind::Compare => (compare::COMPARE_VARIANTS, compare::COMPARE_TEMPLATES),
        OpKind::ForIter => (iter::FOR_ITER_VARIANTS, iter::FOR_ITER_TEMPLATES),
        OpKind::Call => (calls::CALL_VARIANTS, calls::CALL_VARIANTS),
        OpKind::Subscr => (subscr::SUBSCR_VARIANTS, subscr::SUBSCR_TEMPLATES),
        OpKind::StoreSubscr => (
            subscr::STORE_SUBSCR_VARIANTS,
            subscr::STORE_SUBSCR_TEMPLATES,
        ),
        OpKind::LoadAttr => (attrs::ATTR_VARIANTS, attrs::ATTR_TEMPLATES),
        OpKind::StoreAttr => (attrs::STORE_ATTR_VARIANTS, attrs::STORE_ATTR_TEMPLATES),
        OpKind::LoadMethod => (attrs::METHOD_VARIANTS, attrs::METHOD_VARIANTS),
        OpKind::Const => (&[], &["Const"]),
        OpKind::Null | OpKind::Lasti => (&[], &["Null"]),
        OpKind::Send => (&[], &["Send"]),
        OpKind::Thrown => (&[], &["Thrown"]),
        OpKind::GetAwaitable => (&[], &["GetAwaitable"]),
        OpKind::GetYieldFromIter => (&[], &["GetYieldFromIter"]),
        OpKind::GetAnext => (&[], &["GetAnext"]),
        OpKind::AsyncGenWrap => (&[], &["AsyncGenWrap"]),
        OpKind::LoadDeref => (&[], &["LoadDeref"]),
        OpKind::LoadClosure => (&[], &["LoadClosure"]),
        OpKind::MakeCell => (&[], &["MakeCell"]),
        OpKind::BuildMap => (&[], &["BuildMap"]),
        OpKind::MakeFunction => (&[], &["MakeFunction"]),
        OpKind::StoreDeref => (&[], &["StoreDeref"]),
        OpKind::BuildSlice => (&[], &["BuildSlice"]),
        OpKind::Truth => (&[], &["TruthUnboxed"]),
        OpKind::Is => (&[], &["Is"]),
        OpKind::IsNone => (&[], &["IsNone"]),
        OpKind::Contains => (&[], &["Contains"]),
        OpKind::Unary => (&[], &["UnaryUnboxed"]),
        OpKind::ListAppend => (&[], &["ListAppend"]),
        OpKind::SetAdd => (&[], &["SetAdd"]),
        OpKind::MapAdd => (&[], &["MapAdd"]),
        OpKind::FormatValue => (&[], &["FormatValue"]),
        OpKind::BuildString => (&[], &["BuildString"]),
        OpKind::UnpackSequence => (&[], &["UnpackSequence"]),
        OpKind::BuildTuple => (&[], &["BuildTuple"]),
        OpKind::BuildList => (&[], &["BuildList"]),
        OpKind::EvalBreaker => (&[], &["EvalBreaker"]),
        OpKind::GetIter => (&[], &["GetIter"]),
        OpKind::StoreGlobal => (&[], &["StoreGlobal"]),
        OpKind::CallEx => (&[], &["CallEx"]),
        OpKind::ListExtend => (&[], &["ListExtend"]),
        OpKind::ListToTuple => (&[], &["ListToTuple"]),
        OpKind::Unsupported
        | OpKind::CheckBound
        | OpKind::LoadAssertionError
        | OpKind::LoadBuildClass
        | OpKind::DeleteGlobal
        | OpKind::DeleteAttr
        | OpKind::DeleteSubscr
        | OpKind::BuildSet
        | OpKind::BuildConstKeyMap
        | OpKind::SetUpdate
        | OpKind::DictUpdate
        | OpKind::DictMerge
        | OpKind::UnpackEx
        | OpKind::DeleteDeref
        | OpKind::PushExcInfo
        | OpKind::PopExcept
        | OpKind::CheckExcMatch
        | OpKind::Raise
        | OpKind::Reraise
        | OpKind::BeforeWith
        | OpKind::BeforeAsyncWith
        | OpKind::GetAiter
        | OpKind::EndAsyncFor
        | OpKind::WithExceptStart
        | OpKind::CheckEgMatch
        | OpKind::PrepReraiseStar
        | OpKind::ImportName
        | OpKind::ImportFrom
        | OpKind::GetLen
        | OpKind::MatchMapping
        | OpKind::MatchSequence
        | OpKind::MatchKeys
        | OpKind::MatchClass => (&[], &[]),
    }
}
