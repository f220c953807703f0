//! The static op coverage table, snapshotted (snapshots/coverage.snap) so that a change in
//! what translates to what, or in which tiers run an op, shows in review.

use tiered_tiers::coverage;

#[test]
fn coverage_table_snapshot() {
    let mut text = String::new();
    for r in coverage::table() {
        text.push_str(&format!(
            "{:<20} {:<12} interp={:<5} quickened=[{}] native=[{}] from [{}]\n",
            r.op,
            r.family,
            r.interpreted,
            r.quickened.join(", "),
            r.native.join(", "),
            r.opcodes.join(", ")
        ));
    }
    text.push_str("\nuntranslated opcodes:\n");
    for (op, why) in coverage::untranslated() {
        text.push_str(&format!("{op:<22} {why}\n"));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
    insta::with_settings!({snapshot_path => root, prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("coverage", text);
    });
}

#[test]
fn every_translated_opcode_has_an_interpreted_op() {
    for r in coverage::table() {
        if !r.opcodes.is_empty() {
            assert!(
                r.interpreted,
                "{} is emitted by the frontend but tier 1 cannot run it",
                r.op
            );
        }
    }
}
