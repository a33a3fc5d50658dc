#![no_main]
//! GPX 1.0/1.1 tracks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roadhex_ingest::formats::gpx::parse(data);
});
