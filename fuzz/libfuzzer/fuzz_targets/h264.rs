//! libFuzzer entry for the `h264` target (test tooling, nightly): see `onair_fuzz::h264`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onair_fuzz::h264(data));
