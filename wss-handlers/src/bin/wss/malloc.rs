//! glibc's allocator settings for a server that allocates and frees large message buffers on
//! two threads.
//!
//! A message is decoded into a buffer on a network thread and freed on the worker; the echo's
//! copy goes the other way. With glibc's defaults each free of a 64 KiB buffer can bring the
//! free space at the top of a thread's heap past the 128 KiB trim threshold, and the heap is
//! then given back to the kernel (`madvise(MADV_DONTNEED)`): the next message's buffer faults
//! its 16 pages in again, zeroed by the kernel. glibc raises these thresholds by itself, but
//! only after a buffer above the mmap threshold (128 KiB) has been freed, which messages of
//! 64 KiB never trigger. Fixing them at the values glibc would reach keeps the freed pages
//! (bounded: a few MiB per heap) and leaves large buffers to `mmap` as before.

/// Largest allocation served from the heaps; larger ones are mapped apart (and unmapped on
/// free, so a rare huge message leaves nothing behind).
const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the top of a heap kept for reuse rather than given back.
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Applies the settings above (glibc only; elsewhere nothing to do). True when glibc took both.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn tune() -> bool {
    // SAFETY: `mallopt` only stores these parameters in the allocator's state, under its own
    // lock; it is called once at start, before the server threads allocate.
    let (mmap, trim) = unsafe {
        (
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        )
    };
    mmap == 1 && trim == 1
}

/// Not glibc: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn tune() -> bool {
    true
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_accepts_both_thresholds() {
        // mallopt answers 0 for a value it refuses; tune() would then silently do nothing.
        assert!(super::tune(), "glibc refused a malloc threshold");
    }
}
