//! Decoding of CPython 3.11 bytecode (`co_code` or `_co_code_adaptive`) into instructions.
//!
//! 3.11 bytecode is a sequence of 2-byte code units `(opcode, arg)`. `EXTENDED_ARG` prefixes
//! supply the high bytes of the next argument, and some instructions are followed by inline
//! `CACHE` units that the interpreter uses for specialization; both are folded away here.
//! Input may come from a hand-made code object, so every malformation is an error, never a
//! panic.

use std::fmt;

use crate::opcodes::{
    DEOPT, EXTENDED_ARG, HAS_JREL, HAVE_ARGUMENT, INLINE_CACHE_ENTRIES, IS_BACKWARD_JUMP,
    OPCODE_NAMES,
};

/// One decoded instruction. Offsets are in code units (2 bytes), as in CPython's `f_lasti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instr {
    /// Offset of the first `EXTENDED_ARG` prefix, or of the opcode itself if it has none.
    pub start: u32,
    /// Offset of the opcode itself.
    pub offset: u32,
    /// De-specialized base opcode.
    pub opcode: u8,
    /// Argument with `EXTENDED_ARG` prefixes applied; 0 for opcodes below `HAVE_ARGUMENT`.
    pub arg: u32,
    /// Offset of the following instruction, after this one's inline `CACHE` entries.
    pub next: u32,
}

/// Why a bytecode string could not be decoded; every variant names the offending offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The byte length is odd, so the last code unit is incomplete.
    OddLength,
    /// The code is longer than `u32::MAX` code units.
    TooLong {
        /// Length of the code in code units.
        units: usize,
    },
    /// The instruction (or its `EXTENDED_ARG` prefix) at `offset` runs past the end of the
    /// code: a dangling prefix, or missing inline cache entries.
    Truncated {
        /// Offset of the first code unit of the incomplete instruction.
        offset: u32,
    },
    /// The argument built by `EXTENDED_ARG` prefixes does not fit CPython's `int` oparg.
    ArgOverflow {
        /// Offset of the code unit whose argument byte overflowed.
        offset: u32,
    },
    /// A relative jump lands outside the code or not on the start of an instruction.
    BadJumpTarget {
        /// Offset of the jump opcode.
        offset: u32,
        /// The computed target, possibly negative or past the end.
        target: i64,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::OddLength => write!(f, "bytecode has an odd number of bytes"),
            DecodeError::TooLong { units } => {
                write!(f, "bytecode is too long ({units} code units)")
            }
            DecodeError::Truncated { offset } => write!(
                f,
                "instruction at offset {offset} runs past the end of the bytecode"
            ),
            DecodeError::ArgOverflow { offset } => write!(
                f,
                "EXTENDED_ARG chain at offset {offset} builds an argument above 2**31-1"
            ),
            DecodeError::BadJumpTarget { offset, target } => write!(
                f,
                "jump at offset {offset} targets {target}, which is not the start of an instruction"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Name of an opcode number, specializations included (`"<N>"` for unused numbers).
pub fn opcode_name(op: u8) -> &'static str {
    OPCODE_NAMES[usize::from(op)]
}

/// Target offset of a relative jump, or `None` if `i` is not a jump (or the target would be
/// negative or overflow, which `decode` never produces).
///
/// 3.11's `JUMPBY` moves `next_instr`, which already points just past the opcode's own code
/// unit, so the target is `offset + 1 ± arg` (the same as `dis`). No 3.11 jump has inline
/// caches, so this also equals `next ± arg`.
pub fn jump_target(i: &Instr) -> Option<u32> {
    let op = usize::from(i.opcode);
    if !HAS_JREL[op] {
        return None;
    }
    let base = i.offset.checked_add(1)?;
    if IS_BACKWARD_JUMP[op] {
        base.checked_sub(i.arg)
    } else {
        base.checked_add(i.arg)
    }
}

/// Decode `co_code` or `_co_code_adaptive` into instructions, de-specializing opcodes,
/// folding `EXTENDED_ARG` prefixes and skipping inline `CACHE` entries.
///
/// Unknown opcode numbers decode like any other (no argument below `HAVE_ARGUMENT`, no
/// caches); rejecting them is the translator's job. Every jump is checked to land on the
/// `start` of a decoded instruction, so callers can map targets to instructions freely.
pub fn decode(code: &[u8]) -> Result<Vec<Instr>, DecodeError> {
    if !code.len().is_multiple_of(2) {
        return Err(DecodeError::OddLength);
    }
    let units = u32::try_from(code.len() / 2).map_err(|_| DecodeError::TooLong {
        units: code.len() / 2,
    })?;
    let mut instrs = Vec::with_capacity(code.len() / 2);
    // High bytes gathered from EXTENDED_ARG prefixes, already shifted into place.
    let mut extended: u32 = 0;
    let mut prefix_start: Option<u32> = None;
    let mut pos: u32 = 0;
    while pos < units {
        let byte_pos = pos as usize * 2;
        let Some(&[raw, arg_byte]) = code.get(byte_pos..byte_pos + 2) else {
            return Err(DecodeError::Truncated { offset: pos });
        };
        // Specialized opcodes keep their base's argument and cache layout.
        let opcode = DEOPT[usize::from(raw)];
        let start = prefix_start.unwrap_or(pos);
        if opcode == EXTENDED_ARG {
            let partial = extended | u32::from(arg_byte);
            // Shifting would drop high bits: CPython's int oparg would be garbage by now.
            if partial > 0x00FF_FFFF {
                return Err(DecodeError::ArgOverflow { offset: pos });
            }
            extended = partial << 8;
            prefix_start = Some(start);
            // EXTENDED_ARG has no inline caches.
            pos += 1;
            continue;
        }
        // An argument-less opcode ignores the prefix and resets it, as in ceval and dis.
        let arg = if opcode >= HAVE_ARGUMENT {
            extended | u32::from(arg_byte)
        } else {
            0
        };
        if arg > i32::MAX as u32 {
            return Err(DecodeError::ArgOverflow { offset: pos });
        }
        extended = 0;
        prefix_start = None;
        let caches = u32::from(INLINE_CACHE_ENTRIES[usize::from(opcode)]);
        let next = pos
            .checked_add(1 + caches)
            .filter(|&next| next <= units)
            .ok_or(DecodeError::Truncated { offset: start })?;
        instrs.push(Instr {
            start,
            offset: pos,
            opcode,
            arg,
            next,
        });
        pos = next;
    }
    if let Some(offset) = prefix_start {
        return Err(DecodeError::Truncated { offset });
    }
    check_jumps(&instrs, units)?;
    Ok(instrs)
}

/// Reject jumps that leave the code or land inside an instruction (on a cache entry or
/// after an `EXTENDED_ARG` prefix), which compiler output never does.
fn check_jumps(instrs: &[Instr], units: u32) -> Result<(), DecodeError> {
    let mut is_start = vec![false; units as usize];
    for i in instrs {
        if let Some(slot) = is_start.get_mut(i.start as usize) {
            *slot = true;
        }
    }
    for i in instrs.iter().filter(|i| HAS_JREL[usize::from(i.opcode)]) {
        let lands_on_start = jump_target(i)
            .and_then(|t| is_start.get(t as usize).copied())
            .unwrap_or(false);
        if !lands_on_start {
            let delta = i64::from(i.arg);
            let base = i64::from(i.offset) + 1;
            let target = if IS_BACKWARD_JUMP[usize::from(i.opcode)] {
                base - delta
            } else {
                base + delta
            };
            return Err(DecodeError::BadJumpTarget {
                offset: i.offset,
                target,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcodes::op;

    fn bytes(units: &[(u8, u8)]) -> Vec<u8> {
        units.iter().flat_map(|&(op, arg)| [op, arg]).collect()
    }

    #[test]
    fn simple_function_with_caches() {
        // def f(a, b): return a + b
        let code = bytes(&[
            (op::RESUME, 0),
            (op::LOAD_FAST, 0),
            (op::LOAD_FAST, 1),
            (op::BINARY_OP, 0),
            (op::CACHE, 0),
            (op::RETURN_VALUE, 0),
        ]);
        let instrs = decode(&code).expect("valid code");
        let summary: Vec<_> = instrs
            .iter()
            .map(|i| (i.start, i.offset, opcode_name(i.opcode), i.arg, i.next))
            .collect();
        assert_eq!(
            summary,
            [
                (0, 0, "RESUME", 0, 1),
                (1, 1, "LOAD_FAST", 0, 2),
                (2, 2, "LOAD_FAST", 1, 3),
                (3, 3, "BINARY_OP", 0, 5),
                (5, 5, "RETURN_VALUE", 0, 6),
            ]
        );
    }

    #[test]
    fn specialized_opcodes_are_despecialized_and_keep_cache_layout() {
        // Cache units of a quickened instruction hold live counters: they must be skipped,
        // not decoded, whatever they contain.
        let code = bytes(&[
            (op::RESUME_QUICK, 0),
            (op::LOAD_FAST__LOAD_FAST, 0),
            (op::LOAD_FAST, 1),
            (op::BINARY_OP_ADD_INT, 0),
            (0xff, 0xff),
            (op::LOAD_GLOBAL_BUILTIN, 3),
            (op::EXTENDED_ARG, 0x12),
            (op::POP_TOP, 0x34),
            (op::POP_TOP, 0x56),
            (op::STORE_FAST, 0x78),
            (op::CACHE, 0),
            (op::RETURN_VALUE, 0),
        ]);
        let instrs = decode(&code).expect("valid code");
        let ops: Vec<_> = instrs.iter().map(|i| opcode_name(i.opcode)).collect();
        assert_eq!(
            ops,
            [
                "RESUME",
                "LOAD_FAST",
                "LOAD_FAST",
                "BINARY_OP",
                "LOAD_GLOBAL",
                "RETURN_VALUE"
            ]
        );
        assert_eq!(instrs[4].arg, 3);
        assert_eq!((instrs[4].offset, instrs[4].next), (5, 11));
    }

    #[test]
    fn extended_arg_chains_fold_into_the_next_instruction() {
        let code = bytes(&[
            (op::NOP, 0),
            (op::EXTENDED_ARG, 0x01),
            (op::EXTENDED_ARG_QUICK, 0x02),
            (op::EXTENDED_ARG, 0x03),
            (op::LOAD_CONST, 0x04),
            (op::RETURN_VALUE, 0),
        ]);
        let instrs = decode(&code).expect("valid code");
        assert_eq!(instrs.len(), 3);
        let load = instrs[1];
        assert_eq!(
            (load.start, load.offset, load.opcode, load.arg, load.next),
            (1, 4, op::LOAD_CONST, 0x0102_0304, 5)
        );
    }

    #[test]
    fn argless_opcode_drops_the_prefix() {
        let code = bytes(&[(op::EXTENDED_ARG, 7), (op::POP_TOP, 9), (op::LOAD_CONST, 1)]);
        let instrs = decode(&code).expect("valid code");
        assert_eq!((instrs[0].start, instrs[0].arg), (0, 0));
        assert_eq!((instrs[1].start, instrs[1].arg), (2, 1));
    }

    #[test]
    fn oversized_extended_arg_chains_are_rejected() {
        // Four non-zero prefix bytes would shift bits out of a 32-bit oparg.
        let code = bytes(&[
            (op::EXTENDED_ARG, 1),
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0),
            (op::LOAD_CONST, 0),
        ]);
        assert_eq!(decode(&code), Err(DecodeError::ArgOverflow { offset: 3 }));
        // 0x80 in the top byte makes CPython's int oparg negative.
        let code = bytes(&[
            (op::EXTENDED_ARG, 0x80),
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0),
            (op::LOAD_CONST, 0),
        ]);
        assert_eq!(decode(&code), Err(DecodeError::ArgOverflow { offset: 3 }));
        // Leading zero prefixes are redundant but harmless.
        let code = bytes(&[
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0x7f),
            (op::EXTENDED_ARG, 0),
            (op::EXTENDED_ARG, 0),
            (op::LOAD_CONST, 5),
        ]);
        let instrs = decode(&code).expect("valid code");
        assert_eq!((instrs[0].start, instrs[0].arg), (0, 0x7f00_0005));
    }

    #[test]
    fn jump_targets_count_from_just_past_the_opcode() {
        let code = bytes(&[
            (op::NOP, 0),                      // 0
            (op::POP_JUMP_FORWARD_IF_TRUE, 1), // 1 -> 3
            (op::NOP, 0),                      // 2
            (op::JUMP_BACKWARD, 4),            // 3 -> 0
            (op::RETURN_VALUE, 0),             // 4
        ]);
        let instrs = decode(&code).expect("valid code");
        let targets: Vec<_> = instrs.iter().map(jump_target).collect();
        assert_eq!(targets, [None, Some(3), None, Some(0), None]);
    }

    #[test]
    fn jumps_with_extended_arg_count_from_the_opcode_not_the_prefix() {
        let mut units = vec![(op::EXTENDED_ARG, 1), (op::JUMP_FORWARD, 0)];
        units.extend(std::iter::repeat_n((op::NOP, 0), 256));
        units.push((op::NOP, 0)); // offset 258 = 1 + 1 + 256
        units.push((op::EXTENDED_ARG, 1));
        units.push((op::JUMP_BACKWARD_QUICK, 3)); // 260 + 1 - 259 = 2
        let instrs = decode(&bytes(&units)).expect("valid code");
        assert_eq!(jump_target(&instrs[0]), Some(258));
        let back = instrs.last().expect("non-empty");
        assert_eq!(back.opcode, op::JUMP_BACKWARD);
        assert_eq!(jump_target(back), Some(2));
    }

    #[test]
    fn no_jump_has_inline_caches() {
        // jump_target relies on offset + 1 being the same as next for every jump.
        for op in 0..=255u8 {
            if HAS_JREL[usize::from(op)] {
                assert_eq!(INLINE_CACHE_ENTRIES[usize::from(DEOPT[usize::from(op)])], 0);
            }
        }
    }

    #[test]
    fn bad_jumps_are_rejected() {
        let past_end = bytes(&[(op::JUMP_FORWARD, 5), (op::RETURN_VALUE, 0)]);
        assert_eq!(
            decode(&past_end),
            Err(DecodeError::BadJumpTarget {
                offset: 0,
                target: 6
            })
        );
        let negative = bytes(&[(op::NOP, 0), (op::JUMP_BACKWARD, 9)]);
        assert_eq!(
            decode(&negative),
            Err(DecodeError::BadJumpTarget {
                offset: 1,
                target: -7
            })
        );
        let into_cache = bytes(&[
            (op::JUMP_BACKWARD, 0),
            (op::BINARY_OP, 0),
            (op::CACHE, 0),
            (op::JUMP_BACKWARD, 2),
        ]);
        // The first jump lands on BINARY_OP (0 + 1 - 0); the last on its cache unit.
        assert_eq!(
            decode(&into_cache),
            Err(DecodeError::BadJumpTarget {
                offset: 3,
                target: 2
            })
        );
        let after_prefix = bytes(&[(op::EXTENDED_ARG, 0), (op::NOP, 0), (op::JUMP_BACKWARD, 2)]);
        assert_eq!(
            decode(&after_prefix),
            Err(DecodeError::BadJumpTarget {
                offset: 2,
                target: 1
            })
        );
    }

    #[test]
    fn truncated_and_odd_inputs() {
        assert_eq!(decode(&[]), Ok(vec![]));
        assert_eq!(decode(&[op::NOP]), Err(DecodeError::OddLength));
        assert_eq!(
            decode(&bytes(&[(op::NOP, 0), (op::EXTENDED_ARG, 1)])),
            Err(DecodeError::Truncated { offset: 1 })
        );
        assert_eq!(
            decode(&bytes(&[
                (op::EXTENDED_ARG, 0),
                (op::LOAD_GLOBAL, 0),
                (op::CACHE, 0)
            ])),
            Err(DecodeError::Truncated { offset: 0 })
        );
    }

    #[test]
    fn unknown_opcodes_decode() {
        let code = bytes(&[(0xfe, 3), (0xb5, 4), (op::CACHE, 9)]);
        let instrs = decode(&code).expect("unknown opcodes are the translator's problem");
        assert_eq!((instrs[0].arg, instrs[1].arg), (3, 4));
        assert_eq!(opcode_name(0xfe), "<254>");
        // CACHE itself is just opcode 0 without an argument when it is not skipped.
        assert_eq!(instrs[2].arg, 0);
        assert_eq!(instrs[2].opcode, op::CACHE);
    }

    #[test]
    fn garbage_never_panics() {
        // A small xorshift generator keeps the test deterministic without a dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut code: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 {
                // Bias towards interesting opcodes.
                for (k, b) in code.iter_mut().enumerate().step_by(2) {
                    if k % 4 == 0 {
                        *b = [
                            EXTENDED_ARG,
                            op::JUMP_BACKWARD,
                            op::LOAD_METHOD,
                            op::FOR_ITER,
                        ][(next() % 4) as usize];
                    }
                }
            }
            if let Ok(instrs) = decode(&code) {
                for i in &instrs {
                    assert!(i.start <= i.offset && i.offset < i.next);
                    assert!(i.next as usize * 2 <= code.len());
                    if HAS_JREL[usize::from(i.opcode)] {
                        assert!(jump_target(i).is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn errors_display_their_offset() {
        let msg = DecodeError::Truncated { offset: 7 }.to_string();
        assert!(msg.contains("offset 7"), "{msg}");
    }
}
