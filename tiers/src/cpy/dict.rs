//! 3.11's dict internals (Include/cpython/dictobject.h, Include/internal/pycore_dict.h,
//! Objects/dictobject.c) and where objects with a managed dict keep their attributes
//! (Include/internal/pycore_object.h): the one place tiered reads them, tier 1 through the
//! functions here and native code through the byte offsets. 3.12 and 3.13 move the
//! managed dict and its inline values and change the version tag's low bits; their ports
//! change this file. `check_layouts` compares it with the running interpreter at import.

use pyo3_ffi as ffi;

/// 3.11's `PyDictObject`.
#[repr(C)]
pub struct DictHead {
    ob_base: ffi::PyObject,
    pub ma_used: ffi::Py_ssize_t,
    pub ma_version_tag: u64,
    pub ma_keys: *mut u8,
    /// A split dict's values (`PyDictValues`: the array itself); NULL when combined.
    pub ma_values: *mut *mut ffi::PyObject,
}

/// 3.11's `PyDictKeysObject` head; its index follows, then its entries.
#[repr(C)]
pub struct KeysHead {
    dk_refcnt: ffi::Py_ssize_t,
    pub dk_log2_size: u8,
    pub dk_log2_index_bytes: u8,
    pub dk_kind: u8,
    dk_version: u32,
    dk_usable: ffi::Py_ssize_t,
    pub dk_nentries: ffi::Py_ssize_t,
}

/// Byte offsets in a dict, for native code.
pub const DICT_VERSION: i32 = std::mem::offset_of!(DictHead, ma_version_tag) as i32;
pub const DICT_KEYS: i32 = std::mem::offset_of!(DictHead, ma_keys) as i32;
pub const DICT_VALUES: i32 = std::mem::offset_of!(DictHead, ma_values) as i32;

/// Byte offsets in a keys object, for native code: the index's width, the kind, the
/// entry count, and the index itself (right after the head; the entries follow it).
pub const KEYS_LOG2_INDEX_BYTES: i32 = std::mem::offset_of!(KeysHead, dk_log2_index_bytes) as i32;
pub const KEYS_KIND: i32 = std::mem::offset_of!(KeysHead, dk_kind) as i32;
pub const KEYS_NENTRIES: i32 = std::mem::offset_of!(KeysHead, dk_nentries) as i32;
pub const KEYS_INDICES: i32 = std::mem::size_of::<KeysHead>() as i32;

/// The keys' layout word: size, index width and kind bytes read as one u32 at
/// `KEYS_LAYOUT` and masked (the fourth byte is padding). The same keys object with the
/// same word has its entries at the same offsets.
pub const KEYS_LAYOUT: i32 = std::mem::offset_of!(KeysHead, dk_log2_size) as i32;
pub const LAYOUT_MASK: u32 = 0x00ff_ffff;
const _: () = assert!(KEYS_KIND == KEYS_LAYOUT + 2 && KEYS_LOG2_INDEX_BYTES == KEYS_LAYOUT + 1);

/// `dk_kind`: any keys (entries of hash, key, value), str keys (key, value), and a split
/// table (str keys shared by instance dicts, values in each dict's `ma_values`).
pub const KIND_GENERAL: u8 = 0;
pub const KIND_UNICODE: u8 = 1;
pub const KIND_SPLIT: u8 = 2;
/// Bytes per entry of a general and of a str-keyed table, and where the key is in each.
pub const GENERAL_ENTRY: (usize, usize) = (24, 8);
pub const UNICODE_ENTRY: (usize, usize) = (16, 0);

/// An index slot never used (`DKIX_EMPTY`), and how the probe sequence mixes in the
/// hash's higher bits (`PERTURB_SHIFT`).
const DKIX_EMPTY: isize = -1;
const PERTURB_SHIFT: u32 = 5;

/// Byte offsets before an object with a managed dict (`Py_TPFLAGS_MANAGED_DICT`) of its
/// dict (NULL while its attributes are in inline values; `_PyObject_ManagedDictPointer`)
/// and of its inline values (NULL once the dict exists; `_PyObject_ValuesPointer`).
pub const MANAGED_DICT: i32 = -3 * std::mem::size_of::<*mut ffi::PyObject>() as i32;
pub const INLINE_VALUES: i32 = -4 * std::mem::size_of::<*mut ffi::PyObject>() as i32;

/// Byte offset of a str's cached hash (`PyASCIIObject.hash`: after the length), -1 until
/// computed.
const STR_HASH: usize = 24;

/// The dict of an object with a managed dict (NULL while its attributes are inline).
///
/// # Safety
/// `p` is a live object whose type has `Py_TPFLAGS_MANAGED_DICT`.
#[inline]
pub unsafe fn managed_dict(p: *mut ffi::PyObject) -> *mut ffi::PyObject {
    *((p as *mut u8).offset(MANAGED_DICT as isize) as *mut *mut ffi::PyObject)
}

/// The inline values array of an object with a managed dict (NULL once it has a dict).
///
/// # Safety
/// As `managed_dict`.
#[inline]
pub unsafe fn inline_values(p: *mut ffi::PyObject) -> *mut *mut ffi::PyObject {
    *((p as *mut u8).offset(INLINE_VALUES as isize) as *mut *mut *mut ffi::PyObject)
}

/// Byte offset from an inline values array of the count of values set (one byte); the
/// indices of the set values are stored in order in the bytes before it.
pub const VALUES_ORDER_SIZE: i32 = -2;

/// Records that inline value `index` was set (`_PyDictValues_AddToInsertionOrder`, see
/// `VALUES_ORDER_SIZE`).
///
/// # Safety
/// `values` is a live inline values array of a type whose shared keys have `index`.
#[inline]
pub unsafe fn add_to_insertion_order(values: *mut *mut ffi::PyObject, index: u32) {
    let size_ptr = (values as *mut u8).offset(VALUES_ORDER_SIZE as isize);
    let size = *size_ptr as usize + 1;
    *size_ptr.sub(size) = index as u8;
    *size_ptr = size as u8;
}

/// A heap type's shared (split) keys, which its instances' inline values are laid out
/// by; None if it has none.
///
/// # Safety
/// `tp` is a live type.
pub unsafe fn shared_keys(tp: *mut ffi::PyTypeObject) -> Option<*const u8> {
    if (*tp).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
        return None;
    }
    let keys = (*(tp as *mut ffi::PyHeapTypeObject)).ht_cached_keys as *const u8;
    (!keys.is_null() && kind(keys) == KIND_SPLIT).then_some(keys)
}

/// The head of dict `d`.
///
/// # Safety
/// `d` is a live dict (exact or a subclass: the head is the same).
#[inline]
pub unsafe fn head<'a>(d: *mut ffi::PyObject) -> &'a mut DictHead {
    &mut *(d as *mut DictHead)
}

/// The version tag of dict `d`.
///
/// # Safety
/// As `head`.
#[inline]
pub unsafe fn version(d: *mut ffi::PyObject) -> u64 {
    head(d).ma_version_tag
}

/// Gives dict `d`, modified in place by tiered code (an attribute's value replaced at its
/// entry, as 3.11's STORE_ATTR_WITH_HINT does), a version tag no dict had. CPython takes
/// its tags from a counter private to `dictobject.c`, which nothing outside can bump; PEP
/// 509 asks only that a modified dict get a tag no dict ever had, and readers compare tags
/// for equality, so ours come from a counter of our own in the upper half of the range,
/// which CPython's (one step per dict change) never reaches. (3.12 keeps dict watchers'
/// bits in the low byte and steps by 256: the port takes this from its notify path.)
///
/// # Safety
/// GIL held (the counter is shared by all threads); as `head`.
#[inline]
pub unsafe fn bump_version(d: *mut ffi::PyObject) {
    head(d).ma_version_tag = VERSIONS.with(|v| {
        *v += 1;
        *v
    });
}

static VERSIONS: crate::runtime::GilCell<u64> = crate::runtime::GilCell::new(1 << 63);

/// The kind of keys object `keys` (`KIND_*`).
///
/// # Safety
/// `keys` is a live keys object.
#[inline]
pub unsafe fn kind(keys: *const u8) -> u8 {
    (*(keys as *const KeysHead)).dk_kind
}

/// The layout word of `keys` (`KEYS_LAYOUT`).
///
/// # Safety
/// As `kind`.
#[inline]
pub unsafe fn layout(keys: *const u8) -> u32 {
    (keys.add(KEYS_LAYOUT as usize) as *const u32).read_unaligned() & LAYOUT_MASK
}

/// How many entries `keys` has used (deleted ones included; shared keys only grow).
///
/// # Safety
/// As `kind`.
#[inline]
pub unsafe fn nentries(keys: *const u8) -> isize {
    (*(keys as *const KeysHead)).dk_nentries
}

/// Byte offset from `keys` of its first entry: after the head and the index.
///
/// # Safety
/// As `kind`.
#[inline]
pub unsafe fn entries_offset(keys: *const u8) -> usize {
    KEYS_INDICES as usize + (1usize << (*(keys as *const KeysHead)).dk_log2_index_bytes)
}

/// `keys` if its entries are str-keyed (unicode or split: `UNICODE_ENTRY`).
///
/// # Safety
/// `keys` is NULL or a live keys object.
#[inline]
pub unsafe fn str_keys(keys: *const u8) -> Option<*const u8> {
    (!keys.is_null() && matches!(kind(keys), KIND_UNICODE | KIND_SPLIT)).then_some(keys)
}

/// The address of entry `i`'s key in str-keyed `keys` (its value follows it).
///
/// # Safety
/// `keys` is str-keyed (`str_keys`) and `i` below its `nentries`.
#[inline]
pub unsafe fn str_entry(keys: *const u8, i: usize) -> *mut *mut ffi::PyObject {
    keys.add(entries_offset(keys) + UNICODE_ENTRY.0 * i) as *mut *mut ffi::PyObject
}

/// The index of name `n` (interned: compared by identity) among str-keyed `keys`.
///
/// # Safety
/// `keys` is str-keyed (`str_keys`).
pub unsafe fn str_key_index(keys: *const u8, n: *mut ffi::PyObject) -> Option<usize> {
    (0..nentries(keys).max(0) as usize).find(|&i| *str_entry(keys, i) == n)
}

/// Whether str-keyed `keys` lack `name` (a str with its hash computed), found by probing
/// the index as `unicodekeys_lookup_unicode` does; None when that cannot say without
/// comparing contents (another key with the same hash: an equal str that is not this
/// object) or the hash is not computed.
///
/// # Safety
/// `keys` is str-keyed (`str_keys`); `name` is a live str.
// Always inlined into its one caller, the method-load check `dict_lacks`: from this
// module the compiler made it a call (go: 0.55% more instructions).
#[inline(always)]
pub unsafe fn str_keys_lack(keys: *const u8, name: *mut ffi::PyObject) -> Option<bool> {
    let hash = str_hash(name)?;
    let log2 = (*(keys as *const KeysHead)).dk_log2_size;
    let mask = (1usize << log2) - 1;
    let indices = keys.add(KEYS_INDICES as usize);
    let mut perturb = hash as usize;
    let mut i = hash as usize & mask;
    loop {
        // The index's width grows with the table (`dictkeys_get_index`).
        let ix = match log2 {
            0..=7 => *(indices as *const i8).add(i) as isize,
            8..=15 => *(indices as *const i16).add(i) as isize,
            16..=31 => *(indices as *const i32).add(i) as isize,
            _ => *(indices as *const i64).add(i) as isize,
        };
        if ix >= 0 {
            let key = *str_entry(keys, ix as usize);
            if key == name {
                return Some(false);
            }
            if str_hash(key) == Some(hash) {
                return None;
            }
        } else if ix == DKIX_EMPTY {
            return Some(true);
        }
        perturb >>= PERTURB_SHIFT;
        i = mask & i.wrapping_mul(5).wrapping_add(perturb).wrapping_add(1);
    }
}

/// A str's cached hash, if computed.
///
/// # Safety
/// `s` is a live str.
#[inline]
unsafe fn str_hash(s: *mut ffi::PyObject) -> Option<isize> {
    let h = *((s as *const u8).add(STR_HASH) as *const isize);
    (h != -1).then_some(h)
}

/// Whether this file's layout is the running interpreter's: a dict's size, and where a
/// fresh one-key dict keeps its keys' kind, count, entry, value and hash.
///
/// # Safety
/// GIL held.
pub(super) unsafe fn layout_holds() -> bool {
    let basic = (*std::ptr::addr_of!(ffi::PyDict_Type)).tp_basicsize as usize;
    if basic != std::mem::size_of::<DictHead>() {
        return false;
    }
    let d = ffi::PyDict_New();
    let k = ffi::PyUnicode_InternFromString(c"tiered".as_ptr());
    if d.is_null() || k.is_null() || ffi::PyDict_SetItem(d, k, k) < 0 {
        ffi::PyErr_Clear();
        ffi::Py_XDECREF(d);
        ffi::Py_XDECREF(k);
        return false;
    }
    let keys = head(d).ma_keys;
    let holds = head(d).ma_used == 1
        && head(d).ma_values.is_null()
        && kind(keys) == KIND_UNICODE
        && nentries(keys) == 1
        && *str_entry(keys, 0) == k
        && *str_entry(keys, 0).add(1) == k
        && str_hash(k) == Some(ffi::PyObject_Hash(k) as isize)
        && str_keys_lack(keys, k) == Some(false);
    ffi::Py_DECREF(d);
    ffi::Py_DECREF(k);
    holds
}
