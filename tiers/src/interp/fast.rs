//! Tier 1's fast path: the most frequent ops when their quickened form applies, in a
//! function with a small frame. `exec_other`, which has every op's arm, spends about 50
//! instructions a call on its frame alone (six registers saved, 800 bytes of stack,
//! operand bounds and boxing checks); what misses here, and every other op, goes on to
//! it, which tries the quickened form again and takes its miss.

use super::{Ctx, Failure};
use crate::lower::LInst;
use crate::ops;
use crate::quick::Quick;
use crate::value::Value;
use tiered_ir::Op;

/// Whether `exec_fast` may run `op`.
#[inline(always)]
pub(super) fn handles(op: Op) -> bool {
    matches!(
        op,
        Op::Const { .. }
            | Op::Null {}
            | Op::LoadGlobal { .. }
            | Op::LoadAttr { .. }
            | Op::StoreAttr { .. }
            | Op::LoadMethod { .. }
            | Op::Binary { .. }
            | Op::Compare { .. }
            | Op::Subscr {}
            | Op::ForIter {}
    )
}

/// Runs op `op`, the instruction at `pc`, if it is one of the frequent ones and its
/// quickened form (or its whole work, for Const and Null) applies: `Some` with the
/// outcome; `None` when it did not, with nothing changed.
///
/// # Safety
/// As `exec`: GIL held; `regs` is the activation's register file.
#[inline(never)]
pub(super) unsafe fn exec_fast(
    ctx: &Ctx,
    op: Op,
    inst: &LInst,
    pc: usize,
    regs: &mut [Value],
) -> Option<Result<(), Failure>> {
    let ops_ix =
        &ctx.compiled.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize];
    let dst = inst.dst as usize;
    let q = &ctx.compiled.quick[pc];
    // Of the ops whose operands `exec` boxes first (not `reads_unboxed`), the quickened
    // forms take an unboxed number for NULL and miss: `exec_other` boxes it and goes on.
    let done = |r: Option<Value>, regs: &mut [Value]| {
        r.map(|v| {
            regs[dst] = v;
            Ok(())
        })
    };
    match (op, q.get()) {
        (Op::Const { index }, _) => Some(match ops::values::load_const(ctx, index) {
            Ok(v) => {
                regs[dst] = v;
                Ok(())
            }
            Err(_) => Err(Failure::New),
        }),
        (Op::Null {}, _) => {
            regs[dst] = Value::Null;
            Some(Ok(()))
        }
        (Op::LoadGlobal { .. }, Quick::Global(c)) => {
            done(ops::globals::load_global_quick(ctx, pc, c), regs)
        }
        (Op::LoadAttr { .. }, Quick::Attr(v)) => {
            let r = ops::attrs::load_attr_quick(v, &regs[ops_ix[0] as usize]);
            done(r, regs)
        }
        (Op::StoreAttr { .. }, Quick::Attr(v)) => {
            let (o, value) = (&regs[ops_ix[0] as usize], &regs[ops_ix[1] as usize]);
            ops::attrs::store_attr_quick(v, o, value).map(Ok)
        }
        (Op::LoadMethod { .. }, Quick::Method(v)) => {
            let (m, s) = ops::attrs::load_method_quick(v, &regs[ops_ix[0] as usize])?;
            regs[dst] = m;
            regs[dst + 1] = s;
            Some(Ok(()))
        }
        (Op::Binary { op }, Quick::Binary(v)) => {
            let (a, b) = (&regs[ops_ix[0] as usize], &regs[ops_ix[1] as usize]);
            done(ops::arith::binary_quick(op, v, a, b), regs)
        }
        // A frame at the recursion limit compares in `exec` (see there).
        (Op::Compare { op, .. }, Quick::Compare(v)) if !ctx.tstate.at_recursion_limit() => {
            let (a, b) = (&regs[ops_ix[0] as usize], &regs[ops_ix[1] as usize]);
            done(ops::compare::compare_quick(op, v, a, b), regs)
        }
        (Op::Subscr {}, Quick::Subscr(v)) => {
            let (o, k) = (&regs[ops_ix[0] as usize], &regs[ops_ix[1] as usize]);
            Some(match ops::subscr::subscr_quick(v, o, k)? {
                Ok(r) => {
                    regs[dst] = r;
                    Ok(())
                }
                Err(_) => Err(Failure::New),
            })
        }
        (Op::ForIter {}, Quick::ForIter(v)) => {
            Some(
                match ops::iter::for_iter_quick(v, &regs[ops_ix[0] as usize])? {
                    Ok(item) => {
                        // As `exec`: exhausted, the item register keeps what it holds.
                        let exhausted = item.is_null();
                        if !exhausted {
                            regs[dst] = item;
                        }
                        regs[dst + 1] = Value::Bool(exhausted);
                        Ok(())
                    }
                    Err(_) => Err(Failure::New),
                },
            )
        }
        _ => None,
    }
}
