//! libFuzzer entry for the `sdp` target (test tooling, nightly): see `onair_fuzz::sdp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onair_fuzz::sdp(data));
