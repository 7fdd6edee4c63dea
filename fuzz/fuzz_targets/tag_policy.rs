#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhook::fuzzing::tag_policy(data));
