#![no_main]
//! The JPEG structure check that runs on every uploaded frame.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roadhex_schemas::jpeg::inspect(data);
});
