//! Attribute access and method lookup.

use crate::interp::Ctx;
use crate::value::{status, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

/// LoadAttr: `o.name`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn load_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyObject_GetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
    ))
}

/// StoreAttr: `o.name = v`.
///
/// # Safety
/// GIL held; operands are objects.
#[inline]
pub unsafe fn store_attr(ctx: &Ctx, name: NameIdx, o: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
        v.as_ptr(),
    ))
}

/// DeleteAttr: `del o.name`.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn delete_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<()> {
    status(ffi::PyObject_SetAttr(
        o.as_ptr(),
        super::name_obj(ctx, name)?,
        std::ptr::null_mut(),
    ))
}

/// LoadMethod: (unbound method, self) when the type has a plain method, else
/// (NULL, attribute), exactly as LOAD_METHOD pushes them.
///
/// # Safety
/// GIL held; the operand is an object.
#[inline]
pub unsafe fn load_method(ctx: &Ctx, name: NameIdx, o: &Value) -> PyResult<(Value, Value)> {
    let mut meth: *mut ffi::PyObject = std::ptr::null_mut();
    let found = crate::cpy::_PyObject_GetMethod(o.as_ptr(), super::name_obj(ctx, name)?, &mut meth);
    if meth.is_null() {
        return Err(Raised);
    }
    let meth = Value::from_owned(meth)?;
    if found != 0 {
        Ok((meth, o.clone()))
    } else {
        Ok((Value::Null, meth))
    }
}

/// Quickened forms of LoadAttr and StoreAttr, as CPython 3.11 specializes them. Both guard
/// on the exact type and its version tag: 3.11 gives a type a fresh, never reused tag
/// whenever it or a base changes (a descriptor added, `__getattribute__` assigned...), so
/// the lookup that chose the variant still holds while the tag is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrVariant {
    /// An attribute kept in a plain instance's inline values (3.11's split "managed dict"
    /// before any `__dict__` is made), at its index in the class's shared keys; the class
    /// has no attribute of that name, so the instance is the only place it can be.
    InstanceValue {
        /// The type seen (kept alive by the code; compared by identity).
        tp: *mut ffi::PyTypeObject,
        /// Its version tag then.
        version: u32,
        /// Index of the name in the class's shared keys (and in each instance's values).
        index: u32,
    },
    /// An attribute of a module (`math.sqrt`): read in place from the module dict's
    /// entry, as a cached global is, so rebinding it is seen at once.
    Module {
        /// The module seen (kept alive by the code; compared by identity).
        module: *mut ffi::PyObject,
        /// Where the name's entry is in its dict.
        slot: super::globals::EntrySlot,
    },
    /// A `__slots__` member (an object slot at a fixed offset in the instance).
    Slot {
        /// The type seen (kept alive by the code; compared by identity).
        tp: *mut ffi::PyTypeObject,
        /// Its version tag then.
        version: u32,
        /// Byte offset of the slot in the instance.
        offset: u32,
    },
}

/// Names of the attribute variants, for coverage.
pub const ATTR_VARIANTS: &[&str] = &["AttrInstanceValue", "AttrSlot", "AttrModule"];

/// Names of StoreAttr's variants (module attributes are only read), for coverage.
pub const STORE_ATTR_VARIANTS: &[&str] = &["AttrInstanceValue", "AttrSlot"];

impl AttrVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            AttrVariant::InstanceValue { .. } => ATTR_VARIANTS[0],
            AttrVariant::Slot { .. } => ATTR_VARIANTS[1],
            AttrVariant::Module { .. } => ATTR_VARIANTS[2],
        }
    }
}

/// 3.11 keeps a managed-dict object's inline values pointer four words before the object
/// (Include/internal/pycore_object.h, `_PyObject_ValuesPointer`).
const VALUES_OFFSET: i32 = -4 * std::mem::size_of::<*mut ffi::PyObject>() as i32;

/// The inline values array of a managed-dict object (NULL once a `__dict__` exists).
#[inline]
unsafe fn values_of(p: *mut ffi::PyObject) -> *mut *mut ffi::PyObject {
    *((p as *mut u8).offset(VALUES_OFFSET as isize) as *mut *mut *mut ffi::PyObject)
}

/// Records that inline value `index` was set (3.11's _PyDictValues_AddToInsertionOrder):
/// the byte before the values is the count of set values, and the set indices are stored
/// in order in the bytes before it.
///
/// # Safety
/// `values` is a live inline values array of a type whose shared keys have `index`.
#[inline]
unsafe fn add_to_insertion_order(values: *mut *mut ffi::PyObject, index: u32) {
    let size_ptr = (values as *mut u8).sub(2);
    let size = *size_ptr as usize + 1;
    *size_ptr.sub(size) = index as u8;
    *size_ptr = size as u8;
}

/// Whether `p`'s type still is the one a variant was made for.
#[inline]
unsafe fn type_holds(p: *mut ffi::PyObject, tp: *mut ffi::PyTypeObject, version: u32) -> bool {
    ffi::Py_TYPE(p) == tp && (*tp).tp_version_tag == version
}

/// The variant for `o.name` on this object, if any: `store` for an assignment.
unsafe fn observe_attr(ctx: &Ctx, name: NameIdx, o: &Value, store: bool) -> Option<AttrVariant> {
    let p = o.as_ptr();
    if p.is_null() {
        return None;
    }
    let n = super::name_obj(ctx, name).ok()?;
    let tp = ffi::Py_TYPE(p);
    // Only generic attribute access (no __getattribute__, __getattr__, __setattr__).
    // libpython's exported functions have one address, which types store in their slots.
    let generic = if store {
        let f = ffi::PyObject_GenericSetAttr
            as unsafe extern "C" fn(
                *mut ffi::PyObject,
                *mut ffi::PyObject,
                *mut ffi::PyObject,
            ) -> i32;
        matches!((*tp).tp_setattro, Some(s) if std::ptr::fn_addr_eq(s, f))
    } else {
        let f = ffi::PyObject_GenericGetAttr
            as unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;
        matches!((*tp).tp_getattro, Some(g) if std::ptr::fn_addr_eq(g, f))
    };
    if !generic || (*tp).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
        return None;
    }
    let descr = crate::cpy::_PyType_Lookup(tp, n);
    if (*tp).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0 || (*tp).tp_version_tag == 0 {
        return None;
    }
    let version = (*tp).tp_version_tag;
    let v = if descr.is_null() {
        // Nothing on the class: the inline values, found by the shared keys' index.
        if (*tp).tp_flags & ffi::Py_TPFLAGS_MANAGED_DICT == 0 || values_of(p).is_null() {
            return None;
        }
        let keys = (*(tp as *mut ffi::PyHeapTypeObject)).ht_cached_keys as *const u8;
        if keys.is_null() {
            return None;
        }
        // PyDictKeysObject head: refcnt, log2 size, log2 index bytes, kind, version,
        // usable, nentries; then the indices, then 16-byte unicode entries (key first).
        let log2_index_bytes = *keys.add(9);
        let kind = *keys.add(10);
        let nentries = *(keys.add(24) as *const isize);
        const DICT_KEYS_SPLIT: u8 = 2;
        if kind != DICT_KEYS_SPLIT {
            return None;
        }
        let entries = keys.add(32 + (1usize << log2_index_bytes));
        let index = (0..nentries.max(0) as usize)
            .find(|&i| *(entries.add(16 * i) as *const *mut ffi::PyObject) == n)?;
        AttrVariant::InstanceValue {
            tp,
            version,
            index: u32::try_from(index).ok()?,
        }
    } else if ffi::Py_TYPE(descr) == std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
        // A __slots__ member holding an object (what 3.11's LOAD/STORE_ATTR_SLOT take).
        let m = (*(descr as *mut ffi::PyMemberDescrObject)).d_member;
        if (*m).type_code != ffi::Py_T_OBJECT_EX
            || (store && (*m).flags & ffi::Py_READONLY != 0)
            || (*m).offset <= 0
        {
            return None;
        }
        AttrVariant::Slot {
            tp,
            version,
            offset: u32::try_from((*m).offset).ok()?,
        }
    } else {
        return None;
    };
    // The guards compare the type by identity: it must stay this object.
    ctx.compiled.keep_alive(tp as *mut ffi::PyObject);
    Some(v)
}

/// Which LoadAttr variant fits this object, if any.
///
/// # Safety
/// GIL held.
pub unsafe fn observe_load_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> Option<AttrVariant> {
    let p = o.as_ptr();
    if !p.is_null() && ffi::Py_TYPE(p) == std::ptr::addr_of_mut!(ffi::PyModule_Type) {
        return observe_module_attr(ctx, name, p);
    }
    observe_attr(ctx, name, o, false)
}

/// 3.11's PyModuleObject head: the dict follows the object header (never replaced).
#[repr(C)]
struct ModuleHead {
    ob_base: ffi::PyObject,
    md_dict: *mut ffi::PyObject,
}

/// An exact module's attribute found in its dict, where nothing on the module type
/// (`__dict__`, `__class__`...) intercepts the name.
unsafe fn observe_module_attr(
    ctx: &Ctx,
    name: NameIdx,
    module: *mut ffi::PyObject,
) -> Option<AttrVariant> {
    let n = super::name_obj(ctx, name).ok()?;
    let tp = std::ptr::addr_of_mut!(ffi::PyModule_Type);
    if !crate::cpy::_PyType_Lookup(tp, n).is_null() {
        return None;
    }
    let d = (*(module as *mut ModuleHead)).md_dict;
    if d.is_null() {
        return None;
    }
    let slot = super::globals::find_slot(d, n)?;
    ctx.compiled.keep_alive(module);
    Some(AttrVariant::Module { module, slot })
}

/// Which StoreAttr variant fits this object, if any.
///
/// # Safety
/// GIL held.
pub unsafe fn observe_store_attr(ctx: &Ctx, name: NameIdx, o: &Value) -> Option<AttrVariant> {
    observe_attr(ctx, name, o, true)
}

/// The quickened LoadAttr (`None` when a guard fails or the attribute is not set: the
/// generic op then raises AttributeError or finds it elsewhere).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn load_attr_quick(v: AttrVariant, o: &Value) -> Option<Value> {
    let p = o.as_ptr();
    if p.is_null() {
        return None;
    }
    let r = match v {
        AttrVariant::Module { module, slot } => {
            // The type too: `__class__` may be set to a module subclass (lazy modules).
            if p != module || ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyModule_Type) {
                return None;
            }
            super::globals::slot_value((*(module as *mut ModuleHead)).md_dict, slot)?
        }
        AttrVariant::InstanceValue { tp, version, index } => {
            if !type_holds(p, tp, version) {
                return None;
            }
            let values = values_of(p);
            if values.is_null() {
                return None;
            }
            *values.add(index as usize)
        }
        AttrVariant::Slot {
            tp,
            version,
            offset,
        } => {
            if !type_holds(p, tp, version) {
                return None;
            }
            *((p as *mut u8).add(offset as usize) as *mut *mut ffi::PyObject)
        }
    };
    (!r.is_null()).then(|| Value::from_borrowed(r))
}

/// The quickened StoreAttr: `Some(())` when done, `None` when a guard fails or (inline
/// values) the attribute is not set yet, whose first assignment the generic op makes (it
/// also records the insertion order).
///
/// # Safety
/// GIL held; `v` is an object.
#[inline]
pub unsafe fn store_attr_quick(v: AttrVariant, o: &Value, value: &Value) -> Option<()> {
    let p = o.as_ptr();
    let x = value.as_ptr();
    if p.is_null() || x.is_null() {
        return None;
    }
    let slot = match v {
        AttrVariant::Module { .. } => return None,
        AttrVariant::InstanceValue { tp, version, index } => {
            if !type_holds(p, tp, version) {
                return None;
            }
            let values = values_of(p);
            if values.is_null() {
                return None;
            }
            if (*values.add(index as usize)).is_null() {
                // A first assignment (as in __init__): the value, then its place in the
                // insertion order, as STORE_ATTR_INSTANCE_VALUE does.
                ffi::Py_INCREF(x);
                *values.add(index as usize) = x;
                add_to_insertion_order(values, index);
                return Some(());
            }
            values.add(index as usize)
        }
        AttrVariant::Slot {
            tp,
            version,
            offset,
        } => {
            if !type_holds(p, tp, version) {
                return None;
            }
            (p as *mut u8).add(offset as usize) as *mut *mut ffi::PyObject
        }
    };
    ffi::Py_INCREF(x);
    let old = std::mem::replace(&mut *slot, x);
    // Releasing the old value may run __del__: the slot is already consistent.
    ffi::Py_XDECREF(old);
    Some(())
}

/// Native guards of the instance variants: register `r` holds an object of exactly the
/// variant's type with the version tag it had; returns the object. `None` for a module
/// attribute (its own guards).
fn emit_instance_guards(
    e: &mut crate::native::emit::Emit,
    r: u32,
    v: AttrVariant,
    fail: cranelift_codegen::ir::Block,
) -> Option<cranelift_codegen::ir::Value> {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::{types, InstBuilder};
    let (tp, version) = match v {
        AttrVariant::InstanceValue { tp, version, .. } | AttrVariant::Slot { tp, version, .. } => {
            (tp, version)
        }
        AttrVariant::Module { .. } => return None,
    };
    let p = e.object_of_type(r, tp, fail);
    let tpv = e.b.ins().iconst(e.ptr, tp as i64);
    let ver = e.b.ins().load(
        types::I32,
        mem(),
        tpv,
        std::mem::offset_of!(ffi::PyTypeObject, tp_version_tag) as i32,
    );
    e.guard_eq(ver, version as i64, fail);
    Some(p)
}

/// Native code for a module attribute: register `r` must hold that very module, still of
/// the exact module type, and the name's entry must still be in its dict; returns a new
/// reference to the value.
fn emit_module_attr(
    e: &mut crate::native::emit::Emit,
    r: u32,
    module: *mut ffi::PyObject,
    slot: super::globals::EntrySlot,
    fail: cranelift_codegen::ir::Block,
) -> cranelift_codegen::ir::Value {
    use cranelift_codegen::ir::InstBuilder;
    // The type too: `__class__` may be set to a module subclass (lazy modules).
    let p = e.object_of_type(r, std::ptr::addr_of_mut!(ffi::PyModule_Type), fail);
    e.guard_eq(p, module as i64, fail);
    // SAFETY: the module is kept alive by the code, and its dict is never replaced.
    let d = unsafe { (*(module as *mut ModuleHead)).md_dict };
    let d = e.b.ins().iconst(e.ptr, d as i64);
    let x = super::globals::emit_slot_value(e, d, slot, fail);
    e.incref(x);
    x
}

/// The native template of a quickened LoadAttr: type and version guards, then the value
/// read in place; a missing value takes the slow path (the generic op raises or finds it).
pub(crate) fn emit_load_attr(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::InstBuilder;
    let crate::quick::Quick::Attr(v) = q else {
        return None;
    };
    let inst = e.c.linear.insts[pc];
    let r = e.c.linear.operands[inst.args as usize];
    let p = match emit_instance_guards(e, r, v, fail) {
        Some(p) => p,
        None => {
            let AttrVariant::Module { module, slot } = v else {
                return None;
            };
            let x = emit_module_attr(e, r, module, slot, fail);
            e.set(inst.dst, crate::value::tag::OBJ, x);
            return Some(v.name());
        }
    };
    let x = match v {
        AttrVariant::InstanceValue { index, .. } => {
            let values = e.b.ins().load(e.ptr, mem(), p, VALUES_OFFSET);
            let none = e.b.ins().icmp_imm_s(IntCC::Equal, values, 0);
            e.fail_if(none, fail);
            e.b.ins().load(e.ptr, mem(), values, (index * 8) as i32)
        }
        AttrVariant::Slot { offset, .. } => e.b.ins().load(e.ptr, mem(), p, offset as i32),
        AttrVariant::Module { .. } => return None,
    };
    // Not set: the generic op raises AttributeError (an expected case, not a deopt).
    let unset = e.b.ins().icmp_imm_s(IntCC::Equal, x, 0);
    let slow = e.slow_block();
    e.fail_if(unset, slow);
    e.incref(x);
    e.set(inst.dst, crate::value::tag::OBJ, x);
    Some(v.name())
}

/// The native template of a quickened StoreAttr: type and version guards, the value boxed
/// if it is an unboxed number, then the slot written in place. The first assignment of an
/// inline value (which also records insertion order) takes the generic op.
pub(crate) fn emit_store_attr(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    q: crate::quick::Quick,
    fail: cranelift_codegen::ir::Block,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    let crate::quick::Quick::Attr(v) = q else {
        return None;
    };
    let inst = e.c.linear.insts[pc];
    let (o, val) = (
        e.c.linear.operands[inst.args as usize],
        e.c.linear.operands[inst.args as usize + 1],
    );
    let slow = e.slow_block();
    let p = emit_instance_guards(e, o, v, fail)?;
    let (base, off) = match v {
        AttrVariant::InstanceValue { index, .. } => {
            let values = e.b.ins().load(e.ptr, mem(), p, VALUES_OFFSET);
            let none = e.b.ins().icmp_imm_s(IntCC::Equal, values, 0);
            e.fail_if(none, fail);
            (values, (index * 8) as i32)
        }
        AttrVariant::Slot { offset, .. } => (p, offset as i32),
        AttrVariant::Module { .. } => return None,
    };
    // The value as an object: unboxed numbers are boxed in place first, as tier 1 boxes
    // the operands of ops that store them; anything but an object (a bool result, NULL)
    // takes the generic op.
    e.box_number(val, slow);
    let tv = e.tag(val);
    e.guard_eq(tv, tag::OBJ as i64, slow);
    let x = e.payload(val, e.ptr);
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
        // `add_to_insertion_order`): size byte at values - 2, order bytes before it.
        let size = e.b.ins().load(types::I8, mem(), base, -2);
        let size = e.b.ins().iadd_imm_s(size, 1);
        e.b.ins().store(mem(), size, base, -2);
        let size = e.b.ins().uextend(e.ptr, size);
        let at = e.b.ins().isub(base, size);
        let ix = e.b.ins().iconst(types::I8, index as i64);
        e.b.ins().store(mem(), ix, at, -2);
    }
    e.b.ins().jump(done, &[]);
    e.b.switch_to_block(done);
    Some(v.name())
}

/// Quickened forms of LoadMethod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodVariant {
    /// A method of a builtin type (`list.append`, `dict.get`, `str.join`...): the type is
    /// static and immutable, its instances have no `__dict__`, and the method descriptor
    /// found on it is what LOAD_METHOD pushes with the object as `self`.
    Builtin {
        /// The type seen (static: never freed; compared by identity).
        tp: *mut ffi::PyTypeObject,
        /// The method descriptor in its (immutable) dict.
        method: *mut ffi::PyObject,
    },
    /// `module.function(...)`: a module has no methods, so LOAD_METHOD pushes NULL and
    /// the attribute, read as LoadAttr's AttrModule reads it (the variant inside).
    Module(AttrVariant),
}

/// Names of LoadMethod's variants, for coverage.
pub const METHOD_VARIANTS: &[&str] = &["LoadMethodBuiltin", "LoadMethodModule"];

impl MethodVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            MethodVariant::Builtin { .. } => METHOD_VARIANTS[0],
            MethodVariant::Module(_) => METHOD_VARIANTS[1],
        }
    }
}

/// Which LoadMethod variant fits this object, if any.
///
/// # Safety
/// GIL held.
pub unsafe fn observe_load_method(ctx: &Ctx, name: NameIdx, o: &Value) -> Option<MethodVariant> {
    let p = o.as_ptr();
    if p.is_null() {
        return None;
    }
    if ffi::Py_TYPE(p) == std::ptr::addr_of_mut!(ffi::PyModule_Type) {
        // Module getattro is not the generic one: _PyObject_GetMethod returns the plain
        // attribute with no self.
        return observe_module_attr(ctx, name, p).map(MethodVariant::Module);
    }
    let n = super::name_obj(ctx, name).ok()?;
    let tp = ffi::Py_TYPE(p);
    let generic = ffi::PyObject_GenericGetAttr
        as unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;
    let flags = (*tp).tp_flags;
    if flags & ffi::Py_TPFLAGS_HEAPTYPE != 0
        || flags & ffi::Py_TPFLAGS_IMMUTABLETYPE == 0
        || (*tp).tp_dictoffset != 0
        || !matches!((*tp).tp_getattro, Some(g) if std::ptr::fn_addr_eq(g, generic))
    {
        return None;
    }
    let method = crate::cpy::_PyType_Lookup(tp, n);
    if method.is_null() || (*ffi::Py_TYPE(method)).tp_flags & ffi::Py_TPFLAGS_METHOD_DESCRIPTOR == 0
    {
        return None;
    }
    Some(MethodVariant::Builtin { tp, method })
}

/// The quickened LoadMethod (`None` when the object has another type).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn load_method_quick(v: MethodVariant, o: &Value) -> Option<(Value, Value)> {
    match v {
        MethodVariant::Builtin { tp, method } => {
            let p = o.as_ptr();
            if p.is_null() || ffi::Py_TYPE(p) != tp {
                return None;
            }
            Some((Value::from_borrowed(method), o.clone()))
        }
        MethodVariant::Module(attr) => Some((Value::Null, load_attr_quick(attr, o)?)),
    }
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
    let (tp, method) = match v {
        MethodVariant::Builtin { tp, method } => (tp, method),
        MethodVariant::Module(AttrVariant::Module { module, slot }) => {
            let x = emit_module_attr(e, r, module, slot, fail);
            let null = e.b.ins().iconst(types::I64, 0);
            e.set(inst.dst, tag::NULL, null);
            e.set(inst.dst + 1, tag::OBJ, x);
            return Some(v.name());
        }
        MethodVariant::Module(_) => return None,
    };
    let p = e.object_of_type(r, tp, fail);
    let m = e.b.ins().iconst(e.ptr, method as i64);
    e.incref(m);
    e.set(inst.dst, tag::OBJ, m);
    e.incref(p);
    e.set(inst.dst + 1, tag::OBJ, p);
    Some(v.name())
}
