//! The open-file limit: every connection is a file descriptor, and most systems start a
//! process with a soft limit (often 1024) far below what the server is built to hold. A
//! process may raise its own soft limit up to the hard one without privileges, so `wss` does
//! it at start instead of asking every caller for `ulimit -n`.

/// The soft limit before and after [`raise`], and the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raised {
    pub(crate) before: u64,
    pub(crate) after: u64,
    pub(crate) hard: u64,
}

/// Raises the soft open-file limit of this process as far as the system allows (the hard
/// limit; on macOS also the kernel's per-process cap).
#[cfg(unix)]
pub(crate) fn raise() -> std::io::Result<Raised> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(Raised {
        before,
        after,
        hard,
    })
}

/// No such limit to raise here.
#[cfg(not(unix))]
pub(crate) fn raise() -> std::io::Result<Raised> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Raises the limit and logs the outcome; a failure only costs capacity, so it is a warning.
pub(crate) fn raise_and_log() {
    match raise() {
        Ok(r) if r.after > r.before => log::debug!(
            "open-file limit raised from {} to {} (hard limit {})",
            r.before,
            r.after,
            r.hard
        ),
        Ok(r) => log::debug!(
            "open-file limit {} (hard limit {}): nothing to raise",
            r.after,
            r.hard
        ),
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let r = raise().expect("getrlimit/setrlimit");
        assert!(r.after >= r.before);
        let (soft, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
        assert_eq!(soft, r.after);
        assert_eq!(hard, r.hard);
        #[cfg(target_os = "linux")]
        assert_eq!(soft, hard, "on Linux the soft limit goes all the way up");
    }
}
