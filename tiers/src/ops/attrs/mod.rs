//! Attribute access and method lookup.

use crate::interp::Ctx;

mod native;
use crate::cpy::dict::{
    add_to_insertion_order, bump_version, head, inline_values, managed_dict, nentries, shared_keys,
    str_entry, str_key_index, str_keys, str_keys_lack,
};
use crate::value::{status, PyResult, Raised, Value};
pub(crate) use native::{emit_load_attr, emit_load_method, emit_store_attr, emit_version_guard};
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
    /// has no attribute of that name, so the instance is the only place it can be. An
    /// instance whose `__dict__` was made meanwhile (by `vars()`, `copy`, pickle's
    /// `__reduce_ex__`) is served from that dict: the values moved into it, which shares
    /// the class's keys, so a read finds the name at the same index (`dict_hint_value`) and
    /// a write goes in by name. Instances of both kinds then share one site without
    /// flipping its variant (deepcopy's dataclass, copied once per fresh instance); native
    /// code takes the op's generic path for the second kind, which runs this.
    InstanceValue {
        /// The type seen (kept alive by the code; compared by identity).
        tp: *mut ffi::PyTypeObject,
        /// Its version tag then.
        version: u32,
        /// Index of the name in the class's shared keys (and in each instance's values).
        index: u32,
        /// The name (interned, held by the code object), for an instance's `__dict__`.
        name: *mut ffi::PyObject,
    },
    /// An attribute of a module (`math.sqrt`): read in place from the module dict's
    /// entry, as a cached global is, so rebinding it is seen at once.
    Module {
        /// The module seen (kept alive by the code; compared by identity).
        module: *mut ffi::PyObject,
        /// Where the name's entry is in its dict.
        slot: super::globals::EntrySlot,
    },
    /// An attribute in an instance's own `__dict__` (made once the class's shared keys
    /// were full, or by `vars()`), found at the entry index it had (3.11's
    /// LOAD_ATTR_WITH_HINT); the class has no attribute of that name.
    InstanceDict {
        /// The type seen (kept alive by the code; compared by identity).
        tp: *mut ffi::PyTypeObject,
        /// Its version tag then.
        version: u32,
        /// The entry index the name had in that instance's dict, or for a store seen before
        /// the name was there, the one its first store gave it (checked each time).
        hint: u32,
        /// The name (interned, held by the code object): the entry's key must be it.
        name: *mut ffi::PyObject,
    },
    /// An attribute of a class (`Strength.REQUIRED`, `Klass.helper`): a plain value, a
    /// function or a staticmethod's function, found on the class whose metatype is exactly
    /// `type` and has no attribute of that name; the class's version tag guards that the
    /// value is still the one (held by its dict).
    Class {
        /// The class (kept alive by the code; compared by identity).
        cls: *mut ffi::PyTypeObject,
        /// Its version tag then.
        version: u32,
        /// What `cls.name` gave.
        value: *mut ffi::PyObject,
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
    /// A site that has seen instances of several classes (2 to `POLY_MAX`), as CPython's
    /// and V8's polymorphic inline caches: one instance variant (InstanceValue, Slot or
    /// InstanceDict) per class, each with its own guards, chosen by the exact type.
    Poly(&'static [AttrVariant]),
}

/// Names of LoadAttr's native templates, for coverage: its variants', then a settled
/// generic site's (`native::emit_load_attr_generic`).
pub const ATTR_TEMPLATES: &[&str] = &[
    "AttrInstanceValue",
    "AttrSlot",
    "AttrModule",
    "AttrInstanceDict",
    "AttrClass",
    "AttrPoly",
    "AttrGeneric",
];
/// Names of the attribute variants, for coverage.
pub const ATTR_VARIANTS: &[&str] = ATTR_TEMPLATES.split_at(6).0;

/// Names of StoreAttr's native templates (module and class attributes are only read), for
/// coverage: its variants', then a settled generic site's.
pub const STORE_ATTR_TEMPLATES: &[&str] = &[
    "AttrInstanceValue",
    "AttrSlot",
    "AttrInstanceDict",
    "AttrPoly",
    "StoreAttrGeneric",
];
/// Names of StoreAttr's variants, for coverage.
pub const STORE_ATTR_VARIANTS: &[&str] = STORE_ATTR_TEMPLATES.split_at(4).0;

impl AttrVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            AttrVariant::InstanceValue { .. } => ATTR_VARIANTS[0],
            AttrVariant::Slot { .. } => ATTR_VARIANTS[1],
            AttrVariant::Module { .. } => ATTR_VARIANTS[2],
            AttrVariant::InstanceDict { .. } => ATTR_VARIANTS[3],
            AttrVariant::Class { .. } => ATTR_VARIANTS[4],
            AttrVariant::Poly(_) => ATTR_VARIANTS[5],
        }
    }

    /// The exact type and version tag an instance variant guards (`None` for the others).
    fn instance_guard(self) -> Option<(*mut ffi::PyTypeObject, u32)> {
        match self {
            AttrVariant::InstanceValue { tp, version, .. }
            | AttrVariant::InstanceDict { tp, version, .. }
            | AttrVariant::Slot { tp, version, .. } => Some((tp, version)),
            AttrVariant::Module { .. } | AttrVariant::Class { .. } | AttrVariant::Poly(_) => None,
        }
    }

    /// The exact type an instance variant guards (`None` for the others).
    fn instance_type(self) -> Option<*mut ffi::PyTypeObject> {
        self.instance_guard().map(|(tp, _)| tp)
    }

    /// A polymorphic variant's entry for an object of type `tp` (the variant itself when
    /// it is not polymorphic).
    #[inline]
    fn entry_for(self, tp: *mut ffi::PyTypeObject) -> Option<AttrVariant> {
        match self {
            AttrVariant::Poly(es) => es.iter().find(|e| e.instance_type() == Some(tp)).copied(),
            v => Some(v),
        }
    }
}

use crate::quick::POLY_MAX;

/// A LoadAttr or StoreAttr site's variant widened for receiver `o` that it did not fit:
/// `o`'s class (one not seen at the site yet) added, up to `POLY_MAX`. `None` when it
/// does not widen (a module or class attribute, a receiver that fits no variant, a class
/// already there whose version tag or layout changed, a full cache): then the site counts
/// a miss.
///
/// # Safety
/// GIL held.
pub unsafe fn widen_attr(
    ctx: &Ctx,
    name: NameIdx,
    v: AttrVariant,
    o: &Value,
    store: bool,
) -> Option<AttrVariant> {
    let seen: &[AttrVariant] = match &v {
        AttrVariant::Poly(es) => es,
        AttrVariant::InstanceValue { .. }
        | AttrVariant::InstanceDict { .. }
        | AttrVariant::Slot { .. } => std::slice::from_ref(&v),
        AttrVariant::Module { .. } | AttrVariant::Class { .. } => return None,
    };
    if seen.len() >= POLY_MAX {
        return None;
    }
    let new = observe_attr(ctx, name, o, store)?;
    if seen
        .iter()
        .any(|e| e.instance_type() == new.instance_type())
    {
        return None;
    }
    let mut all = seen.to_vec();
    all.push(new);
    // Leaked: at most POLY_MAX - 1 widenings per site between its returns to generic
    // (bounded by the flip limit), and compiled code refers to the entries by address.
    Some(AttrVariant::Poly(Box::leak(all.into_boxed_slice())))
}

/// The value an instance's dict has at entry `hint` for `name`, if that entry still is
/// `name`'s (NULL: deleted).
#[inline]
unsafe fn dict_hint_value(
    dict: *mut ffi::PyObject,
    hint: u32,
    name: *mut ffi::PyObject,
) -> Option<*mut ffi::PyObject> {
    dict_hint_slot(dict, hint, name).map(|slot| *slot)
}

/// Where an instance's dict keeps the value of entry `hint` (in the entry, or a split
/// table's values), if that entry still is `name`'s.
#[inline]
unsafe fn dict_hint_slot(
    dict: *mut ffi::PyObject,
    hint: u32,
    name: *mut ffi::PyObject,
) -> Option<*mut *mut ffi::PyObject> {
    let d = head(dict);
    let keys = str_keys(d.ma_keys)?;
    if hint as isize >= nentries(keys) {
        return None;
    }
    let entry = str_entry(keys, hint as usize);
    if *entry != name {
        return None;
    }
    Some(match d.ma_values.is_null() {
        true => entry.add(1),
        false => d.ma_values.add(hint as usize),
    })
}

/// Whether `p`'s type still is the one a variant was made for.
#[inline]
unsafe fn type_holds(p: *mut ffi::PyObject, tp: *mut ffi::PyTypeObject, version: u32) -> bool {
    ffi::Py_TYPE(p) == tp && (*tp).tp_version_tag == version
}

/// `p` unless NULL.
#[inline]
fn non_null(p: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    (!p.is_null()).then_some(p)
}

/// The `__dict__` of `p` when `p` still has the type and version tag an AttrInstanceDict
/// was made for, and a `__dict__` at all.
#[inline]
unsafe fn typed_dict(
    p: *mut ffi::PyObject,
    tp: *mut ffi::PyTypeObject,
    version: u32,
) -> Option<*mut ffi::PyObject> {
    if !type_holds(p, tp, version) {
        return None;
    }
    non_null(managed_dict(p))
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
        // Nothing on the class: the inline values, found by the shared keys' index, or
        // the instance's own dict.
        if (*tp).tp_flags & ffi::Py_TPFLAGS_MANAGED_DICT == 0 {
            return None;
        }
        // An instance whose `__dict__` was made gets InstanceDict, even when the name
        // is in the class's shared keys: native code of an InstanceValue site leaves
        // such instances to the op's generic path.
        if inline_values(p).is_null() {
            let dict = managed_dict(p);
            if dict.is_null() {
                return None;
            }
            // A store finds the name at its entry (`dict_store`). A name not there yet is
            // about to be added by the generic store that follows this look, at the end
            // of the entries: that is where later stores look (a guess that the entry
            // check keeps safe: a store that misses goes in by name).
            let keys = str_keys(head(dict).ma_keys);
            let hint = match store {
                true => keys.map_or(0, |k| str_key_index(k, n).unwrap_or(nentries(k) as usize)),
                false => str_key_index(keys?, n)?,
            };
            ctx.compiled.keep_alive(tp as *mut ffi::PyObject);
            return Some(AttrVariant::InstanceDict {
                tp,
                version,
                hint: u32::try_from(hint).ok()?,
                name: n,
            });
        }
        let index = str_key_index(shared_keys(tp)?, n)?;
        AttrVariant::InstanceValue {
            tp,
            version,
            index: u32::try_from(index).ok()?,
            name: n,
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
    if !p.is_null() && ffi::Py_TYPE(p) == std::ptr::addr_of_mut!(ffi::PyType_Type) {
        return observe_class_attr(ctx, name, p);
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

/// What `type.__getattribute__` finds for `cls.name` in the class's MRO, with nothing of
/// that name on `type` itself and a valid version tag to guard it by: (the class, the
/// attribute, borrowed).
unsafe fn class_lookup(
    ctx: &Ctx,
    name: NameIdx,
    cls: *mut ffi::PyObject,
) -> Option<(*mut ffi::PyTypeObject, *mut ffi::PyObject)> {
    let n = super::name_obj(ctx, name).ok()?;
    if !crate::cpy::_PyType_Lookup(std::ptr::addr_of_mut!(ffi::PyType_Type), n).is_null() {
        return None;
    }
    let tp = cls as *mut ffi::PyTypeObject;
    let v = crate::cpy::_PyType_Lookup(tp, n);
    if v.is_null()
        || (*tp).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0
        || (*tp).tp_version_tag == 0
    {
        return None;
    }
    Some((tp, v))
}

/// A class's attribute (`class_lookup`) when it is a plain value, a function or a
/// staticmethod.
unsafe fn observe_class_attr(
    ctx: &Ctx,
    name: NameIdx,
    cls: *mut ffi::PyObject,
) -> Option<AttrVariant> {
    let (tp, v) = class_lookup(ctx, name, cls)?;
    let vt = ffi::Py_TYPE(v);
    let value =
        if (*vt).tp_descr_get.is_none() || vt == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
            // A function's __get__ with no instance gives the function itself.
            v
        } else if vt == std::ptr::addr_of_mut!(ffi::PyStaticMethod_Type) {
            crate::cpy::staticmethod_callable(v)?
        } else {
            return None;
        };
    ctx.compiled.keep_alive(cls);
    Some(AttrVariant::Class {
        cls: tp,
        version: (*tp).tp_version_tag,
        value,
    })
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
    let r = match v.entry_for(ffi::Py_TYPE(p))? {
        AttrVariant::Poly(_) => return None,
        AttrVariant::Module { module, slot } => {
            // The type too: `__class__` may be set to a module subclass (lazy modules).
            if p != module || ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyModule_Type) {
                return None;
            }
            super::globals::slot_value((*(module as *mut ModuleHead)).md_dict, slot)?
        }
        AttrVariant::InstanceValue {
            tp,
            version,
            index,
            name,
        } => {
            if !type_holds(p, tp, version) {
                return None;
            }
            let values = inline_values(p);
            if values.is_null() {
                dict_hint_value(non_null(managed_dict(p))?, index, name)?
            } else {
                *values.add(index as usize)
            }
        }
        AttrVariant::Class {
            cls,
            version,
            value,
        } => {
            if p != cls as *mut ffi::PyObject
                || ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyType_Type)
                || (*cls).tp_version_tag != version
            {
                return None;
            }
            value
        }
        AttrVariant::InstanceDict {
            tp,
            version,
            hint,
            name,
        } => dict_hint_value(typed_dict(p, tp, version)?, hint, name)?,
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
    let slot = match v.entry_for(ffi::Py_TYPE(p))? {
        AttrVariant::Module { .. } | AttrVariant::Class { .. } | AttrVariant::Poly(_) => {
            return None
        }
        AttrVariant::InstanceDict {
            tp,
            version,
            hint,
            name,
        } => {
            // What `object.__setattr__` does for an instance with a `__dict__` and no
            // data descriptor of that name on its class (the version tag says so).
            let dict = typed_dict(p, tp, version)?;
            return (dict_store(dict, hint as u64, name, x) != 0).then_some(());
        }
        AttrVariant::InstanceValue {
            tp,
            version,
            index,
            name,
        } => {
            if !type_holds(p, tp, version) {
                return None;
            }
            let values = inline_values(p);
            if values.is_null() {
                // Its `__dict__` was made: stored at the name's entry (the shared keys'
                // index) or by name, as InstanceDict stores.
                let dict = non_null(managed_dict(p))?;
                return (dict_store(dict, index as u64, name, x) != 0).then_some(());
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
    /// `module.function(...)` or `Class.function(...)`: modules and classes have no
    /// methods of their own here (their `__getattribute__` is not the generic one), so
    /// LOAD_METHOD pushes NULL and the attribute, read as LoadAttr's AttrModule or
    /// AttrClass reads it (the variant inside).
    Module(AttrVariant),
    /// `obj.method(...)` on an instance of a Python class (see `InstanceMethod`).
    Instance(InstanceMethod),
    /// The same at a site that has seen instances of several classes (2 to `POLY_MAX`),
    /// as CPython's and V8's polymorphic inline caches: each entry is tried in turn.
    Poly(&'static [InstanceMethod]),
    /// `Class.method(...)` for a classmethod wrapping a function (any method descriptor),
    /// on a class whose metatype is exactly `type` (see `AttrVariant::Class`): the
    /// function, with the class as its first argument, which is all the bound method
    /// would do.
    ClassMethod {
        /// The class (kept alive by the code; compared by identity).
        cls: *mut ffi::PyTypeObject,
        /// Its version tag then (the classmethod stays in its dict while it holds).
        version: u32,
        /// The classmethod's function (held by the classmethod).
        func: *mut ffi::PyObject,
    },
}

/// `obj.method(...)` on an instance of a Python class: the method (a function in the
/// class's dict, or a method descriptor it inherits) with the object as `self`, when the
/// instance does not shadow it (3.11's LOAD_METHOD_NO_DICT, LOAD_METHOD_WITH_VALUES and
/// LOAD_METHOD_WITH_DICT): its type has no instance dicts; or its instances keep
/// attributes in inline values laid out by shared keys that lack the name (they only
/// grow: an unchanged count says they still lack it) and this one has no `__dict__`; or
/// this one's `__dict__` (str keys only) lacks the name (`dict_lacks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceMethod {
    /// The type seen (kept alive by the code; compared by identity).
    pub tp: *mut ffi::PyTypeObject,
    /// Its version tag then (the method stays in its dict while the tag holds).
    pub version: u32,
    /// The method (held by the type's dict).
    pub method: *mut ffi::PyObject,
    /// How many names the type's shared keys had; -1 for a type without instance dicts.
    pub keys: i64,
    /// The method's name (interned, held by the code object), looked up in an instance's
    /// `__dict__`.
    pub name: *mut ffi::PyObject,
}

impl InstanceMethod {
    /// The method, if `p` is an instance this entry fits.
    ///
    /// # Safety
    /// GIL held; `p` a live object.
    #[inline]
    unsafe fn of(&self, p: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
        (type_holds(p, self.tp, self.version) && unshadowed(p, self.tp, self.keys, self.name))
            .then_some(self.method)
    }
}

/// Names of LoadMethod's variants, for coverage.
pub const METHOD_VARIANTS: &[&str] = &[
    "LoadMethodBuiltin",
    "LoadMethodModule",
    "LoadMethodInstance",
    "LoadMethodClass",
    "LoadMethodPoly",
    "LoadMethodClassmethod",
];

impl MethodVariant {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            MethodVariant::Builtin { .. } => METHOD_VARIANTS[0],
            MethodVariant::Module(AttrVariant::Class { .. }) => METHOD_VARIANTS[3],
            MethodVariant::Module(_) => METHOD_VARIANTS[1],
            MethodVariant::Instance(_) => METHOD_VARIANTS[2],
            MethodVariant::Poly(_) => METHOD_VARIANTS[4],
            MethodVariant::ClassMethod { .. } => METHOD_VARIANTS[5],
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
    if ffi::Py_TYPE(p) == std::ptr::addr_of_mut!(ffi::PyType_Type) {
        // type_getattro is not the generic one either: the attribute with no self (a
        // classmethod's bound method, taken apart).
        return match observe_class_attr(ctx, name, p) {
            Some(attr) => Some(MethodVariant::Module(attr)),
            None => observe_classmethod(ctx, name, p),
        };
    }
    let n = super::name_obj(ctx, name).ok()?;
    let tp = ffi::Py_TYPE(p);
    let generic = ffi::PyObject_GenericGetAttr
        as unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;
    let flags = (*tp).tp_flags;
    if !matches!((*tp).tp_getattro, Some(g) if std::ptr::fn_addr_eq(g, generic)) {
        return None;
    }
    let method = crate::cpy::_PyType_Lookup(tp, n);
    if method.is_null() || (*ffi::Py_TYPE(method)).tp_flags & ffi::Py_TPFLAGS_METHOD_DESCRIPTOR == 0
    {
        return None;
    }
    if flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
        if flags & ffi::Py_TPFLAGS_IMMUTABLETYPE == 0 || (*tp).tp_dictoffset != 0 {
            return None;
        }
        return Some(MethodVariant::Builtin { tp, method });
    }
    if flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG == 0 || (*tp).tp_version_tag == 0 {
        return None;
    }
    let keys = if flags & ffi::Py_TPFLAGS_MANAGED_DICT != 0 {
        let keys = shared_keys(tp)?;
        let dict = managed_dict(p);
        if str_key_index(keys, n).is_some() || !dict.is_null() && dict_lacks(dict, n) == 0 {
            return None;
        }
        nentries(keys) as i64
    } else if (*tp).tp_dictoffset == 0 {
        -1
    } else {
        return None;
    };
    // The guards compare the type by identity: it must stay this object.
    ctx.compiled.keep_alive(tp as *mut ffi::PyObject);
    Some(MethodVariant::Instance(InstanceMethod {
        tp,
        version: (*tp).tp_version_tag,
        method,
        keys,
        name: n,
    }))
}

/// A LoadMethod site's variant widened for receiver `o` that its instance entries did not
/// fit: `o`'s class (one not seen at the site yet) added, up to `POLY_MAX`. `None` when
/// it does not widen (another kind of receiver or variant, a class already there whose
/// version tag changed, a full cache): then the site counts a miss.
///
/// # Safety
/// GIL held.
pub unsafe fn widen_method(
    ctx: &Ctx,
    name: NameIdx,
    v: MethodVariant,
    o: &Value,
) -> Option<MethodVariant> {
    let seen: &[InstanceMethod] = match &v {
        MethodVariant::Instance(m) => std::slice::from_ref(m),
        MethodVariant::Poly(ms) => ms,
        MethodVariant::Builtin { .. }
        | MethodVariant::Module(_)
        | MethodVariant::ClassMethod { .. } => return None,
    };
    let Some(MethodVariant::Instance(new)) = observe_load_method(ctx, name, o) else {
        return None;
    };
    if seen.len() >= POLY_MAX || seen.iter().any(|m| m.tp == new.tp) {
        return None;
    }
    let mut all = seen.to_vec();
    all.push(new);
    // Leaked: at most POLY_MAX - 1 widenings per site between its returns to generic
    // (bounded by the flip limit), and compiled code refers to the entries by address.
    Some(MethodVariant::Poly(Box::leak(all.into_boxed_slice())))
}

/// `MethodVariant::ClassMethod` for `cls.name` (`class_lookup`), if that is a classmethod
/// of a function.
unsafe fn observe_classmethod(
    ctx: &Ctx,
    name: NameIdx,
    cls: *mut ffi::PyObject,
) -> Option<MethodVariant> {
    let (tp, v) = class_lookup(ctx, name, cls)?;
    if ffi::Py_TYPE(v) != std::ptr::addr_of_mut!(ffi::PyClassMethod_Type) {
        return None;
    }
    // The classmethod binds through its callable's __get__ (3.11's cm_descr_get): for a
    // method descriptor (a function, a tiered wrapper) the bound method calls it with the
    // class first, by that flag's contract; anything else may bind otherwise.
    let func = crate::cpy::staticmethod_callable(v)?;
    if (*ffi::Py_TYPE(func)).tp_flags & ffi::Py_TPFLAGS_METHOD_DESCRIPTOR == 0 {
        return None;
    }
    ctx.compiled.keep_alive(cls);
    Some(MethodVariant::ClassMethod {
        cls: tp,
        version: (*tp).tp_version_tag,
        func,
    })
}

/// Whether an instance of a Python class still does not shadow the method of its type
/// (`MethodVariant::Instance`'s guards past the type's).
#[inline]
unsafe fn unshadowed(
    p: *mut ffi::PyObject,
    tp: *mut ffi::PyTypeObject,
    keys: i64,
    name: *mut ffi::PyObject,
) -> bool {
    if keys < 0 {
        return true;
    }
    let dict = managed_dict(p);
    if !dict.is_null() {
        return dict_lacks(dict, name) != 0;
    }
    shared_keys(tp).is_some_and(|k| nentries(k) as i64 == keys)
}

/// `dict[name] = x` for an instance's `__dict__` (what `object.__setattr__` does when the
/// class has no data descriptor of that name): 1, or 0 when out of memory (the dict is as
/// it was, the error cleared: the generic op tries again and raises it). Native code
/// calls this too.
///
/// A name still at entry `hint` with a value there has it replaced in place, as 3.11's
/// STORE_ATTR_WITH_HINT does (and `insertdict` for a split table): the dict tracked by
/// the collector if `x` needs it, a fresh version tag, then the old value released. That
/// skips the hashed lookup, which made go's stores to its squares cost 45 instructions.
///
/// # Safety
/// GIL held; `dict` a live dict, `name` a str, `x` a live object.
pub(crate) unsafe extern "C" fn dict_store(
    dict: *mut ffi::PyObject,
    hint: u64,
    name: *mut ffi::PyObject,
    x: *mut ffi::PyObject,
) -> i64 {
    if let Some(slot) = dict_hint_slot(dict, hint as u32, name) {
        let old = *slot;
        if !old.is_null() {
            if !crate::cpy::gc_is_tracked(dict) && crate::cpy::gc_may_be_tracked(x) {
                ffi::PyObject_GC_Track(dict as *mut std::ffi::c_void);
            }
            ffi::Py_INCREF(x);
            *slot = x;
            bump_version(dict);
            ffi::Py_DECREF(old);
            return 1;
        }
    }
    if ffi::PyDict_SetItem(dict, name, x) < 0 {
        ffi::PyErr_Clear();
        return 0;
    }
    1
}

/// 1 if instance dict `dict` has only str keys and not `name` (an interned str), else 0
/// (then the generic lookup decides). With only str keys the lookup compares strs, so
/// it runs no Python code and cannot raise; native code calls this too. It probes the
/// index itself (`str_keys_lack`): through PyDict_GetItemWithError, this was 29
/// instructions of each of go's method loads on its squares.
///
/// # Safety
/// GIL held; `dict` a live dict.
pub(crate) unsafe extern "C" fn dict_lacks(
    dict: *mut ffi::PyObject,
    name: *mut ffi::PyObject,
) -> i64 {
    let d = head(dict);
    let Some(keys) = str_keys(d.ma_keys) else {
        return 0;
    };
    // A combined table's entry holds its value: the probe decides. (A split table's name
    // may be there without a value in this dict: the lookup decides.)
    match str_keys_lack(keys, name) {
        Some(lacks) if lacks || d.ma_values.is_null() => lacks as i64,
        _ => ffi::PyDict_GetItemWithError(dict, name).is_null() as i64,
    }
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
        MethodVariant::ClassMethod { cls, version, func } => {
            if o.as_ptr() != cls as *mut ffi::PyObject || (*cls).tp_version_tag != version {
                return None;
            }
            Some((Value::from_borrowed(func), o.clone()))
        }
        MethodVariant::Instance(_) | MethodVariant::Poly(_) => {
            let p = o.as_ptr();
            if p.is_null() {
                return None;
            }
            let method = match v {
                MethodVariant::Poly(ms) => ms.iter().find_map(|m| m.of(p))?,
                MethodVariant::Instance(m) => m.of(p)?,
                MethodVariant::Builtin { .. }
                | MethodVariant::Module(_)
                | MethodVariant::ClassMethod { .. } => return None,
            };
            Some((Value::from_borrowed(method), o.clone()))
        }
    }
}
