//! tiered's IR: SSA functions over a petgraph CFG, one op table from which everything
//! about ops is derived, a stable printer and a verifier. Knows nothing of CPython.

pub mod function;
pub mod kinds;
pub mod ops;
pub mod passes;
pub mod printer;
pub mod verifier;

pub use function::{
    Block, BlockCall, BlockData, ConstRepr, Function, Inst, InstData, Terminator, Value, ValueDef,
};
pub use kinds::*;
pub use ops::{Arity, Effect, Op, OpInfo, OpKind, ALL_OPS};
