//! Native templates of the quickened attribute ops (LoadAttr, StoreAttr, LoadMethod): the
//! same guards as their tier-1 forms in `mod.rs`, in Cranelift IR.

use super::*;
use crate::cpy::dict::{
    DICT_KEYS, DICT_VALUES, INLINE_VALUES, KEYS_INDICES, KEYS_KIND, KEYS_LOG2_INDEX_BYTES,
    KEYS_NENTRIES, KIND_SPLIT, KIND_UNICODE, MANAGED_DICT, UNICODE_ENTRY, VALUES_ORDER_SIZE,
};

/// Native guards: register `r` holds an object of exactly type `tp`, whose version tag is
/// still `version`; returns the object. A version tag (never 0 once specialized on)
/// names one type in one state: CPython never gives a tag twice, and a modified type's
/// is 0 until it gets a new one. So the tag of the object's type alone is the guard, as
/// in CPython's own specializations (LOAD_ATTR_INSTANCE_VALUE), without comparing the
/// type's address too: about 20 bytes less at every such guard, on the hot path.
fn emit_type_guards(
    e: &mut crate::native::emit::Emit,
    r: u32,
    tp: *mut ffi::PyTypeObject,
    version: u32,
    fail: cranelift_codegen::ir::Block,
) -> cranelift_codegen::ir::Value {
    let (p, ty) = emit_object_and_type(e, r, fail);
    if version == 0 {
        // (Never specialized on: a zero tag does not tell types apart.)
        e.guard_eq(ty, tp as i64, fail);
    }
    emit_version_guard(e, ty, version, fail);
    p
}

/// Register `r` as an object (else to `fail`) and that object's type.
fn emit_object_and_type(
    e: &mut crate::native::emit::Emit,
    r: u32,
    fail: cranelift_codegen::ir::Block,
) -> (cranelift_codegen::ir::Value, cranelift_codegen::ir::Value) {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::InstBuilder;
    let t = e.tag(r);
    e.guard_eq(t, tag::OBJ as i64, fail);
    let p = e.payload(r, e.ptr);
    let ty = e.b.ins().load(e.ptr, mem(), p, 8);
    (p, ty)
}

/// Native dispatch of a polymorphic site: register `r` must hold an object whose exact
/// type is one of `guards`' (tested in order), else `fail`. For the i-th, with its
/// version tag guarded, `arm(e, i, p)` emits that entry's code and returns the value it
/// hands on. Returns the object and the value of the arm that ran.
fn emit_type_switch(
    e: &mut crate::native::emit::Emit,
    r: u32,
    guards: &[(*mut ffi::PyTypeObject, u32)],
    fail: cranelift_codegen::ir::Block,
    mut arm: impl FnMut(
        &mut crate::native::emit::Emit,
        usize,
        cranelift_codegen::ir::Value,
    ) -> cranelift_codegen::ir::Value,
) -> (cranelift_codegen::ir::Value, cranelift_codegen::ir::Value) {
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{BlockArg, InstBuilder};
    let (p, ty) = emit_object_and_type(e, r, fail);
    // By version tag where every entry has one (`emit_type_guards`): one 32-bit compare
    // an entry, and the version is guarded with it.
    let by_version = guards.iter().all(|&(_, version)| version != 0);
    let key = match by_version {
        true => emit_version_of(e, ty),
        false => ty,
    };
    let found = e.b.create_block();
    e.b.append_block_param(found, e.ptr);
    for (i, &(tp, version)) in guards.iter().enumerate() {
        let this = e.b.create_block();
        let next = e.b.create_block();
        let is = match by_version {
            true => e.b.ins().icmp_imm_s(IntCC::Equal, key, version as i64),
            false => e.b.ins().icmp_imm_s(IntCC::Equal, key, tp as i64),
        };
        e.b.ins().brif(is, this, &[], next, &[]);
        e.b.switch_to_block(this);
        if !by_version {
            emit_version_guard(e, ty, version, fail);
        }
        let x = arm(e, i, p);
        e.b.ins().jump(found, &[BlockArg::Value(x)]);
        e.b.switch_to_block(next);
    }
    e.b.ins().jump(fail, &[]);
    e.b.switch_to_block(found);
    (p, e.b.block_params(found)[0])
}

/// Native guard: type `tp`'s version tag is still `version` (`tp` the type object's
/// address, a constant or what a guard already found equal to it).
pub(crate) fn emit_version_guard(
    e: &mut crate::native::emit::Emit,
    tp: cranelift_codegen::ir::Value,
    version: u32,
    fail: cranelift_codegen::ir::Block,
) {
    let ver = emit_version_of(e, tp);
    e.guard_eq(ver, version as i64, fail);
}

/// The version tag of type `tp` (an i32).
fn emit_version_of(
    e: &mut crate::native::emit::Emit,
    tp: cranelift_codegen::ir::Value,
) -> cranelift_codegen::ir::Value {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::{types, InstBuilder};
    e.b.ins().load(
        types::I32,
        mem(),
        tp,
        std::mem::offset_of!(ffi::PyTypeObject, tp_version_tag) as i32,
    )
}

/// Native code for `dict_hint_value` on object `p` (guarded to be of the variant's type):
/// its dict, the entry at `hint` still `name`'s, then the value (0 when deleted); anything
/// else fails to `fail`.
fn emit_dict_hint_value(
    e: &mut crate::native::emit::Emit,
    p: cranelift_codegen::ir::Value,
    hint: u32,
    name: *mut ffi::PyObject,
    fail: cranelift_codegen::ir::Block,
) -> cranelift_codegen::ir::Value {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    let ptr = e.ptr;
    let dict = e.b.ins().load(ptr, mem(), p, MANAGED_DICT);
    let none = e.b.ins().icmp_imm_s(IntCC::Equal, dict, 0);
    e.fail_if(none, fail);
    let keys = e.b.ins().load(ptr, mem(), dict, DICT_KEYS);
    // Str-keyed entries (unicode or split: two kinds in a row), with more than `hint`.
    const _: () = assert!(KIND_SPLIT == KIND_UNICODE + 1);
    let kind = e.b.ins().load(types::I8, mem(), keys, KEYS_KIND);
    let kind = e.b.ins().uextend(types::I64, kind);
    let k = e.b.ins().iadd_imm_s(kind, -(KIND_UNICODE as i64));
    let other = e.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, k, 1);
    e.fail_if(other, fail);
    let count = e.b.ins().load(types::I64, mem(), keys, KEYS_NENTRIES);
    let few =
        e.b.ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, count, hint as i64);
    e.fail_if(few, fail);
    let log2 =
        e.b.ins()
            .load(types::I8, mem(), keys, KEYS_LOG2_INDEX_BYTES);
    let log2 = e.b.ins().uextend(types::I64, log2);
    let one = e.b.ins().iconst(types::I64, 1);
    let index_bytes = e.b.ins().ishl(one, log2);
    let entries = e.b.ins().iadd(keys, index_bytes);
    let at = KEYS_INDICES + (UNICODE_ENTRY.0 * hint as usize) as i32;
    let key = e.b.ins().load(ptr, mem(), entries, at);
    e.guard_eq(key, name as i64, fail);
    // The value: in the entry, or in a split dict's values.
    let values = e.b.ins().load(ptr, mem(), dict, DICT_VALUES);
    let split = e.b.create_block();
    let combined = e.b.create_block();
    let join = e.b.create_block();
    e.b.append_block_param(join, ptr);
    e.b.ins().brif(values, split, &[], combined, &[]);
    e.b.switch_to_block(split);
    let v = e.b.ins().load(ptr, mem(), values, (8 * hint) as i32);
    e.b.ins()
        .jump(join, &[cranelift_codegen::ir::BlockArg::Value(v)]);
    e.b.switch_to_block(combined);
    let v = e.b.ins().load(ptr, mem(), entries, at + 8);
    e.b.ins()
        .jump(join, &[cranelift_codegen::ir::BlockArg::Value(v)]);
    e.b.switch_to_block(join);
    e.b.block_params(join)[0]
}

/// Native code for the variants read from a given object (a module's or a class's
/// attribute): a new reference to the value; None for the instance variants.
fn emit_object_attr(
    e: &mut crate::native::emit::Emit,
    r: u32,
    v: AttrVariant,
    fail: cranelift_codegen::ir::Block,
) -> Option<cranelift_codegen::ir::Value> {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::{types, InstBuilder};
    match v {
        AttrVariant::Module { module, slot } => Some(emit_module_attr(e, r, module, slot, fail)),
        AttrVariant::Class {
            cls,
            version,
            value,
        } => {
            // That very class, still of metatype `type`, its namespace unchanged.
            let p = e.object_of_type(r, std::ptr::addr_of_mut!(ffi::PyType_Type), fail);
            e.guard_eq(p, cls as i64, fail);
            let ver = e.b.ins().load(
                types::I32,
                mem(),
                p,
                std::mem::offset_of!(ffi::PyTypeObject, tp_version_tag) as i32,
            );
            e.guard_eq(ver, version as i64, fail);
            let x = e.b.ins().iconst(e.ptr, value as i64);
            e.incref(x);
            Some(x)
        }
        AttrVariant::InstanceValue { .. }
        | AttrVariant::InstanceDict { .. }
        | AttrVariant::Slot { .. }
        | AttrVariant::Poly(_) => None,
    }
}

/// Native code for a module attribute: register `r` must hold that very module, still of
/// the exact module type, and the name's entry must still be in its dict; returns a new
/// reference to the value.
fn emit_module_attr(
    e: &mut crate::native::emit::Emit,
    r: u32,
    module: *mut ffi::PyObject,
    slot: crate::ops::globals::EntrySlot,
    fail: cranelift_codegen::ir::Block,
) -> cranelift_codegen::ir::Value {
    use cranelift_codegen::ir::InstBuilder;
    // The type too: `__class__` may be set to a module subclass (lazy modules).
    let p = e.object_of_type(r, std::ptr::addr_of_mut!(ffi::PyModule_Type), fail);
    e.guard_eq(p, module as i64, fail);
    // SAFETY: the module is kept alive by the code, and its dict is never replaced.
    let d = unsafe { (*(module as *mut ModuleHead)).md_dict };
    let d = e.b.ins().iconst(e.ptr, d as i64);
    let x = crate::ops::globals::emit_slot_value(e, d, slot, fail);
    e.incref(x);
    x
}

/// Native code for a LoadAttr or StoreAttr site that settled generic
/// (`QuickCell::settled_generic`: a builtin type's method read as an attribute, a
/// property, a class with `__getattr__`...): `PyObject_GetAttr(o, name)` or
/// `PyObject_SetAttr(o, name, v)`, as the generic op calls them, without going through
/// the tier-1 helper's dispatch.
fn emit_attr_generic(e: &mut crate::native::emit::Emit, pc: usize) -> Option<&'static str> {
    use cranelift_codegen::ir::{types, InstBuilder};
    let inst = e.c.linear.insts[pc];
    let (name, store) = match inst.kind {
        crate::lower::LKind::Op(tiered_ir::Op::LoadAttr { name }) => (name, false),
        crate::lower::LKind::Op(tiered_ir::Op::StoreAttr { name }) => (name, true),
        _ => return None,
    };
    // The code's names live as long as it does.
    let name = *e.c.objects.names.get(name.0 as usize)?;
    let name = e.b.ins().iconst(e.ptr, name as i64);
    let objs = e.operand_objects(pc);
    if !store {
        e.call_for_result(
            pc,
            ffi::PyObject_GetAttr as *const () as usize,
            &[objs[0], name],
        );
        return Some(ATTR_TEMPLATES[5]);
    }
    let st = e
        .call(
            ffi::PyObject_SetAttr as *const () as usize,
            &[e.ptr, e.ptr, e.ptr],
            Some(types::I32),
            &[objs[0], name, objs[1]],
        )
        .expect("returns");
    e.raise_if(pc, st);
    Some(STORE_ATTR_TEMPLATES[3])
}

/// Native code reading instance variant `v`'s attribute from object `p` (already guarded
/// to be of its type and version): the value, or 0 when it is not set; a layout other
/// than the one seen fails to `fail`.
fn emit_instance_read(
    e: &mut crate::native::emit::Emit,
    p: cranelift_codegen::ir::Value,
    v: AttrVariant,
    fail: cranelift_codegen::ir::Block,
) -> cranelift_codegen::ir::Value {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::InstBuilder;
    match v {
        AttrVariant::InstanceValue { index, .. } => {
            // An instance whose `__dict__` was made: the op's generic path (not a deopt),
            // where tier 1's variant reads the dict (see the variant). Reading it here
            // too cost richards 0.4% more instructions, on code that never runs.
            let values = e.b.ins().load(e.ptr, mem(), p, INLINE_VALUES);
            let none = e.b.ins().icmp_imm_s(IntCC::Equal, values, 0);
            let slow = e.slow_block();
            e.fail_if(none, slow);
            e.b.ins().load(e.ptr, mem(), values, (index * 8) as i32)
        }
        AttrVariant::Slot { offset, .. } => e.b.ins().load(e.ptr, mem(), p, offset as i32),
        AttrVariant::InstanceDict { hint, name, .. } => {
            emit_dict_hint_value(e, p, hint, name, fail)
        }
        // Not instance variants (`instance_guard` is None for them): never read here.
        AttrVariant::Module { .. } | AttrVariant::Class { .. } | AttrVariant::Poly(_) => {
            e.b.ins().jump(fail, &[]);
            let dead = e.b.create_block();
            e.b.switch_to_block(dead);
            e.b.ins().iconst(e.ptr, 0)
        }
    }
}

/// The native template of a quickened LoadAttr: type and version guards, then the value
/// read in place; a missing value takes the slow path (the generic op raises or finds it).
pub(crate) fn emit_load_attr(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::InstBuilder;
    let crate::quick::Quick::Attr(v) = q else {
        return e.c.quick[pc]
            .settled_generic()
            .then(|| emit_attr_generic(e, pc))
            .flatten();
    };
    let inst = e.c.linear.insts[pc];
    let r = e.c.linear.operands[inst.args as usize];
    let x = match (v, v.instance_guard()) {
        (AttrVariant::Poly(es), _) => {
            let guards: Option<Vec<_>> = es.iter().map(|x| x.instance_guard()).collect();
            emit_type_switch(e, r, &guards?, fail, |e, i, p| {
                emit_instance_read(e, p, es[i], fail)
            })
            .1
        }
        (_, Some((tp, version))) => {
            let p = emit_type_guards(e, r, tp, version, fail);
            emit_instance_read(e, p, v, fail)
        }
        (_, None) => {
            let x = emit_object_attr(e, r, v, fail)?;
            e.set(inst.dst, crate::value::tag::OBJ, x);
            return Some(v.name());
        }
    };
    // Not set: the generic op raises AttributeError (an expected case, not a deopt).
    let unset = e.b.ins().icmp_imm_s(IntCC::Equal, x, 0);
    let slow = e.slow_block();
    e.fail_if(unset, slow);
    e.incref(x);
    e.set(inst.dst, crate::value::tag::OBJ, x);
    Some(v.name())
}

/// The native template of a quickened StoreAttr: type and version guards (per class seen,
/// for a polymorphic site), then the entry's store (`emit_instance_write`).
pub(crate) fn emit_store_attr(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use cranelift_codegen::ir::InstBuilder;
    let crate::quick::Quick::Attr(v) = q else {
        return e.c.quick[pc]
            .settled_generic()
            .then(|| emit_attr_generic(e, pc))
            .flatten();
    };
    let inst = e.c.linear.insts[pc];
    let (o, val) = (
        e.c.linear.operands[inst.args as usize],
        e.c.linear.operands[inst.args as usize + 1],
    );
    let slow = e.slow_block();
    match (v, v.instance_guard()) {
        (AttrVariant::Poly(es), _) => {
            let guards: Option<Vec<_>> = es.iter().map(|x| x.instance_guard()).collect();
            emit_type_switch(e, o, &guards?, fail, |e, i, p| {
                emit_instance_write(e, p, es[i], val, fail, slow);
                e.b.ins().iconst(e.ptr, 0)
            });
        }
        (_, Some((tp, version))) => {
            let p = emit_type_guards(e, o, tp, version, fail);
            emit_instance_write(e, p, v, val, fail, slow);
        }
        (_, None) => return None,
    }
    Some(v.name())
}

/// Native code storing register `val` as instance variant `v`'s attribute of object `p`
/// (already guarded to be of its type and version): the value boxed if it is an unboxed
/// number, then the slot written in place, or the instance's `__dict__` set. A layout
/// other than the one seen fails to `fail`; the first assignment of an inline value
/// (which also records insertion order) and a NULL take `slow`, the generic op.
fn emit_instance_write(
    e: &mut crate::native::emit::Emit,
    p: cranelift_codegen::ir::Value,
    v: AttrVariant,
    val: u32,
    fail: cranelift_codegen::ir::Block,
    slow: cranelift_codegen::ir::Block,
) {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    let (base, off) = match v {
        AttrVariant::InstanceDict { hint, name, .. } => {
            // Into the instance's `__dict__`, as tier 1 does (`dict_store`).
            let dict = e.b.ins().load(e.ptr, mem(), p, MANAGED_DICT);
            let none = e.b.ins().icmp_imm_s(IntCC::Equal, dict, 0);
            e.fail_if(none, fail);
            let x = e.object_of(val, slow);
            let h = e.b.ins().iconst(types::I64, hint as i64);
            let n = e.b.ins().iconst(e.ptr, name as i64);
            let stored = e
                .call(
                    dict_store as *const () as usize,
                    &[e.ptr, types::I64, e.ptr, e.ptr],
                    Some(types::I64),
                    &[dict, h, n, x],
                )
                .expect("returns");
            let failed = e.b.ins().icmp_imm_s(IntCC::Equal, stored, 0);
            e.fail_if(failed, slow);
            return;
        }
        AttrVariant::InstanceValue { index, .. } => {
            // An instance whose `__dict__` was made: the op's generic path (not a deopt),
            // where tier 1's variant stores into the dict. Storing here too (boxing the
            // value on that path alone) cost richards 5% more instructions: the value's
            // register is no longer known boxed or not after it.
            let values = e.b.ins().load(e.ptr, mem(), p, INLINE_VALUES);
            let none = e.b.ins().icmp_imm_s(IntCC::Equal, values, 0);
            e.fail_if(none, slow);
            (values, (index * 8) as i32)
        }
        AttrVariant::Slot { offset, .. } => (p, offset as i32),
        // Not instance variants (`instance_guard` is None for them): never written here.
        AttrVariant::Module { .. } | AttrVariant::Class { .. } | AttrVariant::Poly(_) => {
            e.b.ins().jump(fail, &[]);
            let dead = e.b.create_block();
            e.b.switch_to_block(dead);
            return;
        }
    };
    // The value as an object, as tier 1 hands it over: unboxed numbers are boxed in place
    // first, a bool is its singleton; NULL takes the generic op.
    let x = e.object_of(val, slow);
    e.incref(x);
    let old = e.b.ins().load(e.ptr, mem(), base, off);
    e.b.ins().store(mem(), x, base, off);
    // Releasing the old value may run __del__: the slot is already consistent.
    let had = e.b.create_block();
    let first = e.b.create_block();
    let done = e.b.create_block();
    e.b.ins().brif(old, had, &[], first, &[]);
    e.b.switch_to_block(had);
    e.decref(old);
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(first);
    if let AttrVariant::InstanceValue { index, .. } = v {
        // A first assignment: record the index in the insertion order (see
        // `add_to_insertion_order`): the count byte, the order bytes before it.
        let size = e.b.ins().load(types::I8, mem(), base, VALUES_ORDER_SIZE);
        let size = e.b.ins().iadd_imm_s(size, 1);
        e.b.ins().store(mem(), size, base, VALUES_ORDER_SIZE);
        let size = e.b.ins().uextend(e.ptr, size);
        let at = e.b.ins().isub(base, size);
        let ix = e.b.ins().iconst(types::I8, index as i64);
        e.b.ins().store(mem(), ix, at, VALUES_ORDER_SIZE);
    }
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(done);
}

/// Native code for `unshadowed` on instance `p` (already of `m`'s type and version): a
/// `__dict__` without the name (`dict_lacks`), or, with none made, the type's shared keys
/// still without it (their count unchanged); else to `fail`.
fn emit_unshadowed(
    e: &mut crate::native::emit::Emit,
    p: cranelift_codegen::ir::Value,
    m: &InstanceMethod,
    fail: cranelift_codegen::ir::Block,
) {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    if m.keys < 0 {
        return;
    }
    let dict = e.b.ins().load(e.ptr, mem(), p, MANAGED_DICT);
    let with_dict = e.b.create_block();
    let inline_values = e.b.create_block();
    let checked = e.b.create_block();
    // An instance whose `__dict__` was made is the rare case (its values stay inline
    // until something asks for the dict): its call out goes after the hot code.
    e.b.set_cold_block(with_dict);
    e.b.ins().brif(dict, with_dict, &[], inline_values, &[]);
    e.b.switch_to_block(with_dict);
    let n = e.b.ins().iconst(e.ptr, m.name as i64);
    let lacks = e
        .call(
            dict_lacks as *const () as usize,
            &[e.ptr, e.ptr],
            Some(types::I64),
            &[dict, n],
        )
        .expect("returns");
    let has = e.b.ins().icmp_imm_s(IntCC::Equal, lacks, 0);
    e.fail_if(has, fail);
    e.b.ins().jump(checked, &[]);
    e.b.switch_to_block(inline_values);
    let tpv = e.b.ins().iconst(e.ptr, m.tp as i64);
    let k = e.b.ins().load(
        e.ptr,
        mem(),
        tpv,
        std::mem::offset_of!(ffi::PyHeapTypeObject, ht_cached_keys) as i32,
    );
    let none = e.b.ins().icmp_imm_s(IntCC::Equal, k, 0);
    e.fail_if(none, fail);
    let count = e.b.ins().load(e.ptr, mem(), k, KEYS_NENTRIES);
    e.guard_eq(count, m.keys, fail);
    e.b.ins().jump(checked, &[]);
    e.b.switch_to_block(checked);
}

/// The native template of a quickened LoadMethod: a type guard, then the method and the
/// object as `self`.
pub(crate) fn emit_load_method(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use crate::value::tag;
    use cranelift_codegen::ir::{types, InstBuilder};
    let crate::quick::Quick::Method(v) = q else {
        return None;
    };
    let inst = e.c.linear.insts[pc];
    let r = e.c.linear.operands[inst.args as usize];
    let (p, method) = match v {
        MethodVariant::Builtin { tp, method } => (e.object_of_type(r, tp, fail), method),
        MethodVariant::Module(attr) => {
            let x = emit_object_attr(e, r, attr, fail)?;
            let null = e.b.ins().iconst(types::I64, 0);
            e.set(inst.dst, tag::NULL, null);
            e.set(inst.dst + 1, tag::OBJ, x);
            return Some(v.name());
        }
        MethodVariant::ClassMethod { cls, version, func } => {
            // The class itself, by identity, with its version tag unchanged.
            let tv = e.tag(r);
            e.guard_eq(tv, tag::OBJ as i64, fail);
            let p = e.payload(r, e.ptr);
            e.guard_eq(p, cls as i64, fail);
            emit_version_guard(e, p, version, fail);
            (p, func)
        }
        MethodVariant::Instance(m) => {
            let p = emit_type_guards(e, r, m.tp, m.version, fail);
            emit_unshadowed(e, p, &m, fail);
            (p, m.method)
        }
        MethodVariant::Poly(ms) => {
            // One type test per class seen, in order; the matching entry's guards then.
            let guards: Vec<_> = ms.iter().map(|m| (m.tp, m.version)).collect();
            let (p, method) = emit_type_switch(e, r, &guards, fail, |e, i, p| {
                emit_unshadowed(e, p, &ms[i], fail);
                e.b.ins().iconst(e.ptr, ms[i].method as i64)
            });
            e.incref(method);
            e.set(inst.dst, tag::OBJ, method);
            e.incref(p);
            e.set(inst.dst + 1, tag::OBJ, p);
            return Some(v.name());
        }
    };
    let m = e.b.ins().iconst(e.ptr, method as i64);
    e.incref(m);
    e.set(inst.dst, tag::OBJ, m);
    e.incref(p);
    e.set(inst.dst + 1, tag::OBJ, p);
    Some(v.name())
}
