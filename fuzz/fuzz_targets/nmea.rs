#![no_main]
//! NMEA 0183 logs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roadhex_ingest::formats::nmea::parse(data);
});
