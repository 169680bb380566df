//! The behaviour tests again, through the borrowed API.
//!
//! Each file below is compiled a second time inside this test binary. Its `util::receive`
//! sees the crate name `borrowed` and feeds every byte through
//! `Connection::receive_in_place` instead of `Connection::receive` (on a copy of the bytes,
//! with the events it hands over kept as owned copies), so every RFC example, fragmentation,
//! interleaved control, UTF-8, limit, close and split-stream property checked for the owned
//! API is checked for the borrowed one with the same expected events and output.
// Each included file declares its own `mod util;`: the copies are what lets the files run
// unchanged in both binaries.
#![allow(clippy::duplicate_mod)]

#[path = "messages.rs"]
mod messages;

#[path = "close.rs"]
mod close;

#[path = "rfc_examples.rs"]
mod rfc_examples;

#[path = "frames.rs"]
mod frames;

#[path = "pair.rs"]
mod pair;

#[path = "proptest_stream.rs"]
mod proptest_stream;

#[path = "deflate_rfc7692.rs"]
mod deflate_rfc7692;

#[path = "deflate_pair.rs"]
mod deflate_pair;

#[path = "deflate_proptest.rs"]
mod deflate_proptest;

mod util;

#[test]
fn this_binary_runs_the_borrowed_api() {
    assert!(
        util::borrowed_api(),
        "crate name {}",
        env!("CARGO_CRATE_NAME")
    );
}
