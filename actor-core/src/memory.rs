//! Giving the memory of hibernated agents back to the operating system.
//!
//! A hibernating agent frees its task and buffers (see [`crate::hibernate`]), but
//! glibc's `malloc` keeps freed blocks resident in its arenas: 1,000,000 agents that
//! each handled a message and went idle stayed at about 1,000 resident bytes each,
//! against 220 after `malloc_trim(0)` (measured with the `spawn` workload of
//! `benches/`). So after a wave of hibernations, the sweep asks the allocator to return
//! whole free pages (`malloc_trim`), off the async threads. That call is the one
//! exception to the crate's `unsafe_code = "deny"`: it takes no pointers and has no
//! preconditions; it only walks the allocator's own free lists under its own locks.

/// How many agents must hibernate since the last trim before the sweep asks for
/// another (about half a megabyte of tasks and buffers): a trim walks every free list,
/// so a trickle of hibernations does not pay for one.
pub(crate) const TRIM_AFTER_HIBERNATIONS: u64 = 1024;

/// Asks the allocator to return free pages to the operating system; true if it did.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn trim() -> bool {
    // SAFETY: `malloc_trim` takes a size (bytes to keep at the top of the heap) and no
    // pointers; glibc documents it as thread-safe (it locks each arena in turn).
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators and platforms: nothing to do (or nothing this crate can ask for).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() -> bool {
    false
}
