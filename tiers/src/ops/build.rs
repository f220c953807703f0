//! Building containers and strings, and unpacking them.

use crate::value::{status, Owned, PyResult, Raised, Value};
use pyo3_ffi as ffi;
use std::os::raw::c_int;
use tiered_ir::Conversion;

/// BuildTuple.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn build_tuple(items: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let t = Owned::new(ffi::PyTuple_New(items.len() as ffi::Py_ssize_t))?;
    for (i, &o) in items.iter().enumerate() {
        ffi::Py_INCREF(o);
        ffi::PyTuple_SET_ITEM(t.ptr(), i as ffi::Py_ssize_t, o);
    }
    Ok(t.into_value())
}

/// BuildList.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn build_list(items: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let l = Owned::new(ffi::PyList_New(items.len() as ffi::Py_ssize_t))?;
    for (i, &o) in items.iter().enumerate() {
        ffi::Py_INCREF(o);
        ffi::PyList_SET_ITEM(l.ptr(), i as ffi::Py_ssize_t, o);
    }
    Ok(l.into_value())
}

/// BuildSet (items added in order, as BUILD_SET does).
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn build_set(items: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let s = Owned::new(ffi::PySet_New(std::ptr::null_mut()))?;
    for &o in items {
        status(ffi::PySet_Add(s.ptr(), o))?;
    }
    Ok(s.into_value())
}

/// BuildMap from (key, value) pairs.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn build_map(items: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let d = Owned::new(ffi::PyDict_New())?;
    for kv in items.chunks(2) {
        if let [k, v] = kv {
            status(ffi::PyDict_SetItem(d.ptr(), *k, *v))?;
        }
    }
    Ok(d.into_value())
}

/// BuildConstKeyMap: values..., then the keys tuple.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn build_const_key_map(items: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let (keys, values) = match items.split_last() {
        Some((k, v)) => (*k, v),
        None => {
            return Err(super::raise(
                ffi::PyExc_SystemError,
                "bad BUILD_CONST_KEY_MAP keys argument",
            ))
        }
    };
    if ffi::PyTuple_CheckExact(keys) == 0 || ffi::PyTuple_GET_SIZE(keys) as usize != values.len() {
        return Err(super::raise(
            ffi::PyExc_SystemError,
            "bad BUILD_CONST_KEY_MAP keys argument",
        ));
    }
    let d = Owned::new(ffi::PyDict_New())?;
    for (i, &v) in values.iter().enumerate() {
        status(ffi::PyDict_SetItem(
            d.ptr(),
            ffi::PyTuple_GET_ITEM(keys, i as ffi::Py_ssize_t),
            v,
        ))?;
    }
    Ok(d.into_value())
}

/// BuildString: concatenation of str pieces.
///
/// # Safety
/// GIL held; operands are str objects (FormatValue made them).
pub unsafe fn build_string(items: &[*mut ffi::PyObject]) -> PyResult<Value> {
    let empty = Owned::new(ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0))?;
    Value::from_owned(crate::cpy::_PyUnicode_JoinArray(
        empty.ptr(),
        items.as_ptr(),
        items.len() as ffi::Py_ssize_t,
    ))
}

/// FormatValue: conversion, then `format(v, spec)`; a str with no spec is kept as is.
///
/// # Safety
/// GIL held; operands are objects.
pub unsafe fn format_value(
    conversion: Conversion,
    v: &Value,
    spec: Option<&Value>,
) -> PyResult<Value> {
    let converted = match conversion {
        Conversion::None => v.clone(),
        Conversion::Str => Value::from_owned(ffi::PyObject_Str(v.as_ptr()))?,
        Conversion::Repr => Value::from_owned(ffi::PyObject_Repr(v.as_ptr()))?,
        Conversion::Ascii => Value::from_owned(ffi::PyObject_ASCII(v.as_ptr()))?,
    };
    let p = converted.as_ptr();
    if spec.is_none() && ffi::PyUnicode_CheckExact(p) != 0 {
        return Ok(converted);
    }
    let s = spec.map(|s| s.as_ptr()).unwrap_or(std::ptr::null_mut());
    Value::from_owned(ffi::PyObject_Format(p, s))
}

/// ListAppend.
///
/// # Safety
/// GIL held; `l` is a list.
pub unsafe fn list_append(l: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PyList_Append(l.as_ptr(), v.as_ptr()))
}

/// SetAdd.
///
/// # Safety
/// GIL held; `s` is a set.
pub unsafe fn set_add(s: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PySet_Add(s.as_ptr(), v.as_ptr()))
}

/// MapAdd: `d[k] = v`.
///
/// # Safety
/// GIL held; `d` is a dict.
pub unsafe fn map_add(d: &Value, k: &Value, v: &Value) -> PyResult<()> {
    status(ffi::PyDict_SetItem(d.as_ptr(), k.as_ptr(), v.as_ptr()))
}

/// ListExtend, with LIST_EXTEND's message for a non-iterable.
///
/// # Safety
/// GIL held; `l` is a list.
pub unsafe fn list_extend(l: &Value, it: &Value) -> PyResult<()> {
    match extend_list(l.as_ptr(), it.as_ptr()) {
        0 => Ok(()),
        _ => Err(Raised),
    }
}

/// ListExtend on objects, for native code too (its template: `emit_add_to`): 0, or -1
/// with the exception set (LIST_EXTEND's message for a non-iterable).
///
/// # Safety
/// GIL held; `l` a list, `i` an object.
pub unsafe extern "C" fn extend_list(l: *mut ffi::PyObject, i: *mut ffi::PyObject) -> c_int {
    let r = crate::cpy::_PyList_Extend(l, i);
    if r.is_null() {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_TypeError) != 0
            && (*ffi::Py_TYPE(i)).tp_iter.is_none()
            && ffi::PySequence_Check(i) == 0
        {
            ffi::PyErr_Clear();
            super::raise(
                ffi::PyExc_TypeError,
                &format!(
                    "Value after * must be an iterable, not {}",
                    super::type_name(i)
                ),
            );
        }
        return -1;
    }
    ffi::Py_DECREF(r);
    0
}

/// SetUpdate.
///
/// # Safety
/// GIL held; `s` is a set.
pub unsafe fn set_update(s: &Value, it: &Value) -> PyResult<()> {
    status(crate::cpy::_PySet_Update(s.as_ptr(), it.as_ptr()))
}

/// DictUpdate, with DICT_UPDATE's message for a non-mapping.
///
/// # Safety
/// GIL held; `d` is a dict.
pub unsafe fn dict_update(d: &Value, m: &Value) -> PyResult<()> {
    if ffi::PyDict_Update(d.as_ptr(), m.as_ptr()) < 0 {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) != 0 {
            ffi::PyErr_Clear();
            return Err(super::raise(
                ffi::PyExc_TypeError,
                &format!("'{}' object is not a mapping", super::type_name(m.as_ptr())),
            ));
        }
        return Err(Raised);
    }
    Ok(())
}

/// DictMerge: `**m` into call kwargs; duplicates and non-mappings get CPython's messages.
///
/// # Safety
/// GIL held; `d` is a dict.
pub unsafe fn dict_merge(func: &Value, d: &Value, m: &Value) -> PyResult<()> {
    if crate::cpy::_PyDict_MergeEx(d.as_ptr(), m.as_ptr(), 2) < 0 {
        format_kwargs_error(func.as_ptr(), m.as_ptr());
        return Err(Raised);
    }
    Ok(())
}

/// Rewrites the error of a failed `**` merge the way CPython's call sites report it.
///
/// # Safety
/// GIL held; an exception is set.
pub(crate) unsafe fn format_kwargs_error(func: *mut ffi::PyObject, kwargs: *mut ffi::PyObject) {
    if ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) != 0 {
        ffi::PyErr_Clear();
        super::calls::func_error(
            func,
            &format!(
                "argument after ** must be a mapping, not {}",
                super::type_name(kwargs)
            ),
        );
    } else if ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyError) != 0 {
        let (mut t, mut v, mut tb) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
        if !v.is_null() && ffi::PyTuple_Check(v) != 0 && ffi::PyTuple_GET_SIZE(v) == 1 {
            let key = ffi::PyTuple_GET_ITEM(v, 0);
            let fstr = crate::cpy::_PyObject_FunctionStr(func);
            if !fstr.is_null() {
                let key_str = ffi::PyObject_Str(key);
                let k = if key_str.is_null() {
                    ffi::PyErr_Clear();
                    String::new()
                } else {
                    let s = super::str_of(key_str);
                    ffi::Py_DECREF(key_str);
                    s
                };
                super::raise(
                    ffi::PyExc_TypeError,
                    &format!(
                        "{} got multiple values for keyword argument '{k}'",
                        super::str_of(fstr)
                    ),
                );
                ffi::Py_DECREF(fstr);
            }
            ffi::Py_XDECREF(t);
            ffi::Py_XDECREF(v);
            ffi::Py_XDECREF(tb);
        } else {
            ffi::PyErr_Restore(t, v, tb);
        }
    }
}

/// ListToTuple.
///
/// # Safety
/// GIL held; `l` is a list.
pub unsafe fn list_to_tuple(l: &Value) -> PyResult<Value> {
    Value::from_owned(ffi::PyList_AsTuple(l.as_ptr()))
}

/// UnpackSequence (`after == None`: exactly `before` items) and UnpackEx (`before` items,
/// a list of the rest, `after` items), with UNPACK_*'s messages.
///
/// # Safety
/// GIL held; the operand is an object.
pub unsafe fn unpack(v: &Value, before: usize, after: Option<usize>) -> PyResult<Vec<Value>> {
    let p = v.as_ptr();
    // Exact tuples and lists of the right length: no iterator needed.
    if after.is_none() && (ffi::PyTuple_CheckExact(p) != 0 || ffi::PyList_CheckExact(p) != 0) {
        let n = ffi::PySequence_Size(p);
        if n == before as ffi::Py_ssize_t {
            let is_tuple = ffi::PyTuple_CheckExact(p) != 0;
            return Ok((0..n)
                .map(|i| {
                    let item = if is_tuple {
                        ffi::PyTuple_GET_ITEM(p, i)
                    } else {
                        ffi::PyList_GET_ITEM(p, i)
                    };
                    Value::from_borrowed(item)
                })
                .collect());
        }
    }
    let it = ffi::PyObject_GetIter(p);
    if it.is_null() {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_TypeError) != 0
            && (*ffi::Py_TYPE(p)).tp_iter.is_none()
            && ffi::PySequence_Check(p) == 0
        {
            ffi::PyErr_Clear();
            return Err(super::raise(
                ffi::PyExc_TypeError,
                &format!("cannot unpack non-iterable {} object", super::type_name(p)),
            ));
        }
        return Err(Raised);
    }
    let it = Owned::new(it)?;
    let mut out = Vec::with_capacity(before + 1 + after.unwrap_or(0));
    for i in 0..before {
        let w = ffi::PyIter_Next(it.ptr());
        if w.is_null() {
            if ffi::PyErr_Occurred().is_null() {
                let msg = match after {
                    None => format!("not enough values to unpack (expected {before}, got {i})"),
                    Some(a) => format!(
                        "not enough values to unpack (expected at least {}, got {i})",
                        before + a
                    ),
                };
                return Err(super::raise(ffi::PyExc_ValueError, &msg));
            }
            return Err(Raised);
        }
        out.push(Value::from_owned(w)?);
    }
    match after {
        None => {
            let w = ffi::PyIter_Next(it.ptr());
            if w.is_null() {
                if !ffi::PyErr_Occurred().is_null() {
                    return Err(Raised);
                }
                return Ok(out);
            }
            ffi::Py_DECREF(w);
            Err(super::raise(
                ffi::PyExc_ValueError,
                &format!("too many values to unpack (expected {before})"),
            ))
        }
        Some(a) => {
            let rest = Owned::new(ffi::PySequence_List(it.ptr()))?;
            let n = ffi::PyList_GET_SIZE(rest.ptr()) as usize;
            if n < a {
                return Err(super::raise(
                    ffi::PyExc_ValueError,
                    &format!(
                        "not enough values to unpack (expected at least {}, got {})",
                        before + a,
                        before + n
                    ),
                ));
            }
            for k in n - a..n {
                out.push(Value::from_borrowed(ffi::PyList_GET_ITEM(
                    rest.ptr(),
                    k as ffi::Py_ssize_t,
                )));
            }
            // The starred list keeps the first n - a items; its tail moved to `out`.
            if ffi::PyList_SetSlice(
                rest.ptr(),
                (n - a) as ffi::Py_ssize_t,
                n as ffi::Py_ssize_t,
                std::ptr::null_mut(),
            ) < 0
            {
                return Err(Raised);
            }
            // The list goes between the leading and trailing items.
            out.insert(before, rest.into_value());
            Ok(out)
        }
    }
}

/// The native template of UnpackSequence for an exact tuple or list of the right length:
/// its items in place. Anything else (iterators, subclasses, a wrong length and its
/// error) takes the generic op: no guard of a specialization failed, so it is not a
/// deopt. (Lists took it too once: unpack_sequence's list case ran 3.5 times
/// CPython's instructions.)
pub(crate) fn emit_unpack_sequence(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    count: u32,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::BlockArg;
    use cranelift_codegen::ir::{types, InstBuilder};
    let inst = e.c.linear.insts[pc];
    let src = e.c.linear.operands[inst.args as usize];
    let slow = e.slow_block();
    let t = e.tag(src);
    e.guard_eq(t, tag::OBJ as i64, slow);
    let p = e.payload(src, e.ptr);
    // An exact tuple's items are inline from 24, an exact list's behind ob_item at 24
    // (UNPACK_SEQUENCE_TUPLE and _LIST); both have ob_size at 16. A list is read as it is
    // now: nothing runs between reading its size and its items.
    let ty = e.b.ins().load(e.ptr, mem(), p, 8);
    let (tuple, other, items) = (e.b.create_block(), e.b.create_block(), e.b.create_block());
    e.b.append_block_param(items, e.ptr);
    let is_tuple = e.b.ins().icmp_imm_s(
        IntCC::Equal,
        ty,
        std::ptr::addr_of_mut!(ffi::PyTuple_Type) as i64,
    );
    e.b.ins().brif(is_tuple, tuple, &[], other, &[]);
    e.b.switch_to_block(tuple);
    let base = e.b.ins().iadd_imm_s(p, 24);
    e.b.ins().jump(items, &[BlockArg::Value(base)]);
    e.b.switch_to_block(other);
    e.guard_eq(ty, std::ptr::addr_of_mut!(ffi::PyList_Type) as i64, slow);
    let base = e.b.ins().load(e.ptr, mem(), p, 24);
    e.b.ins().jump(items, &[BlockArg::Value(base)]);
    e.b.switch_to_block(items);
    let base = e.b.block_params(items)[0];
    let n = e.b.ins().load(types::I64, mem(), p, 16);
    e.guard_eq(n, count as i64, slow);
    for k in 0..count {
        let item = e.b.ins().load(e.ptr, mem(), base, 8 * k as i32);
        e.incref(item);
        e.set(inst.dst + k, tag::OBJ, item);
    }
    Some("UnpackSequence")
}

/// Goes on only if `made`, a container just allocated, is not NULL: out of memory, the
/// exception is cleared and `slow`, the generic op, allocates again and raises it properly.
fn emit_allocated(
    e: &mut crate::native::emit::Emit,
    made: cranelift_codegen::ir::Value,
    slow: cranelift_codegen::ir::Block,
) {
    use cranelift_codegen::ir::InstBuilder;
    let failed = e.b.create_block();
    let ok = e.b.create_block();
    e.b.ins().brif(made, ok, &[], failed, &[]);
    e.b.switch_to_block(failed);
    e.call(ffi::PyErr_Clear as *const () as usize, &[], None, &[]);
    e.b.ins().jump(slow, &[]);
    e.b.switch_to_block(ok);
}

/// The native template of BuildTuple and BuildList: the items as objects (numbers boxed
/// in place) before anything is allocated, then the container made and filled. Anything
/// unusual (a NULL operand, out of memory) takes the generic op.
pub(crate) fn emit_build_sequence(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    list: bool,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::{types, InstBuilder};
    let inst = e.c.linear.insts[pc];
    let slow = e.slow_block();
    let items = e.operand_objects(pc);
    let (ctor, name) = if list {
        (ffi::PyList_New as *const () as usize, "BuildList")
    } else {
        (ffi::PyTuple_New as *const () as usize, "BuildTuple")
    };
    let n = e.b.ins().iconst(types::I64, items.len() as i64);
    let made = e
        .call(ctor, &[types::I64], Some(e.ptr), &[n])
        .expect("returns");
    emit_allocated(e, made, slow);
    // A tuple's items are inline from 24; a list's behind ob_item at 24.
    let base = if list {
        e.b.ins().load(e.ptr, mem(), made, 24)
    } else {
        e.b.ins().iadd_imm_s(made, 24)
    };
    for (k, &o) in items.iter().enumerate() {
        e.incref(o);
        e.b.ins().store(mem(), o, base, 8 * k as i32);
    }
    e.set(inst.dst, tag::OBJ, made);
    Some(name)
}

/// The native template of BuildMap: a new dict, then each key and value set in order
/// (`PyDict_SetItem`, as tier 1's `build_map`; a later equal key wins, as in CPython); a
/// key that cannot be hashed raises with the dict released.
pub(crate) fn emit_build_map(e: &mut crate::native::emit::Emit, pc: usize) -> Option<&'static str> {
    use crate::value::tag;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    let inst = e.c.linear.insts[pc];
    let slow = e.slow_block();
    let items = e.operand_objects(pc);
    let made = e
        .call(ffi::PyDict_New as *const () as usize, &[], Some(e.ptr), &[])
        .expect("returns");
    emit_allocated(e, made, slow);
    let set_item = ffi::PyDict_SetItem as *const () as usize;
    for kv in items.chunks(2) {
        let r = e
            .call(
                set_item,
                &[e.ptr; 3],
                Some(types::I32),
                &[made, kv[0], kv[1]],
            )
            .expect("returns");
        let bad = e.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
        e.raise_if_after(pc, bad, |e| e.decref(made));
    }
    e.set(inst.dst, tag::OBJ, made);
    Some("BuildMap")
}

/// The native template of ListAppend, SetAdd and MapAdd (the appends of comprehensions):
/// `f` (PyList_Append, PySet_Add, PyDict_SetItem) called directly on the operands as
/// objects (numbers boxed in place first, as tier 1 boxes them); an exception it raises
/// goes to the handler, as the generic op's would.
pub(crate) fn emit_add_to(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    f: usize,
    name: &'static str,
) -> Option<&'static str> {
    use cranelift_codegen::ir::types;
    let objs = e.operand_objects(pc);
    let params = vec![e.ptr; objs.len()];
    let st = e
        .call(f, &params, Some(types::I32), &objs)
        .expect("returns");
    e.raise_if(pc, st);
    Some(name)
}

/// The native template of ListToTuple (`f(*args)`'s tuple, built as a list): the list
/// (always one: BUILD_LIST made it) copied into a tuple by PyList_AsTuple, as the
/// generic op does.
pub(crate) fn emit_list_to_tuple(
    e: &mut crate::native::emit::Emit,
    pc: usize,
) -> Option<&'static str> {
    let objs = e.operand_objects(pc);
    e.call_for_result(pc, ffi::PyList_AsTuple as *const () as usize, &objs);
    Some("ListToTuple")
}

/// The native template of FormatValue without a format spec (`f"{x}"`, `f"{x!r}"`): an
/// exact str is the result itself; anything else goes through PyObject_Str, _Repr or
/// _Format as the generic op calls them (numbers boxed in place first). A spec, or `!a`,
/// takes the generic op.
pub(crate) fn emit_format_value(
    e: &mut crate::native::emit::Emit,
    pc: usize,
    conversion: Conversion,
    spec: bool,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{BlockArg, InstBuilder};
    let convert = match (conversion, spec) {
        (_, true) | (Conversion::Ascii, _) => return None,
        (Conversion::None, false) => None,
        (Conversion::Str, false) => Some(ffi::PyObject_Str as *const () as usize),
        (Conversion::Repr, false) => Some(ffi::PyObject_Repr as *const () as usize),
    };
    let ptr = e.ptr;
    let inst = e.c.linear.insts[pc];
    let r = e.c.linear.operands[inst.args as usize];
    let slow = e.slow_block();
    let v = e.object_of(r, slow);
    let str_type = std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as i64;
    let done = e.b.create_block();
    e.b.append_block_param(done, ptr);
    match convert {
        None => {
            // An exact str as is (a new reference); anything else formatted.
            let is_str = e.b.create_block();
            let other = e.b.create_block();
            let ty = e.b.ins().load(ptr, mem(), v, 8);
            let exact = e.b.ins().icmp_imm_s(IntCC::Equal, ty, str_type);
            e.b.ins().brif(exact, is_str, &[], other, &[]);
            e.b.switch_to_block(is_str);
            e.incref(v);
            e.b.ins().jump(done, &[BlockArg::Value(v)]);
            e.b.switch_to_block(other);
            let null = e.b.ins().iconst(ptr, 0);
            let s = e
                .call(
                    ffi::PyObject_Format as *const () as usize,
                    &[ptr, ptr],
                    Some(ptr),
                    &[v, null],
                )
                .expect("returns");
            e.b.ins().jump(done, &[BlockArg::Value(s)]);
        }
        Some(f) => {
            // str() and repr() always give an exact str (or raise).
            let s = e.call(f, &[ptr], Some(ptr), &[v]).expect("returns");
            e.b.ins().jump(done, &[BlockArg::Value(s)]);
        }
    }
    e.b.switch_to_block(done);
    let s = e.b.block_params(done)[0];
    let failed = e.b.ins().icmp_imm_s(IntCC::Equal, s, 0);
    e.raise_if(pc, failed);
    e.set(inst.dst, tag::OBJ, s);
    Some("FormatValue")
}

/// The native template of BuildString (the join of an f-string's parts, at most 15):
/// _PyUnicode_JoinArray on the parts as objects, as the generic op calls it.
pub(crate) fn emit_build_string(
    e: &mut crate::native::emit::Emit,
    pc: usize,
) -> Option<&'static str> {
    use crate::native::emit::mem;
    use crate::value::tag;
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{types, InstBuilder};
    let inst = e.c.linear.insts[pc];
    if inst.nargs > 15 {
        return None;
    }
    // SAFETY: GIL held while compiling; the empty str is a static singleton in 3.11, so
    // its address stays valid after this reference is given back.
    let empty = unsafe {
        let p = ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0);
        if p.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        ffi::Py_DECREF(p);
        p
    };
    let ops: Vec<u32> =
        e.c.linear.operands[inst.args as usize..(inst.args + inst.nargs) as usize].to_vec();
    let slow = e.slow_block();
    let array = e.call_args_array();
    for (k, &r) in ops.iter().enumerate() {
        let o = e.object_of(r, slow);
        e.b.ins().store(mem(), o, array, 8 * k as i32);
    }
    let sep = e.b.ins().iconst(e.ptr, empty as i64);
    let n = e.b.ins().iconst(types::I64, ops.len() as i64);
    let s = e
        .call(
            crate::cpy::_PyUnicode_JoinArray as *const () as usize,
            &[e.ptr, e.ptr, types::I64],
            Some(e.ptr),
            &[sep, array, n],
        )
        .expect("returns");
    let failed = e.b.ins().icmp_imm_s(IntCC::Equal, s, 0);
    e.raise_if(pc, failed);
    e.set(inst.dst, tag::OBJ, s);
    Some("BuildString")
}
