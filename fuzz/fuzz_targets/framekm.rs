#![no_main]
//! FrameKM bundles: the input is split into metadata JSON and bundle bytes at its first NUL.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (meta, bundle) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let _ = roadhex_ingest::formats::framekm::parse(bundle, meta);
    let _ = roadhex_ingest::formats::read_track(data);
});
