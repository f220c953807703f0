//! Threads that CPython ends while tiered code is on their stack.
//!
//! At interpreter exit CPython 3.11 ends a daemon thread that tries to take the GIL with
//! `pthread_exit()` (`take_gil` -> `PyThread_exit_thread`). glibc implements that as a
//! forced unwind through every frame of the thread. CPython's own frames are C and have
//! nothing to clean up, so in plain CPython the thread just vanishes. Ours are Rust: the
//! unwind would run their landing pads (releasing objects without the GIL, after the
//! thread state may already be freed) and reach a `catch_unwind`, which cannot catch a
//! foreign exception and aborts the process ("FATAL: exception not rethrown").
//!
//! Nothing Rust-side may intercept that unwind, so it must never reach a Rust frame. glibc
//! lets a thread register a cancellation buffer (what `pthread_cleanup_push` uses): the
//! forced unwind's stop function longjmps to the innermost registered buffer as soon as the
//! frame it is unwinding lies outside `(buffer's stack pointer, top of the thread's
//! stack)`. Each thread that runs tiered code registers, once, a buffer whose stack
//! pointer is a small stack of its own on the heap, outside the thread's stack: the very
//! first frame of any forced unwind then jumps there, before a single frame (C or Rust) is
//! unwound. On that stack the thread waits for the process to end if the interpreter is
//! finalizing (what CPython 3.14 does for such threads, `PyThread_hang_thread`); otherwise
//! (some C library called `pthread_exit` itself) it jumps on to the buffer registered
//! before (the thread's start routine's, which ends the thread), skipping the abandoned
//! frames as an unwind through C code would.
//!
//! A thread running on a segment of stack of ours (`stack::grow`) registers one more buffer
//! for as long as it does, whose stack pointer is the bottom of the segment, below every
//! frame on it: whichever side of the thread's stack the segment was mapped, glibc's test
//! then finds the first frame outside the unwind's range, and lands on the segment's
//! bottom. From any buffer of ours, `unwound` goes on to the one registered before it.
//!
//! glibc on x86-64 only: the buffer is filled by hand, with glibc's pointer mangling.
//! Elsewhere nothing is registered and a forced unwind behaves as before (and there are no
//! segments).

/// Registers this thread's buffer if it has none yet (called on the thread's first entry
/// into tiered code, see `stack::limit`).
pub fn guard_this_thread() {
    imp::guard_this_thread()
}

/// Registers the buffer of a segment of stack whose lowest usable address is `landing`
/// (with room below it for `unwound`), until the result is dropped.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
pub fn guard_segment(landing: usize) -> impl Drop {
    imp::SegmentGuard::register(landing)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
mod imp {
    use std::cell::RefCell;
    use std::os::raw::{c_int, c_void};

    /// glibc's `__pthread_unwind_buf_t` (pthread.h): a `__jmp_buf` (rbx, rbp, r12-r15,
    /// rsp, pc; rbp, rsp and pc mangled), `__mask_was_saved`, then four words glibc uses to
    /// chain buffers.
    #[repr(C, align(16))]
    struct UnwindBuf {
        jmp: [u64; 8],
        mask_was_saved: c_int,
        pad: [*mut c_void; 4],
    }

    const JB_RBP: usize = 1;
    const JB_RSP: usize = 6;
    const JB_PC: usize = 7;

    extern "C" {
        /// Makes `buf` the thread's innermost cancellation buffer (it records the previous).
        fn __pthread_register_cancel(buf: *mut UnwindBuf);
        /// Restores the buffer registered before `buf`.
        fn __pthread_unregister_cancel(buf: *mut UnwindBuf);
        /// Jumps to a buffer saved by setjmp (a registered cancellation buffer).
        fn siglongjmp(env: *mut c_void, val: c_int) -> !;
    }

    /// Size of the stack the thread continues on once a forced unwind jumped there: enough
    /// for `pthread_exit`'s own unwinder.
    const STACK: usize = 64 * 1024;

    /// A thread's registered buffer and the stack it points at. Both stay at one address
    /// while registered (boxed).
    struct Guard {
        buf: Box<UnwindBuf>,
        _stack: Box<[u8]>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: the buffer was registered by this thread, and thread-local
            // destructors run after the thread's function returned, when no buffer
            // registered after ours is left.
            unsafe { __pthread_unregister_cancel(&mut *self.buf) }
        }
    }

    thread_local! {
        static GUARD: RefCell<Option<Guard>> = const { RefCell::new(None) };
        /// Our registered buffers, innermost last: the thread's, then its segments'.
        static REGISTERED: RefCell<Vec<*mut UnwindBuf>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer whose jump lands on `unwound` with stack pointer `sp`.
    fn landing_at(sp: usize) -> Box<UnwindBuf> {
        let mut buf = Box::new(UnwindBuf {
            jmp: [0; 8],
            mask_was_saved: 0,
            pad: [std::ptr::null_mut(); 4],
        });
        buf.jmp[JB_RBP] = mangle(0);
        buf.jmp[JB_RSP] = mangle(sp as u64);
        buf.jmp[JB_PC] = mangle(unwound as *const () as usize as u64);
        buf
    }

    /// Registers `buf` as the innermost (boxed: it stays at one address).
    fn register(buf: &mut UnwindBuf) {
        // SAFETY: `buf` stays registered only while it lives: its owner unregisters it
        // (`SegmentGuard::drop`, `Guard::drop`) or the thread never returns past it.
        unsafe { __pthread_register_cancel(buf) };
        REGISTERED.with(|r| r.borrow_mut().push(buf));
    }

    /// A segment's buffer, registered while the thread runs on the segment.
    pub(super) struct SegmentGuard {
        buf: Box<UnwindBuf>,
    }

    impl SegmentGuard {
        pub(super) fn register(landing: usize) -> SegmentGuard {
            // 16-byte aligned, minus the slot of a (null) return address.
            let mut buf = landing_at((landing & !15) - 8);
            register(&mut buf);
            SegmentGuard { buf }
        }
    }

    impl Drop for SegmentGuard {
        fn drop(&mut self) {
            REGISTERED.with(|r| r.borrow_mut().pop());
            // SAFETY: registered by `register` on this thread, and the innermost again:
            // segments are left in the order they were entered.
            unsafe { __pthread_unregister_cancel(&mut *self.buf) }
        }
    }

    /// glibc's `PTR_MANGLE` on x86-64: xor with the thread's pointer guard, rotate left 17.
    fn mangle(v: u64) -> u64 {
        let guard: u64;
        // SAFETY: on x86-64 glibc, %fs points at the thread's TCB, whose pointer_guard
        // field is at offset 0x30 (tcbhead_t); reading it has no side effect.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0x30]", out(reg) guard, options(nostack, readonly, preserves_flags));
        }
        (v ^ guard).rotate_left(17)
    }

    /// Where a forced unwind lands, on the guard's own stack (see the module doc).
    extern "C" fn unwound() -> ! {
        // SAFETY: `_Py_IsFinalizing` only reads the runtime's finalizing flag.
        if unsafe { crate::cpy::is_finalizing() } {
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        }
        // Not CPython ending the thread: carry on with the buffer registered before the
        // one the unwind jumped to (the innermost of ours; before the thread's own, its
        // start routine's, which exits the thread), as glibc's unwinder would once past
        // our frames. The thread's own stays registered on a thread that never runs tiered
        // code again (its stack is the one running now).
        let prev = REGISTERED.with(|r| {
            let buf = r.try_borrow_mut().ok()?.pop()?;
            // SAFETY: `buf` is the innermost buffer (the forced unwind jumped to it);
            // unregistering restores the previous one, recorded in `pad[0]`.
            unsafe {
                let prev = (*buf).pad[0];
                __pthread_unregister_cancel(buf);
                Some(prev)
            }
        });
        match prev {
            // SAFETY: a registered cancellation buffer begins with a sigjmp_buf filled by
            // setjmp in a frame still live on this thread's stack (glibc's own
            // unwinder longjmps to it the same way).
            Some(prev) if !prev.is_null() => unsafe { siglongjmp(prev, 1) },
            _ => loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            },
        }
    }

    pub fn guard_this_thread() {
        GUARD.with(|g| {
            let Ok(mut g) = g.try_borrow_mut() else {
                return;
            };
            if g.is_some() {
                return;
            }
            let stack = vec![0u8; STACK].into_boxed_slice();
            // 16-byte aligned top, minus the slot of a (null) return address, as a call
            // would leave it for `unwound`.
            let top = (stack.as_ptr() as usize + STACK) & !15;
            let mut buf = landing_at(top - 8);
            // The buffer is boxed (fixed address) and lives until the thread-local is
            // destroyed, which unregisters it first.
            register(&mut buf);
            *g = Some(Guard { buf, _stack: stack });
        });
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")))]
mod imp {
    pub fn guard_this_thread() {}
}
