//! libFuzzer entry for the `chat` target (test tooling, nightly): see `onair_fuzz::chat`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onair_fuzz::chat(data));
