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

/// The lowest stack address this thread may run tiered code at (0 when unknown: never
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

/// Whether the native stack is nearly exhausted at this point.
#[inline]
pub fn nearly_exhausted() -> bool {
    // A local's address is the stack pointer, near enough (a literal's would be static).
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    here < limit()
}
