#![no_main]
//! Capture manifest parsing and validation, then the gates over whatever parsed.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = roadhex_schemas::CaptureManifest::parse(data) {
        let times: Vec<i64> = m.frames.iter().map(|f| f.t_ms).collect();
        let _ = roadhex_schemas::gates::evaluate_frames(&Default::default(), &m.telemetry, &times);
    }
});
