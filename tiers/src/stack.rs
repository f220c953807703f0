//! Native stack guard. Each tiered call nests Rust frames on the C stack (CPython 3.11's
//! own Python-to-Python calls do not), so a raised recursion limit could overflow the
//! thread's stack: before that, we raise RecursionError as CPython would at its limit.

use std::cell::Cell;

/// Headroom kept free below the guard: enough for CPython calls made by one op (at most a
/// quarter of the thread's stack).
const HEADROOM: usize = 256 * 1024;

thread_local! {
    /// Lowest usable stack address of this thread (plus headroom); 0 = not computed yet.
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    /// This thread's stack, [low, high) (0, 0 when unknown).
    static RANGE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Whether `addr` lies on the calling thread's stack (known once it ran tiered code):
/// where our activations keep their contexts (`activation`).
pub fn on_this_stack(addr: usize) -> bool {
    let (low, high) = RANGE.with(|r| r.get());
    addr >= low && addr < high
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

/// A call entering our tiers on thread `ts` with stack limit `limit`: a recursion level
/// entered, or false with RecursionError set when the native stack is nearly exhausted
/// or no level is left (the caller leaves the level after the call).
///
/// # Safety
/// GIL held, on thread `ts`.
#[inline]
pub unsafe fn enter_call(ts: crate::cpy::ThreadState, limit: usize) -> bool {
    if nearly_exhausted(limit) {
        crate::ops::raise(
            pyo3_ffi::PyExc_RecursionError,
            "maximum recursion depth exceeded",
        );
        return false;
    }
    ts.enter_recursive_call()
}

/// Whether the native stack is nearly exhausted at this point (`limit` from `limit()`).
#[inline]
pub fn nearly_exhausted(limit: usize) -> bool {
    // A local's address is the stack pointer, near enough (a literal's would be static).
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    here < limit
}
