#![no_main]
//! GoPro GPMF payloads and MP4 containers.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roadhex_ingest::formats::gpmf::parse_payload(data);
    let _ = roadhex_ingest::formats::gpmf::parse_mp4(data);
});
