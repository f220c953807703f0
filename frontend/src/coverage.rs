//! Which IR ops each CPython opcode translates to, found by translating each opcode on its
//! own (after enough stack to consume) rather than kept by hand: the coverage report and its
//! snapshot stay true to the translator.

use crate::code::CodeInfo;
use crate::opcodes::{
    op, DEOPT, HAS_JREL, HAVE_ARGUMENT, INLINE_CACHE_ENTRIES, IS_BACKWARD_JUMP, OPCODE_NAMES,
};
use crate::translate::translate;
use tiered_ir::{ConstRepr, OpKind};

/// The argument that makes a lone instruction of `opcode` well formed in the probe code.
fn probe_arg(opcode: u8) -> u8 {
    match opcode {
        // Locals-plus of the probe: a (argument), u (unbound local), c (cell), f (free).
        op::LOAD_FAST | op::DELETE_FAST => 1,
        // A constant not loaded before, so its Const is emitted here.
        op::LOAD_CONST => 1,
        op::LOAD_DEREF | op::STORE_DEREF | op::DELETE_DEREF | op::MAKE_CELL | op::LOAD_CLOSURE => 2,
        op::COPY_FREE_VARS => 1,
        op::BUILD_SLICE => 2,
        op::COPY | op::SWAP | op::RAISE_VARARGS | op::UNPACK_SEQUENCE => 1,
        op::LIST_APPEND
        | op::SET_ADD
        | op::MAP_ADD
        | op::LIST_EXTEND
        | op::SET_UPDATE
        | op::DICT_UPDATE
        | op::DICT_MERGE => 1,
        // Forward jumps skip the fall-through RETURN_VALUE, so each path ends on its own.
        o if HAS_JREL[o as usize] && !IS_BACKWARD_JUMP[o as usize] => 1,
        _ => 0,
    }
}

/// For every base opcode of this CPython: the ops its translation emits (possibly none,
/// for pure stack shuffles), or why it is not translated.
pub fn opcode_map() -> Vec<(&'static str, Result<Vec<OpKind>, String>)> {
    let mut out = Vec::new();
    for opcode in 0..=255u8 {
        let name = OPCODE_NAMES[opcode as usize];
        if name.starts_with('<') || DEOPT[opcode as usize] != opcode || opcode == op::CACHE {
            continue;
        }
        let mut code = Vec::new();
        for _ in 0..8 {
            code.extend_from_slice(&[op::LOAD_CONST, 0]);
        }
        let at = (code.len() / 2) as u32;
        code.extend_from_slice(&[
            opcode,
            if opcode >= HAVE_ARGUMENT {
                probe_arg(opcode)
            } else {
                0
            },
        ]);
        for _ in 0..INLINE_CACHE_ENTRIES[opcode as usize] {
            code.extend_from_slice(&[0, 0]);
        }
        code.extend_from_slice(&[op::RETURN_VALUE, 0, op::LOAD_CONST, 0, op::RETURN_VALUE, 0]);
        let mut info = CodeInfo {
            qualname: "probe".into(),
            code,
            consts: vec![ConstRepr::Int(0), ConstRepr::Int(1)],
            names: vec!["n".into()],
            argcount: 1,
            ..CodeInfo::default()
        };
        info.set_locals(&["a".into(), "u".into()], &["c".into()], &["f".into()]);
        // Suspensions only make sense in a generator's code.
        if matches!(
            opcode,
            op::YIELD_VALUE | op::RETURN_GENERATOR | op::SEND | op::GET_YIELD_FROM_ITER
        ) {
            info.flags = crate::code::flags::GENERATOR;
        }
        if matches!(
            opcode,
            op::GET_AWAITABLE | op::BEFORE_ASYNC_WITH | op::GET_AITER | op::GET_ANEXT
        ) {
            info.flags = crate::code::flags::COROUTINE;
        }
        if opcode == op::ASYNC_GEN_WRAP {
            info.flags = crate::code::flags::ASYNC_GENERATOR;
        }
        let t = translate(&info);
        let result = match t.unsupported.iter().find(|u| u.offset == at) {
            Some(u) => Err(u.reason.clone()),
            None if !t.unsupported.is_empty() => Err(t.unsupported[0].reason.clone()),
            None => {
                let mut kinds: Vec<OpKind> = t
                    .func
                    .insts
                    .values()
                    .filter(|i| i.offset == at)
                    .map(|i| i.op.kind())
                    .collect();
                kinds.sort();
                kinds.dedup();
                Ok(kinds)
            }
        };
        out.push((name, result));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_op_maps_to_binary() {
        let m = opcode_map();
        let find = |n: &str| m.iter().find(|(k, _)| *k == n).map(|(_, r)| r.clone());
        assert_eq!(find("BINARY_OP"), Some(Ok(vec![OpKind::Binary])));
        assert_eq!(find("FOR_ITER"), Some(Ok(vec![OpKind::ForIter])));
        assert_eq!(find("YIELD_VALUE"), Some(Ok(vec![OpKind::Thrown])));
        assert_eq!(find("SEND"), Some(Ok(vec![OpKind::Send])));
        assert_eq!(find("GET_AWAITABLE"), Some(Ok(vec![OpKind::GetAwaitable])));
        assert_eq!(find("ASYNC_GEN_WRAP"), Some(Ok(vec![OpKind::AsyncGenWrap])));
        assert_eq!(find("MATCH_CLASS"), Some(Ok(vec![OpKind::MatchClass])));
    }
}
