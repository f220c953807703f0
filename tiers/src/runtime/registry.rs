//! The per-code cache of compiled functions, their specializations by argument types, and
//! when code nested in tiered code is translated.

use super::*;

struct Registry {
    /// Compiled code by code-object address (each entry owns its code object, so the
    /// address cannot be reused while it is here).
    compiled: HashMap<usize, Rc<Compiled>>,
    /// Specializations by code and argument types: each has its own quickening state and
    /// native code, so `f(int, int)` and `f(str, int)` each get code for their types.
    specialized: HashMap<(usize, TypeKey), Rc<Compiled>>,
    /// How many specializations each code has (bounded by MAX_SPECIALIZATIONS).
    specialization_count: HashMap<usize, usize>,
    /// Code objects nested in tiered code (comprehensions, lambdas, inner defs): calls to
    /// functions made from them run in tier 1 too.
    nested: HashSet<usize>,
    /// Owned references keeping `nested` addresses alive.
    nested_refs: Vec<Owned>,
    /// Per code not translated yet: how often call sites of tiered code met it
    /// (`warm_enough`). A freed code's address reused only counts the new one early.
    sightings: HashMap<usize, u32>,
    /// Whether the last `warm_enough` found its code cold (`took_cold`).
    cold: bool,
}

static REGISTRY: GilCell<Option<Registry>> = GilCell(UnsafeCell::new(None));

unsafe fn registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    REGISTRY.with(|r| {
        f(r.get_or_insert_with(|| Registry {
            compiled: HashMap::default(),
            specialized: HashMap::default(),
            specialization_count: HashMap::default(),
            nested: HashSet::default(),
            nested_refs: Vec::new(),
            sightings: HashMap::default(),
            cold: false,
        }))
    })
}

/// How many times call sites of tiered code meet a plain function's code before it is
/// translated (CPython's own quickening waits for 8 runs of a code).
pub const CALLEE_WARMUP: u64 = 2;

/// Whether `code`, the code of a plain function a call site of tiered code calls, is
/// worth translating now: translated already, or met `warmup` times. Before that the
/// call runs in CPython's own loop: translating a callee cost hundreds of times what
/// running it once does, and a program's set-up calls most of its functions once or
/// twice (argparse's parser building).
///
/// # Safety
/// GIL held.
pub unsafe fn warm_enough(code: *mut ffi::PyObject, warmup: u64) -> bool {
    registry(|r| {
        if r.compiled.contains_key(&(code as usize)) {
            return true;
        }
        let n = r.sightings.entry(code as usize).or_default();
        *n += 1;
        let warm = u64::from(*n) >= warmup;
        if warm {
            r.sightings.remove(&(code as usize));
        }
        r.cold = !warm;
        warm
    })
}

/// Whether a code was found cold (`warm_enough`) since the last call of this: a call site
/// whose callee is cold has no variant yet rather than none that fits, so it looks again
/// at its next run instead of backing off (a site meeting many functions once each would
/// otherwise wait 2, 4, 8... runs before it looked again).
///
/// # Safety
/// GIL held.
pub unsafe fn took_cold() -> bool {
    registry(|r| std::mem::take(&mut r.cold))
}

/// Translates and lowers a code object, or returns the cached result.
///
/// # Safety
/// GIL held; `code` is a live code object.
pub unsafe fn compiled_for(code: *mut ffi::PyObject) -> PyResult<Rc<Compiled>> {
    if let Some(c) = registry(|r| r.compiled.get(&(code as usize)).cloned()) {
        return Ok(c);
    }
    let c = Rc::new(compile(code)?);
    registry(|r| {
        // Nested code objects become eligible for tier 1 when tiered code calls them.
        for &k in &c.objects.consts {
            if ffi::PyCode_Check(k) != 0 && r.nested.insert(k as usize) {
                ffi::Py_INCREF(k);
                if let Ok(o) = Owned::new(k) {
                    r.nested_refs.push(o);
                }
            }
        }
        r.compiled.insert(code as usize, c.clone());
    });
    Ok(c)
}

/// The exact types of a call's first positional arguments: what specializations are keyed
/// on. Type objects are compared by address; a freed type's address reused by another only
/// picks a less fitting specialization, never a wrong result (every op guards its types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeKey {
    nargs: u8,
    types: [usize; 4],
}

impl TypeKey {
    /// Whether a vectorcall argument array has this key (without building one: comparing
    /// a key just written field by field stalls on store forwarding).
    ///
    /// # Safety
    /// `args` holds at least `nargs` live objects.
    #[inline]
    pub unsafe fn matches(&self, args: *const *mut ffi::PyObject, nargs: usize) -> bool {
        self.nargs as usize == nargs.min(255)
            && (0..nargs.min(4)).all(|i| self.types[i] == ffi::Py_TYPE(*args.add(i)) as usize)
    }

    /// The key of a call `f(self, *args)` whose `self` will be an instance of `tp`
    /// (made before the instance is).
    ///
    /// # Safety
    /// `args` holds at least `nargs` live objects.
    pub unsafe fn with_self(
        tp: *mut ffi::PyTypeObject,
        args: *const *mut ffi::PyObject,
        nargs: usize,
    ) -> TypeKey {
        let mut types = [0usize; 4];
        types[0] = tp as usize;
        for (i, t) in types.iter_mut().enumerate().skip(1).take(nargs.min(3)) {
            *t = ffi::Py_TYPE(*args.add(i - 1)) as usize;
        }
        TypeKey {
            nargs: (nargs + 1).min(255) as u8,
            types,
        }
    }

    /// The types of the first (up to four) arguments.
    pub fn types(&self) -> &[usize] {
        &self.types[..self.nargs.min(4) as usize]
    }

    /// The key of a vectorcall argument array.
    ///
    /// # Safety
    /// `args` holds at least `nargs` live objects.
    #[inline]
    pub unsafe fn of(args: *const *mut ffi::PyObject, nargs: usize) -> TypeKey {
        let mut types = [0usize; 4];
        for (i, t) in types.iter_mut().enumerate().take(nargs.min(4)) {
            *t = ffi::Py_TYPE(*args.add(i)) as usize;
        }
        TypeKey {
            nargs: nargs.min(255) as u8,
            types,
        }
    }

    /// The argument type names, for dumps (the types are alive while their specialization is
    /// being described, as it is called with them).
    ///
    /// # Safety
    /// GIL held.
    pub unsafe fn describe(&self) -> String {
        let names: Vec<String> = self
            .types
            .iter()
            .take(self.nargs.min(4) as usize)
            .map(|&t| {
                std::ffi::CStr::from_ptr((*(t as *mut ffi::PyTypeObject)).tp_name)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let more = if self.nargs > 4 { ", ..." } else { "" };
        format!("({}{more})", names.join(", "))
    }
}

/// Specializations per code object before further argument types share the generic one.
const MAX_SPECIALIZATIONS: usize = 8;

/// The specialization of `code` for these argument types (compiled on first use); the
/// generic compiled code when it cannot run in our tiers or too many types were seen.
///
/// # Safety
/// GIL held; `code` live; `args` holds `nargs` live objects.
pub unsafe fn compiled_for_args(
    code: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
) -> PyResult<Rc<Compiled>> {
    compiled_for_key(code, TypeKey::of(args, nargs))
}

/// `compiled_for_args` for argument types given as a key.
///
/// # Safety
/// GIL held.
pub unsafe fn compiled_for_key(code: *mut ffi::PyObject, key: TypeKey) -> PyResult<Rc<Compiled>> {
    let generic = compiled_for(code)?;
    if !generic.runnable() {
        return Ok(generic);
    }
    if let Some(c) = registry(|r| r.specialized.get(&(code as usize, key)).cloned()) {
        return Ok(c);
    }
    if registry(|r| {
        r.specialization_count
            .get(&(code as usize))
            .copied()
            .unwrap_or(0)
    }) >= MAX_SPECIALIZATIONS
    {
        return Ok(generic);
    }
    let mut c = specialize(&generic);
    c.signature = Some(key.describe());
    c.type_key = Some(key);
    let c = Rc::new(c);
    registry(|r| {
        *r.specialization_count.entry(code as usize).or_default() += 1;
        r.specialized.insert((code as usize, key), c.clone());
    });
    Ok(c)
}

/// Every specialization of `code` made so far.
///
/// # Safety
/// GIL held.
pub unsafe fn specializations_of(code: *mut ffi::PyObject) -> Vec<Rc<Compiled>> {
    registry(|r| {
        r.specialized
            .iter()
            .filter(|((k, _), _)| *k == code as usize)
            .map(|(_, c)| c.clone())
            .collect()
    })
}

unsafe fn compile(code: *mut ffi::PyObject) -> PyResult<Compiled> {
    let (info, objects) = read_code(code)?;
    let nlocalsplus = info.local_kinds.len();
    let stacksize = crate::code::int_attr(code, "co_stacksize")?.max(0) as usize;
    // Our frames are CPython's: the code object's internals must be where the 3.11 mirror
    // says (`cpy::frame::code_offset`), checked on each code's own first instruction.
    const RESUME: u8 = 151;
    let resume_at = info
        .code
        .chunks(2)
        .position(|u| u[0] == RESUME)
        .unwrap_or(0) as u32;
    if !crate::cpy::frame::check_code_layout(code, nlocalsplus, stacksize, info.flags, resume_at) {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"tiered: this code object is not laid out as CPython 3.11's".as_ptr(),
        );
        return Err(Raised);
    }
    let t = translate(&info);
    #[cfg(debug_assertions)]
    if t.unsupported.is_empty() {
        if let Err(e) = tiered_ir::verifier::verify(&t.func) {
            panic!("tiered: IR of {} fails verification: {e}", info.qualname);
        }
    }
    let mut linear = lower(&t.func);
    // Values stay in registers across yields only in generators: a coroutine's or an
    // async generator's frame is read by CPython's own code (asyncio's introspection of
    // `cr_frame`, `ag_frame`, the async generator's wrappers), through no getter of ours.
    {
        use tiered_frontend::code::flags;
        if info.flags & (flags::COROUTINE | flags::ASYNC_GENERATOR) != 0 {
            linear
                .suspensions
                .iter_mut()
                .for_each(|s| s.in_place = false);
        }
    }
    let mut states_by_offset = HashMap::default();
    for inst in &linear.insts {
        if inst.state != crate::lower::NO_STATE {
            states_by_offset.entry(inst.offset).or_insert(inst.state);
        }
    }
    // A resumed generator runs with its frame still at the yield until its first op
    // (`Thrown`, which may raise the exception thrown in): there its locals are the resume
    // block's, not the ones the suspension stored from.
    for s in &linear.suspensions {
        let state = linear.insts[s.resume as usize].state;
        if state != crate::lower::NO_STATE {
            states_by_offset.insert(s.offset, state);
        }
    }
    let plain_arity = {
        use tiered_frontend::code::flags;
        let special =
            info.flags & (flags::VARARGS | flags::VARKEYWORDS) != 0 || info.kwonlyargcount != 0;
        (!special).then_some(info.argcount as usize)
    };
    let start_constants = match linear.suspensions.is_empty() {
        true => Vec::new(),
        false => linear
            .prologue
            .iter()
            .filter_map(|&pc| {
                let inst = &linear.insts[pc as usize];
                let crate::lower::LKind::Op(tiered_ir::Op::Const { index }) = inst.kind else {
                    return None;
                };
                let o = *objects.consts.get(index.0 as usize)?;
                Some((inst.dst, std::ptr::NonNull::new(o)?))
            })
            .collect(),
    };
    let gen_start = match linear.suspensions.is_empty() {
        true => None,
        false => crate::generator::start::of(&linear),
    };
    Ok(with_state(Translation {
        lines: info.lines.clone(),
        objects,
        ir: t.func,
        unsupported: t.unsupported,
        linear,
        nlocalsplus,
        start_constants,
        gen_start,
        states_by_offset,
        info,
        plain_arity,
    }))
}

/// What a code's translation gives a compilation of it, which never changes: the
/// generic compilation's, copied for each specialization (`specialize`).
struct Translation {
    objects: CodeObjects,
    info: CodeInfo,
    ir: Function,
    unsupported: Vec<Unsupported>,
    linear: Linear,
    lines: LineTable,
    nlocalsplus: usize,
    start_constants: Vec<(u32, std::ptr::NonNull<ffi::PyObject>)>,
    gen_start: Option<crate::generator::start::Start>,
    states_by_offset: HashMap<u32, u32>,
    plain_arity: Option<usize>,
}

/// A compilation of the same code as `c` for other argument types: `c`'s translation
/// (copied: translating and lowering the code again was most of a new callee's cost, and
/// made each callee twice), with state of its own.
///
/// # Safety
/// GIL held.
unsafe fn specialize(c: &Compiled) -> Compiled {
    with_state(Translation {
        objects: c.objects.share(),
        info: c.info.clone(),
        ir: c.ir.clone(),
        unsupported: c.unsupported.clone(),
        linear: c.linear.clone(),
        lines: c.lines.clone(),
        nlocalsplus: c.nlocalsplus,
        start_constants: c.start_constants.clone(),
        gen_start: c.gen_start.clone(),
        states_by_offset: c.states_by_offset.clone(),
        plain_arity: c.plain_arity,
    })
}

/// A compilation of translation `t`: nothing quickened, counted or compiled yet.
fn with_state(t: Translation) -> Compiled {
    let n = t.linear.insts.len();
    Compiled {
        lines: t.lines,
        objects: t.objects,
        ir: t.ir,
        unsupported: t.unsupported,
        linear: t.linear,
        nlocalsplus: t.nlocalsplus,
        start_constants: t.start_constants,
        gen_start: t.gen_start,
        gen_files: Default::default(),
        states_by_offset: t.states_by_offset,
        info: t.info,
        quick: (0..n).map(|_| crate::quick::QuickCell::default()).collect(),
        global_versions: (0..n).map(|_| Cell::new(0)).collect(),
        signature: None,
        type_key: None,
        plain_arity: t.plain_arity,
        native_entry: Cell::new(0),
        vector_entry: Cell::new(0),
        slot_entry: Cell::new(0),
        direct_entry: Cell::new(0),
        wants: Cell::new(0),
        calls_without_trampoline: Cell::new(0),
        keep_alive: RefCell::new(Vec::new()),
        native: RefCell::new(NativeState::Cold),
        compiles: Cell::new(0),
        compile_ns: Cell::new(0),
        calls: Cell::new(0),
        backedges: Cell::new(0),
        deopts: Cell::new(0),
        resumes: Default::default(),
        deopts_since_compile: Cell::new(0),
        late_runs: Cell::new(0),
        compiled_cold: Cell::new(false),
        recompiles: Cell::new(0),
        retired: RefCell::new(Vec::new()),
    }
}

/// Whether calls of functions with this code from tiered code should run in tier 1.
///
/// # Safety
/// GIL held.
#[inline]
pub unsafe fn is_nested_tiered(code: *mut ffi::PyObject) -> bool {
    registry(|r| r.nested.contains(&(code as usize)))
}
