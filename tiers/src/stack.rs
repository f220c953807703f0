//! Native stack guard and growth. Each tiered call nests Rust frames on the C stack
//! (CPython 3.11's own Python-to-Python calls do not), so a raised recursion limit could
//! overflow the thread's stack. A call that finds the stack nearly exhausted continues on a
//! fresh segment of stack of its own (`grow`), as deep as the recursion limit allows, as
//! CPython's heap-allocated frames do; only when no segment can be had does it raise
//! RecursionError instead.

use std::cell::{Cell, RefCell};

/// Headroom kept free below the guard: enough for CPython calls made by one op (at most a
/// quarter of the thread's stack).
const HEADROOM: usize = 256 * 1024;

thread_local! {
    /// Lowest usable stack address of this thread (plus headroom); 0 = not computed yet.
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    /// This thread's stack, [low, high) (0, 0 when unknown).
    static RANGE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// The segments this thread runs on besides its stack (`grow`), [low, high), innermost
    /// last.
    static SEGMENTS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Whether `addr` lies on the calling thread's stack or one of its segments in use (known
/// once it ran tiered code): where our activations keep their contexts (`activation`).
pub fn on_this_stack(addr: usize) -> bool {
    let (low, high) = RANGE.with(|r| r.get());
    (addr >= low && addr < high)
        || SEGMENTS.with(|s| s.borrow().iter().any(|&(l, h)| addr >= l && addr < h))
}

fn compute_limit() -> usize {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; we destroy it after
    // reading the stack bounds, as its contract asks.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 1; // unknown: never trip
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 || addr.is_null() {
            return 1;
        }
        RANGE.with(|r| r.set((addr as usize, addr as usize + size)));
        // A thread made with a small stack (threading.stack_size) keeps a quarter of it,
        // not more than all of it.
        (addr as usize).saturating_add(HEADROOM.min(size / 4))
    }
}

/// The lowest stack address this thread may run tiered code at (1 when unknown: never
/// trips). Native code compares its stack pointer with it before a direct call.
#[inline]
pub fn limit() -> usize {
    LIMIT.with(|l| {
        let mut limit = l.get();
        if limit == 0 {
            // A thread's first entry into tiered code: from now on a forced unwind
            // (pthread_exit at interpreter exit) must not run through our frames.
            crate::thread_exit::guard_this_thread();
            limit = compute_limit();
            l.set(limit);
        }
        limit
    })
}

/// The one-entry cache in front of `limit()` (reaching a thread-local from a shared library
/// is a call): the thread state it is for, by address and unique id (so a dead thread's
/// state reused at the same address never hands out the dead thread's stack), and that
/// thread's limit. Native entries read it too (`native::trampoline`), by these offsets.
#[repr(C)]
pub struct LimitCache {
    /// The thread state's address.
    pub tstate: usize,
    /// Its id (`ThreadState::id`).
    pub id: u64,
    /// `limit()` of its thread.
    pub limit: usize,
}

static LIMIT_CACHE: crate::runtime::GilCell<LimitCache> =
    crate::runtime::GilCell::new(LimitCache {
        tstate: 0,
        id: 0,
        limit: 0,
    });

/// The address of the cache (for native code, which reads it under the GIL).
pub fn limit_cache_addr() -> usize {
    LIMIT_CACHE.addr()
}

/// `limit()` for the thread whose state is `ts`, through the cache.
///
/// # Safety
/// GIL held (the cache is shared by all threads, and only the GIL holder touches it);
/// `ts` is the calling thread's state.
#[inline(always)]
pub unsafe fn limit_for(ts: crate::cpy::ThreadState) -> usize {
    let id = ts.id();
    LIMIT_CACHE.with(|c| {
        if c.tstate != ts.addr() || c.id != id {
            *c = LimitCache {
                tstate: ts.addr(),
                id,
                limit: limit(),
            };
        }
        c.limit
    })
}

/// Raises the RecursionError of a call that found no stack left (no segment could be had).
#[cold]
pub fn raise_exhausted() {
    // SAFETY: raising only sets the thread's error indicator (GIL held by our callers).
    unsafe {
        crate::ops::raise(
            pyo3_ffi::PyExc_RecursionError,
            "maximum recursion depth exceeded",
        )
    };
}

/// Whether the native stack is nearly exhausted at this point (`limit` from `limit()`).
#[inline]
pub fn nearly_exhausted(limit: usize) -> bool {
    // A local's address is the stack pointer, near enough (a literal's would be static).
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    here < limit
}

/// Forgets the cached limit (`limit_for`): the calling thread's changed.
///
/// # Safety
/// GIL held (the cache is shared by all threads).
unsafe fn forget_cached_limit() {
    LIMIT_CACHE.with(|c| c.tstate = 0);
}

/// Runs `f` on a fresh segment of stack, where `limit()` (and so every context made there)
/// is the segment's: for a call that found the stack nearly exhausted. None (and `f` not
/// run) where segments are not supported or this thread has all it may have.
///
/// # Safety
/// GIL held (the limit cache is shared).
#[inline(never)]
pub unsafe fn grow<R>(f: impl FnOnce() -> R) -> Option<R> {
    imp::grow(f).ok()
}

/// Stack a compile may need (Cranelift's passes keep large frames): a compile can start
/// anywhere, deep in a recursion or on a thread with a small stack.
pub const COMPILE_STACK: usize = 1 << 20;

/// Runs `f`, which needs up to `need` bytes of stack: here if this thread's stack has that
/// much above its limit, else on a fresh segment (here all the same if none can be had).
///
/// # Safety
/// GIL held (as `grow`).
pub unsafe fn with_room<R>(need: usize, f: impl FnOnce() -> R) -> R {
    if !nearly_exhausted(limit().saturating_add(need)) {
        return f();
    }
    match imp::grow(f) {
        Ok(r) => r,
        Err(f) => f(),
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
mod imp {
    use super::{forget_cached_limit, HEADROOM, LIMIT, SEGMENTS};
    use std::cell::Cell;

    /// A segment's size. Only the pages a recursion touches take memory; each holds 4,500
    /// to 8,500 levels of tier 1 (1.9 to 3.5 KB each) and about 30,000 of native code.
    const SEGMENT: usize = 16 << 20;
    /// Segments a thread may use at once (4 GiB of address space): past them, a call
    /// raises RecursionError as on a thread without segments.
    const MAX_SEGMENTS: usize = 256;
    /// The inaccessible page at a segment's bottom, so that an overflow faults.
    const GUARD_PAGE: usize = 4096;
    /// Above the guard page: the stack a forced unwind lands on (`thread_exit`).
    const LANDING: usize = 64 * 1024;

    /// One mapped segment, [low, low + SEGMENT).
    struct Segment {
        low: usize,
    }

    impl Segment {
        fn map() -> Option<Segment> {
            // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    SEGMENT,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return None;
                }
                let seg = Segment { low: p as usize };
                if libc::mprotect(p, GUARD_PAGE, libc::PROT_NONE) != 0 {
                    return None; // unmapped by drop
                }
                Some(seg)
            }
        }
    }

    impl Drop for Segment {
        fn drop(&mut self) {
            // SAFETY: mapped by `map`, and nothing runs on it any more.
            unsafe { libc::munmap(self.low as *mut libc::c_void, SEGMENT) };
        }
    }

    thread_local! {
        /// The last segment given back, kept for the next: a recursion going up and down
        /// around a segment's edge maps none.
        static SPARE: Cell<Option<Segment>> = const { Cell::new(None) };
    }

    /// What runs on the segment: `f`, then its result (or its panic, resumed after the
    /// switch back: an unwind cannot cross the switch).
    struct Job<F, R> {
        f: Option<F>,
        out: Option<std::thread::Result<R>>,
    }

    extern "C" fn start<F: FnOnce() -> R, R>(job: *mut u8) {
        // SAFETY: `grow` passes its own `Job<F, R>`, alive until the switch returns.
        let job = unsafe { &mut *(job as *mut Job<F, R>) };
        if let Some(f) = job.f.take() {
            job.out = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        }
    }

    /// `super::grow`, giving `f` back when no segment can be had.
    pub(super) unsafe fn grow<F: FnOnce() -> R, R>(f: F) -> Result<R, F> {
        if SEGMENTS.with(|s| s.borrow().len()) >= MAX_SEGMENTS {
            return Err(f);
        }
        let Some(seg) = SPARE.with(|s| s.take()).or_else(Segment::map) else {
            return Err(f);
        };
        let (low, high) = (seg.low, seg.low + SEGMENT);
        let landing = (low + GUARD_PAGE + LANDING) & !15;
        let unwind_guard = crate::thread_exit::guard_segment(landing);
        SEGMENTS.with(|s| s.borrow_mut().push((low, high)));
        let outer = LIMIT.with(|l| l.replace(landing + HEADROOM));
        forget_cached_limit();
        let mut job = Job::<F, R> {
            f: Some(f),
            out: None,
        };
        // SAFETY: the segment's top is 16-byte aligned and nothing else uses the segment;
        // `start` is called as a C function on it with the job's address, and returns
        // (it catches any panic), after which the stack pointer is ours again (r12 is
        // callee-saved, so `start` keeps it).
        std::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {entry}",
            "mov rsp, r12",
            top = in(reg) high,
            entry = in(reg) start::<F, R> as extern "C" fn(*mut u8),
            in("rdi") &mut job as *mut Job<F, R> as *mut u8,
            out("r12") _,
            clobber_abi("C"),
        );
        LIMIT.with(|l| l.set(outer));
        forget_cached_limit();
        SEGMENTS.with(|s| s.borrow_mut().pop());
        drop(unwind_guard);
        SPARE.with(|s| s.set(Some(seg)));
        match job.out {
            Some(Ok(r)) => Ok(r),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("the segment's job ran"),
        }
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")))]
mod imp {
    pub(super) unsafe fn grow<F: FnOnce() -> R, R>(f: F) -> Result<R, F> {
        Err(f)
    }
}
