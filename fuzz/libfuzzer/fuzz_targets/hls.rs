//! libFuzzer entry for the `hls` target (test tooling, nightly): see `onair_fuzz::hls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onair_fuzz::hls(data));
