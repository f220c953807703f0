//! Snapshots (insta, in snapshots/ir/) of the IR of a broad set of functions, translated
//! from the running interpreter's own bytecode. Each case also asserts the ops it is about
//! appear in its IR, so a snapshot cannot silently stop testing them.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use tiered_frontend::lines::LineTable;
use tiered_frontend::{translate, CodeInfo};
use tiered_ir::{printer, verifier, ConstRepr};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|s| s.as_str().expect("str").to_string())
        .collect()
}

fn const_repr(c: &Value) -> ConstRepr {
    let v = &c["v"];
    match c["t"].as_str().expect("tag") {
        "singleton" => ConstRepr::Singleton(match v.as_str().expect("name") {
            "None" => "None",
            "True" => "True",
            "False" => "False",
            _ => "Ellipsis",
        }),
        "int" => ConstRepr::Int(v.as_i64().expect("int")),
        "bigint" => ConstRepr::BigInt(v.as_str().expect("str").into()),
        "float" => ConstRepr::Float(v.as_f64().expect("float")),
        "str" => ConstRepr::Str(v.as_str().expect("str").into()),
        _ => ConstRepr::Other(v.as_str().expect("str").into()),
    }
}

fn code_info(c: &Value) -> CodeInfo {
    let hex = |s: &Value| {
        let s = s.as_str().expect("hex");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>()
    };
    let num = |k: &str| c[k].as_u64().expect("number") as u32;
    let mut info = CodeInfo {
        qualname: c["qualname"].as_str().expect("qualname").into(),
        code: hex(&c["code"]),
        exception_table: hex(&c["exception_table"]),
        consts: c["consts"]
            .as_array()
            .expect("consts")
            .iter()
            .map(const_repr)
            .collect(),
        names: strings(&c["names"]),
        argcount: num("argcount"),
        posonlyargcount: num("posonlyargcount"),
        kwonlyargcount: num("kwonlyargcount"),
        flags: num("flags"),
        lines: LineTable::new(
            c["lines"]
                .as_array()
                .expect("lines")
                .iter()
                .map(|l| l.as_i64().expect("line") as i32)
                .collect(),
        ),
        ..CodeInfo::default()
    };
    info.set_locals(
        &strings(&c["varnames"]),
        &strings(&c["cellvars"]),
        &strings(&c["freevars"]),
    );
    info
}

#[test]
fn ir_snapshots() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("frontend/tests/ir_fixture.py")
        .current_dir(root())
        .output()
        .expect("run the IR fixture");
    assert!(
        out.status.success(),
        "fixture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Value = serde_json::from_slice(&out.stdout).expect("fixture JSON");
    let cases = cases.as_array().expect("case list");
    assert!(cases.len() >= 18, "the fixture lost cases");
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let info = code_info(&case["code"]);
        let t = translate(&info);
        if t.unsupported.is_empty() {
            verifier::verify(&t.func).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let mut text = printer::print_function(&t.func, &|o| info.lines.line_at(o));
        for u in &t.unsupported {
            text.push_str(&format!(
                "unsupported: {} at {}: {}\n",
                u.op, u.offset, u.reason
            ));
        }
        for op in strings(&case["ops"]) {
            assert!(
                text.contains(&format!(" {op}")) || text.contains(&format!("= {op}")),
                "{name}: IR has no {op}:\n{text}"
            );
        }
        insta::with_settings!({snapshot_path => root().join("snapshots/ir"), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, text);
        });
    }
}
