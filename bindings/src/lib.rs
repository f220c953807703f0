//! `tiered._native`: the extension module. The `@tiered` wrapper type lives in `wrapper`;
//! this file holds the module functions (jit, stats, dump, coverage).

mod render;
mod wrapper;

use pyo3::exceptions::{PySystemError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3_ffi as ffi;

/// Wraps a Python function for tiered execution; unset options keep the environment's
/// defaults.
#[pyfunction]
#[pyo3(signature = (func, strict = false, quicken = None, jit = None, jit_threshold = None, osr_threshold = None))]
fn jit(
    py: Python<'_>,
    func: &Bound<'_, PyAny>,
    strict: bool,
    quicken: Option<bool>,
    jit: Option<bool>,
    jit_threshold: Option<u64>,
    osr_threshold: Option<u64>,
) -> PyResult<Py<PyAny>> {
    let d = *tiered_tiers::runtime::config();
    let tuning = tiered_tiers::runtime::Tuning {
        quicken: quicken.unwrap_or(d.quicken),
        jit: jit.unwrap_or(d.jit),
        jit_threshold: jit_threshold.unwrap_or(d.jit_threshold),
        osr_threshold: osr_threshold.unwrap_or(d.osr_threshold),
    };
    // SAFETY: GIL held (py token); func is live.
    unsafe {
        if ffi::PyFunction_Check(func.as_ptr()) == 0 {
            let tn = func.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "tiered can only compile Python functions, not '{tn}'"
            )));
        }
        let w = wrapper::new_wrapper(func.as_ptr(), strict, tuning);
        Ok(Bound::from_owned_ptr_or_err(py, w)?.unbind())
    }
}

fn entry<'a>(f: &Bound<'_, PyAny>) -> PyResult<&'a tiered_tiers::runtime::Entry> {
    // SAFETY: GIL held by the caller's token; the entry lives as long as `f`, which the
    // caller borrows for the whole use.
    unsafe { wrapper::entry_of(f.as_ptr()) }
        .ok_or_else(|| PyTypeError::new_err("expected a function decorated with @tiered"))
}

/// The counters of a tiered function.
#[pyfunction]
fn stats<'py>(py: Python<'py>, f: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let e = entry(f)?;
    let d = PyDict::new(py);
    let s = &e.stats;
    d.set_item("calls", s.calls.get())?;
    d.set_item("fallback_calls", s.fallback_calls.get())?;
    d.set_item("interp_calls", s.interp_calls.get())?;
    d.set_item("native_calls", s.native_calls.get())?;
    // Deopts are counted per compiled code (shared by wrappers of the same code).
    // SAFETY: GIL held.
    let deopts: u64 = unsafe {
        let code = (*(e.func.ptr() as *mut ffi::PyFunctionObject)).func_code;
        tiered_tiers::runtime::specializations_of(code)
            .iter()
            .map(|c| c.deopts.get())
            .sum()
    };
    d.set_item("deopts", deopts)?;
    // Native compiles of every specialization: how many, the time from hot to native
    // code in all (ms), and the machine code they have now (bytes).
    // SAFETY: GIL held.
    let (compiles, ns, bytes) = unsafe {
        let code = (*(e.func.ptr() as *mut ffi::PyFunctionObject)).func_code;
        tiered_tiers::runtime::specializations_of(code)
            .iter()
            .map(|c| c.compile_info())
            .fold((0u32, 0u64, 0usize), |a, b| {
                (a.0 + b.0, a.1 + b.1, a.2 + b.2)
            })
    };
    // Generator resumptions: in our tiers, of those in native code, and by CPython's loop.
    // SAFETY: GIL held.
    let resumes = unsafe {
        let code = (*(e.func.ptr() as *mut ffi::PyFunctionObject)).func_code;
        tiered_tiers::runtime::specializations_of(code)
            .iter()
            .fold([0u64; 3], |mut a, c| {
                for (x, r) in a.iter_mut().zip(&c.resumes) {
                    *x += r.get();
                }
                a
            })
    };
    d.set_item("resumes", resumes[0])?;
    d.set_item("native_resumes", resumes[1])?;
    d.set_item("cpython_resumes", resumes[2])?;
    d.set_item("native_compiles", compiles)?;
    d.set_item("compile_ms", ns as f64 / 1e6)?;
    d.set_item("code_bytes", bytes)?;
    // That code's bytes by kind of instruction, hot and cold (`Compiled::code_by_kind`),
    // every specialization's added up.
    let by = PyDict::new(py);
    // SAFETY: GIL held.
    unsafe {
        let code = (*(e.func.ptr() as *mut ffi::PyFunctionObject)).func_code;
        for c in tiered_tiers::runtime::specializations_of(code).iter() {
            for (kind, _, hot, cold) in c.code_by_kind() {
                let had: (usize, usize) = match by.get_item(&kind)? {
                    Some(v) => v.extract()?,
                    None => (0, 0),
                };
                by.set_item(kind, (had.0 + hot as usize, had.1 + cold as usize))?;
            }
        }
    }
    d.set_item("code_by_kind", by)?;
    // The native entries compiled so far (`native::Later`), of any specialization.
    // SAFETY: GIL held.
    let entries = unsafe {
        let code = (*(e.func.ptr() as *mut ffi::PyFunctionObject)).func_code;
        let mut all: Vec<&str> = tiered_tiers::runtime::specializations_of(code)
            .iter()
            .flat_map(|c| c.entries_made())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    d.set_item("native_entries", entries)?;
    let unsupported = PyList::empty(py);
    // SAFETY: GIL held.
    let compiled = unsafe { e.compiled() };
    match compiled {
        Ok(c) => {
            for u in &c.unsupported {
                let row = PyDict::new(py);
                row.set_item("op", &u.op)?;
                row.set_item("reason", &u.reason)?;
                row.set_item("offset", u.offset)?;
                unsupported.append(row)?;
            }
        }
        Err(_) => {
            let err = PyErr::fetch(py);
            let row = PyDict::new(py);
            row.set_item("op", "<code>")?;
            row.set_item("reason", format!("cannot read the code object: {err}"))?;
            unsupported.append(row)?;
        }
    }
    d.set_item("unsupported", unsupported)?;
    d.set_item("last_fallback", e.last_fallback.borrow().clone())?;
    // SAFETY: GIL held; `entry` checked `f` is a live TieredFunction.
    d.set_item("native_entry", unsafe {
        wrapper::native_entry_installed(f.as_ptr())
    })?;
    Ok(d)
}

/// The bytecode of a function beside its IR and quickened IR, as text; with `native`,
/// also its Cranelift IR and machine code if it has been compiled.
#[pyfunction]
#[pyo3(signature = (f, native = false))]
fn dump(f: &Bound<'_, PyAny>, native: bool) -> PyResult<String> {
    let func = match entry(f) {
        Ok(e) => e.func.ptr(),
        Err(_) => f.as_ptr(),
    };
    // SAFETY: GIL held; func is live for the call.
    unsafe {
        if ffi::PyFunction_Check(func) == 0 {
            return Err(PyTypeError::new_err(
                "dump() takes a Python function or a tiered function",
            ));
        }
        let code = (*(func as *mut ffi::PyFunctionObject)).func_code;
        match tiered_tiers::runtime::compiled_for(code) {
            Ok(c) => Ok(render::render(
                &c,
                &tiered_tiers::runtime::specializations_of(code),
                native,
            )),
            Err(_) => Err(PyErr::fetch(f.py())),
        }
    }
}

/// One row per IR op: its family, doc, the CPython opcodes translated to it, and its tiers.
#[pyfunction]
fn coverage_table(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for r in tiered_tiers::coverage::table() {
        let d = PyDict::new(py);
        d.set_item("op", r.op)?;
        d.set_item("family", r.family)?;
        d.set_item("doc", r.doc)?;
        d.set_item("opcodes", r.opcodes)?;
        d.set_item("interpreted", r.interpreted)?;
        d.set_item("quickened", r.quickened)?;
        d.set_item("native", r.native)?;
        out.append(d)?;
    }
    Ok(out)
}

/// CPython opcodes that are not translated, with the reason.
#[pyfunction]
fn untranslated_opcodes(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for (op, why) in tiered_tiers::coverage::untranslated() {
        let d = PyDict::new(py);
        d.set_item("opcode", op)?;
        d.set_item("reason", why)?;
        out.append(d)?;
    }
    Ok(out)
}

/// Turns per-op execution counting on or off.
#[pyfunction]
fn set_counting(enabled: bool) {
    tiered_tiers::stats::set_counting(enabled)
}

/// Per-op execution counts per tier, and failed native guards (deopts) per op.
#[pyfunction]
fn op_counts(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let deopts = tiered_tiers::stats::deopt_counts();
    for (name, t1, t2) in tiered_tiers::stats::op_counts() {
        let row = PyDict::new(py);
        row.set_item("tier1", t1)?;
        row.set_item("tier2", t2)?;
        let n = deopts
            .iter()
            .find(|(op, _)| *op == name)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        row.set_item("deopts", n)?;
        d.set_item(name, row)?;
    }
    Ok(d)
}

/// Fallback reasons counted while counting was on.
#[pyfunction]
fn fallback_reasons(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (why, n) in tiered_tiers::stats::fallback_reasons() {
        d.set_item(why, n)?;
    }
    Ok(d)
}

/// Clears the process-wide counters.
#[pyfunction]
fn reset_counts() {
    tiered_tiers::stats::reset()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // SAFETY: module init runs with the GIL held; the returned objects are new references.
    unsafe {
        tiered_tiers::cpy::check_layouts()
            .map_err(|why| pyo3::exceptions::PyImportError::new_err(format!("tiered: {why}")))?;
        if tiered_tiers::ops::events::init().is_err()
            || tiered_tiers::activation::install_f_locals_hook().is_err()
            || tiered_tiers::generator::install().is_err()
        {
            return Err(PyErr::fetch(py));
        }
        let t = wrapper::create_type();
        if t.is_null() {
            return Err(PyErr::take(py)
                .unwrap_or_else(|| PySystemError::new_err("cannot create TieredFunction")));
        }
        m.add("TieredFunction", Bound::from_borrowed_ptr(py, t))?;
        let e = tiered_tiers::runtime::unsupported_error_type();
        if e.is_null() {
            return Err(PyErr::fetch(py));
        }
        m.add("UnsupportedError", Bound::from_borrowed_ptr(py, e))?;
    }
    m.add_function(wrap_pyfunction!(jit, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(dump, m)?)?;
    m.add_function(wrap_pyfunction!(coverage_table, m)?)?;
    m.add_function(wrap_pyfunction!(untranslated_opcodes, m)?)?;
    m.add_function(wrap_pyfunction!(set_counting, m)?)?;
    m.add_function(wrap_pyfunction!(op_counts, m)?)?;
    m.add_function(wrap_pyfunction!(fallback_reasons, m)?)?;
    m.add_function(wrap_pyfunction!(reset_counts, m)?)?;
    Ok(())
}
