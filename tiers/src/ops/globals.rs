//! Module globals and builtins, looked up at every run so rebinding is always seen.

use crate::cpy::dict;
use crate::interp::Ctx;
use crate::native::emit::{mem, Emit};
use crate::quick::Quick;
use crate::value::{status, tag, PyResult, Raised, Value};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, Value as CValue};
use pyo3_ffi as ffi;
use tiered_ir::NameIdx;

/// Looks `key` up in a mapping: `Ok(None)` when missing (KeyError swallowed).
unsafe fn lookup(map: *mut ffi::PyObject, key: *mut ffi::PyObject) -> PyResult<Option<Value>> {
    if ffi::PyDict_CheckExact(map) != 0 {
        let v = ffi::PyDict_GetItemWithError(map, key);
        if v.is_null() {
            return if ffi::PyErr_Occurred().is_null() {
                Ok(None)
            } else {
                Err(Raised)
            };
        }
        return Ok(Some(Value::from_borrowed(v)));
    }
    let v = ffi::PyObject_GetItem(map, key);
    if v.is_null() {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError) != 0 {
            ffi::PyErr_Clear();
            return Ok(None);
        }
        return Err(Raised);
    }
    Ok(Some(Value::from_owned(v)?))
}

/// Raises NameError for `name`, with `.name` set as 3.11 does (for suggestions).
unsafe fn name_error(name: *mut ffi::PyObject) -> Raised {
    let text = super::str_of(name);
    super::raise(
        ffi::PyExc_NameError,
        &format!("name '{text}' is not defined"),
    );
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
    ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
    if !v.is_null() && ffi::PyObject_SetAttrString(v, c"name".as_ptr(), name) < 0 {
        ffi::PyErr_Clear();
    }
    ffi::PyErr_Restore(t, v, tb);
    Raised
}

/// LoadGlobal: globals, then builtins, else NameError.
///
/// # Safety
/// GIL held.
pub unsafe fn load_global(ctx: &Ctx, name: NameIdx) -> PyResult<Value> {
    let n = super::name_obj(ctx, name)?;
    if let Some(v) = lookup(ctx.globals, n)? {
        return Ok(v);
    }
    if let Some(v) = lookup(ctx.builtins, n)? {
        return Ok(v);
    }
    Err(name_error(n))
}

/// StoreGlobal: `globals[name] = v`.
///
/// # Safety
/// GIL held.
pub unsafe fn store_global(ctx: &Ctx, name: NameIdx, v: &Value) -> PyResult<()> {
    let n = super::name_obj(ctx, name)?;
    status(ffi::PyDict_SetItem(ctx.globals, n, v.as_ptr()))
}

/// DeleteGlobal: `del globals[name]`, NameError if unbound.
///
/// # Safety
/// GIL held.
pub unsafe fn delete_global(ctx: &Ctx, name: NameIdx) -> PyResult<()> {
    let n = super::name_obj(ctx, name)?;
    if ffi::PyDict_DelItem(ctx.globals, n) < 0 {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError) != 0 {
            ffi::PyErr_Clear();
            return Err(name_error(n));
        }
        return Err(Raised);
    }
    Ok(())
}

/// LoadBuildClass: `builtins.__build_class__`.
///
/// # Safety
/// GIL held.
pub unsafe fn load_build_class(ctx: &Ctx) -> PyResult<Value> {
    let key = ffi::PyUnicode_InternFromString(c"__build_class__".as_ptr());
    let key = crate::value::Owned::new(key)?;
    match lookup(ctx.builtins, key.ptr())? {
        Some(v) => Ok(v),
        None => Err(super::raise(
            ffi::PyExc_NameError,
            "__build_class__ not found",
        )),
    }
}

/// Where a name's entry sits in an exact dict's keys object, as 3.11's LOAD_GLOBAL_MODULE
/// caches it by index: read live, so rebinding the name (or any other) is seen without
/// invalidating anything. While the dict still has these keys with this layout, the entry
/// at `offset` is a real entry; it is the name's while its key is the name object (3.11
/// empties both key and value of a deleted entry, and zeroes unused ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySlot {
    /// The keys object (compared by address; never dereferenced unless it is the dict's).
    keys: usize,
    /// Its size, index width and kind bytes (`dk_log2_size`, `dk_log2_index_bytes`,
    /// `dk_kind`): the same keys address with these fixes where the entries are.
    layout: u32,
    /// Byte offset of the entry's key from the keys object (the value follows it).
    offset: i32,
    /// The name (one of the code's names, alive as long as the code).
    name: *mut ffi::PyObject,
}

/// A LoadGlobal specialized on where the name is found.
#[derive(Clone, Copy, Debug)]
pub enum GlobalCache {
    /// In the globals.
    Module(EntrySlot),
    /// In the builtins, and absent from the globals when their version was the one in the
    /// compiled code's per-instruction slot (re-checked and refreshed when it changes).
    Builtin(EntrySlot),
}

/// Names of LoadGlobal's variants, for coverage.
pub const GLOBAL_VARIANTS: &[&str] = &["LoadGlobalModule", "LoadGlobalBuiltin"];

impl GlobalCache {
    /// The variant's name.
    pub fn name(self) -> &'static str {
        match self {
            GlobalCache::Module(_) => GLOBAL_VARIANTS[0],
            GlobalCache::Builtin(_) => GLOBAL_VARIANTS[1],
        }
    }
}

/// The slot of `name` in exact dict `d` if it holds that very object as a key.
pub(crate) unsafe fn find_slot(
    d: *mut ffi::PyObject,
    name: *mut ffi::PyObject,
) -> Option<EntrySlot> {
    if ffi::PyDict_CheckExact(d) == 0 {
        return None;
    }
    // SAFETY: an exact dict has 3.11's layout; its keys object is live.
    let head = dict::head(d);
    let keys = head.ma_keys;
    let kind = dict::kind(keys);
    if !head.ma_values.is_null() || kind == dict::KIND_SPLIT {
        return None;
    }
    let (size, key_at) = match kind {
        dict::KIND_GENERAL => dict::GENERAL_ENTRY,
        _ => dict::UNICODE_ENTRY,
    };
    let entries = dict::entries_offset(keys);
    (0..dict::nentries(keys) as usize)
        .map(|i| entries + i * size + key_at)
        .find(|&off| *(keys.add(off) as *const *mut ffi::PyObject) == name)
        .map(|off| EntrySlot {
            keys: keys as usize,
            layout: dict::layout(keys),
            offset: off as i32,
            name,
        })
}

/// The value in `slot` of `d` (borrowed), if `d` still has that entry for the name.
#[inline]
pub(crate) unsafe fn slot_value(
    d: *mut ffi::PyObject,
    slot: EntrySlot,
) -> Option<*mut ffi::PyObject> {
    // SAFETY: ctx dicts are exact dicts when a slot was cached (checked by find_slot, and
    // a function's globals and builtins cannot be replaced).
    let keys = dict::head(d).ma_keys;
    if keys as usize != slot.keys || dict::layout(keys) != slot.layout {
        return None;
    }
    let entry = keys.add(slot.offset as usize) as *const *mut ffi::PyObject;
    let v = *entry.add(1);
    (*entry == slot.name && !v.is_null()).then_some(v)
}

/// Whether `name` is (still) absent from the globals while their version is the one
/// cached for instruction `pc`, re-checking and refreshing that version when it changed.
unsafe fn absent_from_globals(ctx: &Ctx, pc: usize, name: *mut ffi::PyObject) -> bool {
    let cached = &ctx.compiled.global_versions[pc];
    let now = dict::version(ctx.globals);
    if now == cached.get() {
        return true;
    }
    let v = ffi::PyDict_GetItemWithError(ctx.globals, name);
    if !v.is_null() {
        return false;
    }
    if !ffi::PyErr_Occurred().is_null() {
        // The generic lookup will raise it again.
        ffi::PyErr_Clear();
        return false;
    }
    cached.set(now);
    true
}

/// The cache for a global just loaded generically (exact dicts holding the name object).
///
/// # Safety
/// GIL held.
pub unsafe fn observe_global(ctx: &Ctx, pc: usize, name: NameIdx) -> Option<GlobalCache> {
    let n = super::name_obj(ctx, name).ok()?;
    if ffi::PyDict_CheckExact(ctx.globals) == 0 || ffi::PyDict_CheckExact(ctx.builtins) == 0 {
        return None;
    }
    if let Some(slot) = find_slot(ctx.globals, n) {
        return Some(GlobalCache::Module(slot));
    }
    ctx.compiled.global_versions[pc].set(0);
    let slot = find_slot(ctx.builtins, n)?;
    absent_from_globals(ctx, pc, n).then_some(GlobalCache::Builtin(slot))
}

/// The cached LoadGlobal (`None` when the cache no longer holds).
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn load_global_quick(ctx: &Ctx, pc: usize, c: GlobalCache) -> Option<Value> {
    let v = match c {
        GlobalCache::Module(slot) => slot_value(ctx.globals, slot)?,
        GlobalCache::Builtin(slot) => {
            if !absent_from_globals(ctx, pc, slot.name) {
                return None;
            }
            slot_value(ctx.builtins, slot)?
        }
    };
    Some(Value::from_borrowed(v))
}

/// For native code: whether the Builtin cache of instruction `pc` still holds after the
/// globals changed (refreshing its version): 1 yes, 0 no.
///
/// # Safety
/// GIL held; `pc` is a LoadGlobal specialized as Builtin.
pub unsafe fn recheck_builtin(ctx: &Ctx, pc: usize) -> i64 {
    match ctx.compiled.quick[pc].get() {
        Quick::Global(GlobalCache::Builtin(slot)) => absent_from_globals(ctx, pc, slot.name) as i64,
        _ => 0,
    }
}

/// Native code reading the value of `slot` in exact dict `d`; a changed entry branches
/// to `fail`.
pub(crate) fn emit_slot_value(e: &mut Emit, d: CValue, slot: EntrySlot, fail: Block) -> CValue {
    let keys = e.b.ins().load(e.ptr, mem(), d, dict::DICT_KEYS);
    e.guard_eq(keys, slot.keys as i64, fail);
    let lay = e.b.ins().load(types::I32, mem(), keys, dict::KEYS_LAYOUT);
    let lay = e.b.ins().band_imm_u(lay, dict::LAYOUT_MASK as i64);
    e.guard_eq(lay, slot.layout as i64, fail);
    let key = e.b.ins().load(e.ptr, mem(), keys, slot.offset);
    e.guard_eq(key, slot.name as i64, fail);
    let v = e.b.ins().load(e.ptr, mem(), keys, slot.offset + 8);
    let gone = e.b.ins().icmp_imm_s(IntCC::Equal, v, 0);
    e.fail_if(gone, fail);
    v
}

/// The native template of StoreGlobal: `PyDict_SetItem` into the globals directly (as
/// `store_global`), raising where it raises.
pub(crate) fn emit_store_global(e: &mut Emit, pc: usize, name: NameIdx) -> Option<&'static str> {
    let &n = e.c.objects.names.get(name.0 as usize)?;
    let v = e.operand_objects(pc)[0];
    let globals = e.globals_ptr();
    let n = e.b.ins().iconst(e.ptr, n as i64);
    let r = e
        .call(
            ffi::PyDict_SetItem as *const () as usize,
            &[e.ptr, e.ptr, e.ptr],
            Some(types::I32),
            &[globals, n, v],
        )
        .expect("returns");
    let failed = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
    e.raise_if(pc, failed);
    Some("StoreGlobal")
}

/// The native template of a cached LoadGlobal: the entry read in place (for a builtin,
/// after the globals' version is found unchanged, or re-checked by a helper).
pub(crate) fn emit_load_global(
    e: &mut Emit,
    pc: usize,
    q: Quick,
    fail: Block,
) -> Option<&'static str> {
    let Quick::Global(c) = q else { return None };
    let inst = e.c.linear.insts[pc];
    let slot = match c {
        GlobalCache::Module(slot) => {
            let g = e.globals_ptr();
            let v = emit_slot_value(e, g, slot, fail);
            e.incref(v);
            e.set(inst.dst, tag::OBJ, v);
            return Some(c.name());
        }
        GlobalCache::Builtin(slot) => slot,
    };
    let g = e.globals_ptr();
    let now = e.b.ins().load(types::I64, mem(), g, dict::DICT_VERSION);
    let cached_at =
        e.b.ins()
            .iconst(e.ptr, e.c.global_versions[pc].as_ptr() as i64);
    let cached = e.b.ins().load(types::I64, mem(), cached_at, 0);
    let same = e.b.ins().icmp(IntCC::Equal, now, cached);
    let checked = e.b.create_block();
    let recheck = e.b.create_block();
    e.b.ins().brif(same, checked, &[], recheck, &[]);
    e.b.switch_to_block(recheck);
    let ok = e.call_pc_helper(
        crate::native::helpers::recheck_builtin as *const () as usize,
        pc,
        None,
    );
    let shadowed = e.b.ins().icmp_imm_s(IntCC::Equal, ok, 0);
    e.fail_if(shadowed, fail);
    e.b.ins().jump(checked, &[]);
    e.b.switch_to_block(checked);
    let bd = e.builtins_ptr();
    let v = emit_slot_value(e, bd, slot, fail);
    e.incref(v);
    e.set(inst.dst, tag::OBJ, v);
    Some(c.name())
}
