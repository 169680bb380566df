//! libFuzzer entry for `wss_fuzz::drivers::frame_header` (what it checks is documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wss_fuzz::drivers::frame_header(data));
