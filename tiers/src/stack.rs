//! Native stack guard. Each tiered call nests Rust frames on the C stack (CPython 3.11's
//! own Python-to-Python calls do not), so a raised recursion limit could overflow the
//! thread's stack: before that, we raise RecursionError as CPython would at its limit.

use std::cell::Cell;

/// Headroom kept free below the guard: enough for CPython calls made by one op.
const HEADROOM: usize = 256 * 1024;

thread_local! {
    /// Lowest usable stack address of this thread (plus headroom); 0 = not computed yet.
    static LIMIT: Cell<usize> = const { Cell::new(0) };
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
        (addr as usize).saturating_add(HEADROOM)
    }
}

/// The lowest stack address this thread may run tiered code at (1 when unknown: never
/// trips). Native code compares its stack pointer with it before a direct call.
#[inline]
pub fn limit() -> usize {
    LIMIT.with(|l| {
        let mut limit = l.get();
        if limit == 0 {
            limit = compute_limit();
            l.set(limit);
        }
        limit
    })
}

/// `limit()` for the thread whose state is `ts`: a one-entry cache in front of the
/// thread-local (reaching a thread-local from a shared library is a call). The key is the
/// state's address and its unique id, so a dead thread's state reused at the same address
/// never hands out the dead thread's stack.
///
/// # Safety
/// GIL held (the cache is shared by all threads, and only the GIL holder touches it);
/// `ts` is the calling thread's state.
#[inline(always)]
pub unsafe fn limit_for(ts: crate::cpy::ThreadState) -> usize {
    static CACHE: crate::runtime::GilCell<(usize, u64, usize)> =
        crate::runtime::GilCell::new((0, 0, 0));
    let id = ts.id();
    CACHE.with(|c| {
        if c.0 != ts.addr() || c.1 != id {
            *c = (ts.addr(), id, limit());
        }
        c.2
    })
}

/// Whether the native stack is nearly exhausted at this point (`limit` from `limit()`).
#[inline]
pub fn nearly_exhausted(limit: usize) -> bool {
    // A local's address is the stack pointer, near enough (a literal's would be static).
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    here < limit
}
