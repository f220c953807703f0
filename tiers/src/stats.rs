//! Process-wide counters: per-op execution counts (only while counting is on, so the hot
//! path pays one predictable branch) and fallback reasons.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tiered_ir::{OpKind, ALL_OPS};

static COUNTING: AtomicBool = AtomicBool::new(false);

static TIER1_COUNTS: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];

thread_local! {
    static FALLBACK_REASONS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

static MISSES: AtomicU64 = AtomicU64::new(0);

/// Counts a failed quickening guard in tier 1.
#[inline]
pub fn count_miss() {
    MISSES.fetch_add(1, Ordering::Relaxed);
}

/// Failed quickening guards so far.
pub fn misses() -> u64 {
    MISSES.load(Ordering::Relaxed)
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

/// Tier-1 execution counts per op name.
pub fn op_counts() -> Vec<(&'static str, u64)> {
    ALL_OPS
        .iter()
        .map(|o| {
            (
                o.name,
                TIER1_COUNTS
                    .get(o.kind as usize)
                    .map(|c| c.load(Ordering::Relaxed))
                    .unwrap_or(0),
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
    for c in TIER1_COUNTS.iter() {
        c.store(0, Ordering::Relaxed);
    }
    MISSES.store(0, Ordering::Relaxed);
    FALLBACK_REASONS.with(|m| m.borrow_mut().clear());
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_cover_every_op() {
        assert!(tiered_ir::OpKind::COUNT <= super::TIER1_COUNTS.len());
    }
}
