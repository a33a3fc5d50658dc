#![no_main]
//! EXIF GPS and times from JPEGs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roadhex_ingest::formats::exif::parse(data);
    let _ = roadhex_ingest::formats::exif::datetime_original_ms(data);
});
