//! CPython 3.11 bytecode to tiered's SSA IR. Pure Rust: the caller supplies the code
//! object's contents as plain data (`CodeInfo`).

pub mod code;
pub mod coverage;
pub mod decode;
pub mod exception_table;
pub mod lines;
pub mod opcodes;
pub mod translate;

pub use code::CodeInfo;
pub use translate::{translate, Translation, Unsupported};
