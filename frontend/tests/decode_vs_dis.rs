//! Cross-checks the bytecode decoder and exception-table parser against CPython's `dis`,
//! on real compiler output (see dis_fixture.py), and checks that the generated opcode
//! tables have not drifted from the interpreter.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tiered_frontend::decode::{decode, jump_target, opcode_name, Instr};
use tiered_frontend::exception_table::parse_exception_table;
use tiered_frontend::opcodes::{op, DEOPT, OPCODE_NAMES};

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("frontend/ lives inside the workspace")
        .to_path_buf()
}

/// Run a Python script from the workspace root and return its stdout, failing loudly.
fn run_python(args: &[&str]) -> Vec<u8> {
    let out = Command::new(python())
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} {args:?}: {e}", python()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}",
        python(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn as_u32(v: &Value) -> u32 {
    u32::try_from(v.as_u64().expect("non-negative integer")).expect("fits u32")
}

/// What decode should produce for one instruction, derived from dis's listing.
#[derive(Debug, PartialEq)]
struct Expected {
    start: u32,
    offset: u32,
    base: String,
    arg: u32,
    next: u32,
    target: Option<u32>,
}

/// Fold dis's rows (which list EXTENDED_ARG as its own instruction) into decode's shape,
/// checking our name and de-specialization tables against every raw opcode on the way.
fn expected_from_dis(rows: &[Value], code_units: u32, where_: &str) -> Vec<Expected> {
    let mut out: Vec<Expected> = Vec::new();
    let mut prefix_start: Option<u32> = None;
    for (k, row) in rows.iter().enumerate() {
        let offset = as_u32(&row[0]);
        let raw = u8::try_from(as_u32(&row[1])).expect("opcode byte");
        let name = row[2].as_str().expect("opname");
        let base = row[3].as_str().expect("base opname");
        assert_eq!(OPCODE_NAMES[usize::from(raw)], name, "{where_} @{offset}");
        assert_eq!(
            opcode_name(DEOPT[usize::from(raw)]),
            base,
            "{where_} @{offset}"
        );
        // The following instruction starts right after this one's caches, however dis lists it.
        let next = rows.get(k + 1).map_or(code_units, |r| as_u32(&r[0]));
        if base == "EXTENDED_ARG" {
            prefix_start.get_or_insert(offset);
            continue;
        }
        out.push(Expected {
            start: prefix_start.take().unwrap_or(offset),
            offset,
            base: base.to_owned(),
            arg: row[4]
                .as_u64()
                .map_or(0, |a| u32::try_from(a).expect("arg fits u32")),
            next,
            target: row[5]
                .as_u64()
                .map(|t| u32::try_from(t).expect("target fits u32")),
        });
    }
    out
}

fn actual(instrs: &[Instr]) -> Vec<Expected> {
    instrs
        .iter()
        .map(|i| Expected {
            start: i.start,
            offset: i.offset,
            base: opcode_name(i.opcode).to_owned(),
            arg: i.arg,
            next: i.next,
            target: jump_target(i),
        })
        .collect()
}

fn assert_same(expected: &[Expected], got: &[Expected], where_: &str) {
    for (e, g) in expected.iter().zip(got) {
        assert_eq!(e, g, "{where_}: first mismatch at offset {}", e.offset);
    }
    assert_eq!(expected.len(), got.len(), "{where_}: instruction count");
}

/// Tallies that prove the fixture still exercises what this test claims to check.
#[derive(Default)]
struct Coverage {
    codes: usize,
    adaptive_codes: usize,
    instrs: usize,
    base_ops: BTreeSet<String>,
    long_forward_jumps: usize,
    long_backward_jumps: usize,
    wide_args: usize,
    exception_entries: usize,
    lasti_entries: usize,
}

#[test]
fn decode_matches_dis_on_stdlib_and_synthetic_code() {
    let stdout = run_python(&["frontend/tests/dis_fixture.py"]);
    let fixture: Value = serde_json::from_slice(&stdout).expect("fixture prints JSON");
    let version = fixture["python_version"].as_str().expect("version");
    assert!(
        version.starts_with("3.11."),
        "fixture ran on Python {version}"
    );

    let mut cov = Coverage::default();
    for entry in fixture["codes"].as_array().expect("codes") {
        let where_ = entry["where"].as_str().expect("where");
        let code = hex(&entry["code"]);
        let units = u32::try_from(code.len() / 2).expect("small code");
        let decoded =
            decode(&code).unwrap_or_else(|e| panic!("{where_}: decode failed on co_code: {e}"));
        let rows = entry["instrs"].as_array().expect("instrs");
        let got = actual(&decoded);
        assert_same(&expected_from_dis(rows, units, where_), &got, where_);

        let table = hex(&entry["exceptiontable"]);
        let parsed = parse_exception_table(&table)
            .unwrap_or_else(|e| panic!("{where_}: exception table rejected: {e}"));
        let got_entries: Vec<_> = parsed
            .iter()
            .map(|e| (e.start * 2, e.end * 2, e.target * 2, e.depth, e.lasti))
            .collect();
        let want_entries: Vec<_> = entry["exceptions"]
            .as_array()
            .expect("exceptions")
            .iter()
            .map(|r| {
                let lasti = r[4].as_bool().expect("lasti");
                (
                    as_u32(&r[0]),
                    as_u32(&r[1]),
                    as_u32(&r[2]),
                    as_u32(&r[3]),
                    lasti,
                )
            })
            .collect();
        assert_eq!(got_entries, want_entries, "{where_}: exception table");

        if let Some(adaptive) = entry.get("adaptive") {
            let adaptive = hex(adaptive);
            let quick = decode(&adaptive)
                .unwrap_or_else(|e| panic!("{where_}: decode failed on _co_code_adaptive: {e}"));
            // Specialization rewrites opcodes and caches, never arguments or layout.
            assert_eq!(
                quick, decoded,
                "{where_}: adaptive and plain code decode differently"
            );
            let rows = entry["adaptive_instrs"]
                .as_array()
                .expect("adaptive_instrs");
            assert_same(
                &expected_from_dis(rows, units, where_),
                &actual(&quick),
                where_,
            );
            cov.adaptive_codes += 1;
        }

        cov.codes += 1;
        cov.instrs += decoded.len();
        cov.exception_entries += parsed.len();
        cov.lasti_entries += parsed.iter().filter(|e| e.lasti).count();
        for i in &decoded {
            cov.base_ops.insert(opcode_name(i.opcode).to_owned());
            if i.arg > 255 {
                cov.wide_args += 1;
                match jump_target(i) {
                    Some(t) if t > i.offset => cov.long_forward_jumps += 1,
                    Some(_) => cov.long_backward_jumps += 1,
                    None => {}
                }
            }
        }
    }

    assert!(cov.codes > 300, "only {} code objects", cov.codes);
    assert!(
        cov.adaptive_codes > 20,
        "only {} quickened code objects",
        cov.adaptive_codes
    );
    assert!(cov.instrs > 10_000, "only {} instructions", cov.instrs);
    assert!(cov.long_forward_jumps > 0 && cov.long_backward_jumps > 0);
    assert!(cov.wide_args > cov.long_forward_jumps + cov.long_backward_jumps);
    assert!(cov.exception_entries > 50 && cov.lasti_entries > 0);
    for name in [
        "FOR_ITER",
        "SEND",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP_IF_FALSE_OR_POP",
        "JUMP_IF_TRUE_OR_POP",
        "POP_JUMP_FORWARD_IF_FALSE",
        "POP_JUMP_FORWARD_IF_TRUE",
        "POP_JUMP_FORWARD_IF_NONE",
        "POP_JUMP_FORWARD_IF_NOT_NONE",
        "POP_JUMP_BACKWARD_IF_TRUE",
        "POP_JUMP_BACKWARD_IF_NOT_NONE",
    ] {
        assert!(cov.base_ops.contains(name), "fixture has no {name}");
    }
}

#[test]
fn specialized_numbers_match_the_running_interpreter() {
    let stdout = run_python(&["frontend/tests/dis_fixture.py"]);
    let fixture: Value = serde_json::from_slice(&stdout).expect("fixture prints JSON");
    let probes = fixture["probes"].as_array().expect("probes");
    let expected = [
        ("BINARY_OP_ADD_INT", op::BINARY_OP_ADD_INT, op::BINARY_OP),
        ("RESUME_QUICK", op::RESUME_QUICK, op::RESUME),
        (
            "LOAD_FAST__LOAD_FAST",
            op::LOAD_FAST__LOAD_FAST,
            op::LOAD_FAST,
        ),
        (
            "JUMP_BACKWARD_QUICK",
            op::JUMP_BACKWARD_QUICK,
            op::JUMP_BACKWARD,
        ),
        (
            "LOAD_GLOBAL_BUILTIN",
            op::LOAD_GLOBAL_BUILTIN,
            op::LOAD_GLOBAL,
        ),
        ("PRECALL_NO_KW_LEN", op::PRECALL_NO_KW_LEN, op::PRECALL),
        (
            "COMPARE_OP_INT_JUMP",
            op::COMPARE_OP_INT_JUMP,
            op::COMPARE_OP,
        ),
        (
            "EXTENDED_ARG_QUICK",
            op::EXTENDED_ARG_QUICK,
            op::EXTENDED_ARG,
        ),
    ];
    assert_eq!(probes.len(), expected.len());
    for (probe, (name, specialized, base)) in probes.iter().zip(expected) {
        assert_eq!(probe["expect"].as_str(), Some(name));
        assert_eq!(probe["base"].as_str(), Some(opcode_name(base)));
        // `raw` was written by CPython's C specializer, not computed by dis.
        let raw = u8::try_from(as_u32(&probe["raw"])).expect("opcode byte");
        assert_eq!(raw, specialized, "{name}: CPython wrote {raw}");
        assert_eq!(DEOPT[usize::from(raw)], base, "{name}");
    }
}

#[test]
fn generated_opcode_tables_are_up_to_date() {
    run_python(&["scripts/gen_opcodes.py", "--check"]);
}
