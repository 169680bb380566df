//! The append-only file behind [`LogFile`](crate::LogFile): one line per write, reopened when
//! the file was rotated away or deleted, and never a reason to take the server down.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// An open log file that follows its path: when logrotate (or a user) moves or deletes the
/// file, the next line goes to a fresh file at the same path instead of the old inode.
#[derive(Debug)]
pub(crate) struct LogSink {
    path: PathBuf,
    file: Option<File>,
    identity: Option<FileIdentity>,
    /// Set after a failed write, so a broken disk logs one warning, not one per event.
    failing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    Some(FileIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<FileIdentity> {
    None
}

fn open_append(path: &Path) -> io::Result<(File, Option<FileIdentity>)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let id = file.metadata().ok().as_ref().and_then(identity);
    Ok((file, id))
}

impl LogSink {
    /// Opens (creating if needed) `path` for appending; fails if it cannot be opened now, so a
    /// wrong path is reported at start, not at the first event.
    pub(crate) fn open(path: impl Into<PathBuf>) -> io::Result<LogSink> {
        let path = path.into();
        let (file, identity) = open_append(&path)?;
        Ok(LogSink {
            path,
            file: Some(file),
            identity,
            failing: false,
        })
    }

    /// The path lines are written to.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the handle: the next line opens `path` afresh (after `logrotate`'s SIGHUP, when
    /// the file was copied and truncated rather than moved, or to pick up new permissions).
    pub(crate) fn reopen(&mut self) {
        self.file = None;
    }

    /// Whether the open handle still is the file at `path`.
    fn still_current(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => match (self.identity, identity(&meta)) {
                (Some(ours), Some(theirs)) => ours == theirs,
                // Without inode numbers a present file is taken as ours.
                _ => true,
            },
            Err(_) => false,
        }
    }

    /// Appends `line` and a newline in one write. Errors are logged and swallowed: losing a log
    /// line must not break a connection.
    pub(crate) fn write_line(&mut self, line: &str) {
        if self.file.is_none() || !self.still_current() {
            match open_append(&self.path) {
                Ok((file, id)) => {
                    self.file = Some(file);
                    self.identity = id;
                }
                Err(e) => {
                    self.file = None;
                    self.report(&e);
                    return;
                }
            }
        }
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        let result = match self.file.as_mut() {
            Some(f) => f.write_all(buf.as_bytes()),
            None => return,
        };
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                self.file = None;
                self.report(&e);
            }
        }
    }

    fn report(&mut self, e: &io::Error) {
        if !self.failing {
            log::warn!(
                "log file {}: {e}; will retry on the next event",
                self.path.display()
            );
            self.failing = true;
        }
    }
}

/// `now` as an RFC 3339 UTC timestamp with milliseconds: `2024-05-01T12:34:56.789Z`.
pub(crate) fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    );
    out
}

/// Days since 1970-01-01 to a (year, month, day) date in the proleptic Gregorian calendar,
/// counting in 400-year eras of 146 097 days starting on a 1 March.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(timestamp(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // last second of 2024
        assert_eq!(timestamp(t), "2024-12-31T23:59:59.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_400); // 2100-03-01, not a leap year
        assert_eq!(timestamp(t), "2100-03-01T00:00:00.000Z");
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wss-logsink-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lines_are_appended() {
        let dir = scratch("append");
        let path = dir.join("a.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut sink = LogSink::open(&path).unwrap();
        sink.write_line("one");
        sink.write_line("two");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\none\ntwo\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotated_file_is_reopened_at_the_same_path() {
        let dir = scratch("rotate");
        let path = dir.join("a.log");
        let mut sink = LogSink::open(&path).unwrap();
        sink.write_line("before");
        std::fs::rename(&path, dir.join("a.log.1")).unwrap();
        sink.write_line("after");
        assert_eq!(
            std::fs::read_to_string(dir.join("a.log.1")).unwrap(),
            "before\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn deleted_file_is_recreated() {
        let dir = scratch("delete");
        let path = dir.join("a.log");
        let mut sink = LogSink::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        sink.write_line("again");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "again\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_directory_is_survived_and_retried() {
        let dir = scratch("missing-dir");
        let path = dir.join("a.log");
        let mut sink = LogSink::open(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        sink.write_line("lost"); // must not panic
        std::fs::create_dir_all(&dir).unwrap();
        sink.write_line("back");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "back\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unopenable_path_fails_at_open() {
        let dir = scratch("unopenable");
        assert!(LogSink::open(dir.join("no/such/dir/a.log")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
