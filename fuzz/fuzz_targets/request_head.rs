//! libFuzzer entry for `wss_fuzz::drivers::request_head` (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wss_fuzz::drivers::request_head(data));
