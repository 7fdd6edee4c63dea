#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dockhook::fuzzing::source("dockerhub", data);
});
