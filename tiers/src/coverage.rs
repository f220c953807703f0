//! The op coverage table, derived from the op table and the frontend itself: which CPython
//! opcodes translate to each op, which tiers run it, and which opcodes are not translated.

use tiered_ir::{OpKind, ALL_OPS};

/// One row of the static coverage table.
pub struct CoverageRow {
    /// The op's name.
    pub op: &'static str,
    /// Its family (file under tiers/src/ops/).
    pub family: &'static str,
    /// Its doc line.
    pub doc: &'static str,
    /// CPython opcodes whose translation emits it.
    pub opcodes: Vec<&'static str>,
    /// Whether tier 1 runs it.
    pub interpreted: bool,
    /// Quickened variants.
    pub quickened: Vec<&'static str>,
    /// Native templates (the other variants and ops call their tier-1 helper).
    pub native: Vec<&'static str>,
}

/// The static table, one row per op.
pub fn table() -> Vec<CoverageRow> {
    let map = tiered_frontend::coverage::opcode_map();
    ALL_OPS
        .iter()
        .map(|o| CoverageRow {
            op: o.name,
            family: o.family,
            doc: o.doc.trim(),
            opcodes: map
                .iter()
                .filter(|(_, r)| matches!(r, Ok(ks) if ks.contains(&o.kind)))
                .map(|(n, _)| *n)
                .collect(),
            // Every op but Unsupported has a tier-1 implementation (interp::exec is exhaustive).
            interpreted: o.kind != OpKind::Unsupported,
            quickened: crate::quick::tiers_of(o.kind).0.to_vec(),
            native: crate::quick::tiers_of(o.kind).1.to_vec(),
        })
        .collect()
}

/// CPython opcodes that do not translate, with why.
pub fn untranslated() -> Vec<(&'static str, String)> {
    tiered_frontend::coverage::opcode_map()
        .into_iter()
        .filter_map(|(n, r)| r.err().map(|why| (n, why)))
        .collect()
}
