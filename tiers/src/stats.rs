//! Process-wide counters: per-op execution counts (only while counting is on, so the hot
//! path pays one predictable branch) and fallback reasons.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tiered_ir::{OpKind, ALL_OPS};

static COUNTING: AtomicBool = AtomicBool::new(false);

static TIER1_COUNTS: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];
static TIER2_COUNTS: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];

/// Where native code counts runs of an op's template (when counting was on at compile time).
pub fn tier2_counter(k: OpKind) -> Option<*const AtomicU64> {
    TIER2_COUNTS.get(k as usize).map(|c| c as *const AtomicU64)
}

thread_local! {
    static FALLBACK_REASONS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

static DEOPTS: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];

/// Counts a failed native template guard of an op (it ran in tier 1 instead).
#[inline]
pub fn count_deopt(k: OpKind) {
    if let Some(c) = DEOPTS.get(k as usize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Native deopts per op name (non-zero ones).
pub fn deopt_counts() -> Vec<(&'static str, u64)> {
    ALL_OPS
        .iter()
        .filter_map(|o| {
            let n = DEOPTS
                .get(o.kind as usize)
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0);
            (n > 0).then_some((o.name, n))
        })
        .collect()
}

/// Whether per-op counting is on.
#[inline]
pub fn counting_enabled() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// Turns per-op counting on or off.
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed)
}

/// Counts one tier-1 execution of an op.
#[inline]
pub fn count_op(k: OpKind) {
    if let Some(c) = TIER1_COUNTS.get(k as usize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Execution counts per op name: (tier 1, tier 2 native templates).
pub fn op_counts() -> Vec<(&'static str, u64, u64)> {
    let get = |t: &[AtomicU64; 128], k: OpKind| {
        t.get(k as usize)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    };
    ALL_OPS
        .iter()
        .map(|o| {
            (
                o.name,
                get(&TIER1_COUNTS, o.kind),
                get(&TIER2_COUNTS, o.kind),
            )
        })
        .collect()
}

/// Records one fallback call and why.
pub fn count_fallback(reason: &str) {
    if !counting_enabled() {
        return;
    }
    FALLBACK_REASONS.with(|m| *m.borrow_mut().entry(reason.to_string()).or_default() += 1);
}

/// Fallback reasons and how often each happened.
pub fn fallback_reasons() -> Vec<(String, u64)> {
    FALLBACK_REASONS.with(|m| m.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect())
}

/// Clears all counters.
pub fn reset() {
    for c in TIER1_COUNTS.iter().chain(TIER2_COUNTS.iter()) {
        c.store(0, Ordering::Relaxed);
    }
    for c in DEOPTS.iter() {
        c.store(0, Ordering::Relaxed);
    }
    FALLBACK_REASONS.with(|m| m.borrow_mut().clear());
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_cover_every_op() {
        assert!(tiered_ir::OpKind::COUNT <= super::TIER1_COUNTS.len());
    }
}
