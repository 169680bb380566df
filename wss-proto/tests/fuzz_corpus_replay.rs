//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets'
//! own drivers, on stable Rust, inside `cargo test`: the RFC seeds and every input a fuzzing
//! campaign found worth keeping stay checked on each run, without nightly or libFuzzer.
//!
//! A driver panics when an invariant breaks (see `fuzz/src/drivers.rs`); this test names the
//! file that did it.

#[allow(dead_code)]
#[path = "../../fuzz/src/drivers.rs"]
mod drivers;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("corpus {} unreadable: {err}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        // libFuzzer's half-written files start with a dot.
        .filter(|path| {
            path.is_file()
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs `driver` on every corpus file of `target`; fails listing each file that panicked.
fn replay(target: &str, driver: fn(&[u8])) {
    let files = corpus_files(target);
    assert!(
        files.len() >= 10,
        "corpus of {target} has {} files: seeds missing (python3 fuzz/make_seeds.py)",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = fs::read(file).expect("read corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| driver(&data))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} corpus files broke an invariant:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn request_head_corpus_replays_cleanly() {
    replay("request_head", drivers::request_head);
}

#[test]
fn frame_header_corpus_replays_cleanly() {
    replay("frame_header", drivers::frame_header);
}

#[test]
fn server_connection_corpus_replays_cleanly() {
    replay("server_connection", drivers::server_connection);
}

#[test]
fn client_handshake_corpus_replays_cleanly() {
    replay("client_handshake", drivers::client_handshake);
}

/// The split points are what makes the differential checks bite: every control byte must cut
/// the stream into non-empty pieces, in order, within its bound.
#[test]
fn splits_cover_the_stream_in_bounded_chunks() {
    let stream: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    for control in 0..=255u8 {
        let chunks = drivers::Splits::new(control).cut(&stream);
        assert_eq!(chunks.concat(), stream, "control {control:#x} lost bytes");
        let bound = [1, 2, 3, 7, 16, 64, 512, usize::MAX][usize::from(control & 7)];
        for chunk in &chunks {
            assert!(
                !chunk.is_empty() && chunk.len() <= bound,
                "control {control:#x}"
            );
        }
    }
    assert_eq!(
        drivers::Splits::new(0x00).cut(b"Hello").len(),
        5,
        "one byte at a time"
    );
    assert_eq!(
        drivers::Splits::new(0x07).cut(b"Hello").len(),
        1,
        "all at once"
    );
    assert!(drivers::Splits::new(0x00).cut(b"").is_empty());
}

/// A server must fail the RFC's unmasked "Hello" with 1002; the driver checks the close code a
/// client then reads, so this passes only while the server gets it right.
#[test]
fn unmasked_rfc_frame_is_checked_end_to_end() {
    for control in [0x00, 0x07, 0x87] {
        let mut input = vec![control];
        input.extend_from_slice(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
        drivers::server_connection(&input);
    }
}
