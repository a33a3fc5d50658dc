//! `roadhex capture build`: turns a folder of frames and a track into signed captures, the way a
//! dashcam does: keyframes about every 8 m, telemetry gates applied, a new capture at 1 km,
//! 125 frames, a position jump or a camera change.

use super::keys;
use crate::error::{IngestError, Result};
use crate::formats::{exif, framekm, read_track};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use roadhex_schemas::gates::{FramePosition, GateConfig, evaluate_frames, position_at};
use roadhex_schemas::geo::haversine_m;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::limits::{BUNDLE_FRAMES, BUNDLE_METERS, MAX_FRAME_BYTES, MIN_FRAME_BYTES};
use roadhex_schemas::{Camera, CaptureManifest, FrameEntry, GnssSample, Mount, jpeg};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A frame may be this much closer than the keyframe spacing (as the firmware allows).
const KEYFRAME_SLACK_M: f64 = 1.0;

/// Where frames and telemetry come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A folder of JPEGs, with a track file or, without one, the GPS fix in each JPEG's EXIF.
    Folder {
        frames_dir: PathBuf,
        track: Option<PathBuf>,
        /// Time of the first frame when frames carry no EXIF time.
        start: Option<DateTime<Utc>>,
        /// Interval between frames when frames carry no EXIF time.
        interval_ms: Option<i64>,
    },
    /// A Hivemapper FrameKM bundle and its metadata JSON.
    FrameKm { bundle: PathBuf, metadata: PathBuf },
    /// A video, sampled every keyframe spacing of travel. The track is a separate file or, for a
    /// GoPro MP4, its own GPMF; `start` is the UTC time of the first video frame (GoPro: from GPS).
    #[cfg(feature = "video")]
    Video { video: PathBuf, track: Option<PathBuf>, start: Option<DateTime<Utc>> },
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub key_file: PathBuf,
    pub input: Input,
    pub out: PathBuf,
    pub focal_length_px: Option<f64>,
    pub hfov_deg: Option<f64>,
    pub mount: Mount,
    pub mount_height_m: f64,
    pub gates: GateConfig,
    /// Privacy zones: frames inside are dropped here, so they never leave the car.
    pub zones: Vec<roadhex_schemas::privacy::Zone>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuiltCapture {
    pub dir: PathBuf,
    pub sequence: u64,
    pub frames: usize,
    pub length_m: f64,
}

/// A frame left out, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub file: String,
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub device_id: String,
    pub captures: Vec<BuiltCapture>,
    /// Frames closer than the keyframe spacing to the previous keyframe (normal for video).
    pub not_keyframes: usize,
    pub skipped: Vec<Skipped>,
}

/// Where a frame's bytes are.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Memory(Bytes),
}

#[derive(Debug, Clone)]
struct Frame {
    /// File name or bundle position, for reports.
    name: String,
    source: Source,
    sha256: String,
    size: u64,
    width: u32,
    height: u32,
    t_ms: i64,
}

#[derive(Debug, Default)]
struct Draft {
    frames: Vec<(Frame, FramePosition)>,
    length_m: f64,
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let mut key = keys::load(&opts.key_file)?;
    let mut skipped = Vec::new();
    let (track, frames) = match &opts.input {
        Input::Folder { frames_dir, track: Some(track), start, interval_ms } => {
            let bytes = std::fs::read(track).map_err(|e| IngestError::io(track, e))?;
            let mut track = read_track(&bytes)?;
            let frames = scan_folder(frames_dir, start.zip(*interval_ms), None, &mut skipped)?;
            // Old NMEA receivers report dates 1024 weeks early; the frames' clock says when.
            if crate::formats::detect(&bytes) == Some(crate::formats::Format::Nmea)
                && let Some(first) = frames.first()
            {
                for s in &mut track {
                    s.t_ms = crate::formats::nmea::unroll_week_rollover(s.t_ms, first.t_ms);
                }
            }
            (track, frames)
        }
        Input::Folder { frames_dir, track: None, .. } => {
            let mut track = Vec::new();
            let frames = scan_folder(frames_dir, None, Some(&mut track), &mut skipped)?;
            track.sort_by_key(|s| s.t_ms);
            track.dedup_by_key(|s| s.t_ms);
            crate::formats::derive_motion(&mut track);
            (track, frames)
        }
        Input::FrameKm { bundle, metadata } => read_framekm(bundle, metadata, &mut skipped)?,
        #[cfg(feature = "video")]
        Input::Video { video, track, start } => {
            read_video(opts, video, track.as_deref(), *start, &mut skipped)?
        }
    };
    let (drafts, not_keyframes) = select(opts, &track, frames, &mut skipped);
    let mut captures = Vec::new();
    for draft in drafts.into_iter().filter(|d| !d.frames.is_empty()) {
        let sequence = key.next_sequence;
        let built = write_capture(opts, &key.device_id.to_string(), sequence, &track, &draft, |m| {
            key.sign(m).map_err(|e| IngestError::Build(e.to_string()))
        })?;
        key.next_sequence += 1;
        // Persist the counter after each capture, so a crash never reuses a sequence number.
        keys::save(&opts.key_file, &key)?;
        captures.push(built);
    }
    if captures.is_empty() {
        return Err(IngestError::Build(format!(
            "no frame could be placed on the track ({} skipped; first: {})",
            skipped.len(),
            skipped.first().map_or("none".into(), |s| format!("{}: {}", s.file, s.reason))
        )));
    }
    Ok(BuildReport { device_id: key.device_id.to_string(), captures, not_keyframes, skipped })
}

/// Reads every JPEG in the folder (by file name), with hash, size, dimensions and time. With
/// `geotags`, each frame's EXIF GPS fix is collected as the track and sets the frame's time.
fn scan_folder(
    dir: &Path,
    times: Option<(DateTime<Utc>, i64)>,
    mut geotags: Option<&mut Vec<GnssSample>>,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Frame>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| IngestError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("jpg") || x.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(IngestError::Build(format!("{} holds no .jpg frames", dir.display())));
    }
    let mut frames = Vec::with_capacity(paths.len());
    let mut missing_time = 0;
    for (i, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| IngestError::io(path, e))?;
        let name = path.display().to_string();
        if let Some(track) = geotags.as_deref_mut() {
            match exif::geotag(&bytes) {
                Ok(sample) => track.push(sample),
                Err(e) => {
                    skipped.push(Skipped { file: name, code: e.code().into(), reason: e.to_string() });
                    continue;
                }
            }
        }
        let t_ms = match times {
            Some((start, step)) => Some(start.timestamp_millis() + step * i as i64),
            None => geotags
                .as_deref()
                .and_then(|t| t.last())
                .map(|s| s.t_ms)
                .or_else(|| exif::datetime_original_ms(&bytes)),
        };
        let Some(t_ms) = t_ms else {
            missing_time += 1;
            continue;
        };
        if let Some(f) = inspect_frame(name, Source::File(path.clone()), &bytes, t_ms, skipped) {
            frames.push(f);
        }
    }
    if missing_time > 0 {
        return Err(IngestError::Build(format!(
            "{missing_time} frames carry no EXIF DateTimeOriginal; pass --start RFC3339 and --interval-ms N"
        )));
    }
    frames.sort_by(|a, b| a.t_ms.cmp(&b.t_ms).then_with(|| a.name.cmp(&b.name)));
    frames.dedup_by(|b, a| a.t_ms == b.t_ms || a.sha256 == b.sha256);
    Ok(frames)
}

/// Splits a FrameKM bundle; its per-frame GNSS fixes are the track.
fn read_framekm(
    bundle: &Path,
    metadata: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<(Vec<GnssSample>, Vec<Frame>)> {
    let bytes = Bytes::from(std::fs::read(bundle).map_err(|e| IngestError::io(bundle, e))?);
    let meta = std::fs::read(metadata).map_err(|e| IngestError::io(metadata, e))?;
    let km = framekm::parse(&bytes, &meta).map_err(crate::formats::FormatError::from)?;
    let mut track: Vec<GnssSample> = km.frames.iter().map(|f| f.sample).collect();
    track.sort_by_key(|s| s.t_ms);
    track.dedup_by_key(|s| s.t_ms);
    let mut frames = Vec::new();
    for (i, f) in km.frames.iter().enumerate() {
        let piece = bytes.slice(f.range.clone());
        let name = format!("{}#{i}", bundle.display());
        if let Some(frame) =
            inspect_frame(name, Source::Memory(piece.clone()), &piece, f.sample.t_ms, skipped)
        {
            frames.push(frame);
        }
    }
    Ok((track, frames))
}

/// Samples a video along its track (see [`Input::Video`]).
#[cfg(feature = "video")]
fn read_video(
    opts: &BuildOptions,
    video: &Path,
    track: Option<&Path>,
    start: Option<DateTime<Utc>>,
    skipped: &mut Vec<Skipped>,
) -> Result<(Vec<GnssSample>, Vec<Frame>)> {
    use crate::formats::{gpmf, video as vid};
    let (track, gps_start) = match track {
        Some(t) => (read_track(&std::fs::read(t).map_err(|e| IngestError::io(t, e))?)?, None),
        None => {
            let bytes = std::fs::read(video).map_err(|e| IngestError::io(video, e))?;
            let (mut samples, origin) = gpmf::mp4_track(&bytes).map_err(crate::formats::FormatError::from)?;
            crate::formats::derive_motion(&mut samples);
            (samples, origin)
        }
    };
    let start_ms = start.map(|s| s.timestamp_millis()).or(gps_start).ok_or_else(|| {
        IngestError::Build(
            "the video's start time is unknown: pass --start RFC3339 (UTC of its first frame)".into(),
        )
    })?;
    let sampled = vid::sample(video, &track, start_ms, &opts.gates, 90)
        .map_err(|e| IngestError::Build(format!("{e} ({})", e.code())))?;
    let mut frames = Vec::with_capacity(sampled.len());
    for f in sampled {
        let name = format!("{}@{}ms", video.display(), f.t_ms - start_ms);
        let bytes = Bytes::from(f.jpeg);
        if let Some(frame) = inspect_frame(name, Source::Memory(bytes.clone()), &bytes, f.t_ms, skipped) {
            frames.push(frame);
        }
    }
    Ok((track, frames))
}

/// Size and JPEG checks the server would make; a failing frame is skipped with its reason.
fn inspect_frame(
    name: String,
    source: Source,
    bytes: &[u8],
    t_ms: i64,
    skipped: &mut Vec<Skipped>,
) -> Option<Frame> {
    let size = bytes.len() as u64;
    if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&size) {
        let reason = format!("{size} bytes; frames must be {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES} bytes");
        skipped.push(Skipped { file: name, code: "frame_size_out_of_range".into(), reason });
        return None;
    }
    match jpeg::inspect(bytes) {
        Ok(info) => Some(Frame {
            name,
            source,
            sha256: sha256_hex(bytes),
            size,
            width: info.width,
            height: info.height,
            t_ms,
        }),
        Err(e) => {
            skipped.push(Skipped { file: name, code: e.code().into(), reason: e.to_string() });
            None
        }
    }
}

/// Picks keyframes, applies the gates and cuts the drive into capture drafts.
fn select(
    opts: &BuildOptions,
    track: &[GnssSample],
    frames: Vec<Frame>,
    skipped: &mut Vec<Skipped>,
) -> (Vec<Draft>, usize) {
    let cfg = &opts.gates;
    let mut drafts = vec![Draft::default()];
    let mut not_keyframes = 0;
    for frame in frames {
        let file = frame.name.clone();
        let gate = evaluate_frames(cfg, track, &[frame.t_ms]).pop();
        let pos = match gate {
            Some(g) if g.verdict.is_ok() => g.position,
            Some(g) => {
                let (code, reason) = g
                    .verdict
                    .err()
                    .map_or(("gnss_gap".into(), String::new()), |r| (r.code().into(), r.to_string()));
                skipped.push(Skipped { file, code, reason });
                continue;
            }
            None => None,
        };
        let Some(pos) = pos.or_else(|| position_at(track, frame.t_ms).map(|p| p.0)) else {
            skipped.push(Skipped {
                file,
                code: "frame_time_outside_telemetry".into(),
                reason: "no track at this time".into(),
            });
            continue;
        };
        if let Some(z) = opts.zones.iter().find(|z| z.shape.contains(pos.lat, pos.lon)) {
            skipped.push(Skipped {
                file,
                code: "privacy_zone".into(),
                reason: format!("inside privacy zone {}", z.label.as_deref().unwrap_or(&z.zone_id)),
            });
            continue;
        }
        let cur = drafts.last_mut().map(|d| (d.frames.last().cloned(), d.frames.len(), d.length_m));
        let Some((last, count, length)) = cur else { continue };
        let mut cut = false;
        let mut step = 0.0;
        if let Some((prev, prev_pos)) = &last {
            step = haversine_m(prev_pos.lat, prev_pos.lon, pos.lat, pos.lon);
            if step < cfg.spacing_at(pos.speed) - KEYFRAME_SLACK_M {
                not_keyframes += 1;
                continue;
            }
            let jump = cfg.jump_factor * cfg.spacing_at(pos.speed.max(prev_pos.speed));
            cut = step > jump
                || count >= BUNDLE_FRAMES
                || length + step > BUNDLE_METERS
                || (prev.width, prev.height) != (frame.width, frame.height);
        }
        if cut {
            drafts.push(Draft::default());
            step = 0.0;
        }
        if let Some(d) = drafts.last_mut() {
            d.length_m += step;
            d.frames.push((frame, pos));
        }
    }
    (drafts, not_keyframes)
}

fn write_capture(
    opts: &BuildOptions,
    device_id: &str,
    sequence: u64,
    track: &[GnssSample],
    draft: &Draft,
    sign: impl FnOnce(&[u8]) -> Result<String>,
) -> Result<BuiltCapture> {
    let (first, last) = match (draft.frames.first(), draft.frames.last()) {
        (Some(f), Some(l)) => (f.0.t_ms, l.0.t_ms),
        _ => return Err(IngestError::Build("empty capture".into())),
    };
    // Telemetry from the sample at or before the first frame to the one at or after the last.
    let lo = track.partition_point(|s| s.t_ms <= first).saturating_sub(1);
    let hi = track.partition_point(|s| s.t_ms < last).min(track.len().saturating_sub(1));
    let (width, height) = (draft.frames[0].0.width, draft.frames[0].0.height);
    let manifest = CaptureManifest {
        version: roadhex_schemas::limits::MANIFEST_VERSION,
        device_id: device_id.to_owned(),
        sequence,
        created_at: Utc::now(),
        camera: Camera {
            width,
            height,
            focal_length_px: opts.focal_length_px,
            hfov_deg: if opts.focal_length_px.is_none() { opts.hfov_deg } else { None },
            mount: opts.mount,
            mount_height_m: opts.mount_height_m,
        },
        telemetry: track[lo..=hi].to_vec(),
        imu: Vec::new(),
        frames: draft
            .frames
            .iter()
            .map(|(f, _)| FrameEntry { t_ms: f.t_ms, sha256: f.sha256.clone(), size: f.size })
            .collect(),
    };
    manifest.validate()?;
    let bytes = manifest.to_bytes();
    let signature = sign(&bytes)?;
    let dir = opts.out.join(format!("capture-{sequence:06}"));
    let frames_dir = dir.join("frames");
    std::fs::create_dir_all(&frames_dir).map_err(|e| IngestError::io(&frames_dir, e))?;
    for (f, _) in &draft.frames {
        let dest = frames_dir.join(format!("{}.jpg", f.sha256));
        match &f.source {
            Source::File(path) => std::fs::copy(path, &dest).map(|_| ()),
            Source::Memory(bytes) => std::fs::write(&dest, bytes),
        }
        .map_err(|e| IngestError::io(&dest, e))?;
    }
    let sig_path = dir.join("manifest.sig");
    std::fs::write(&sig_path, &signature).map_err(|e| IngestError::io(&sig_path, e))?;
    // The manifest goes last: a directory with a manifest is a complete capture.
    let m_path = dir.join("manifest.json");
    std::fs::write(&m_path, &bytes).map_err(|e| IngestError::io(&m_path, e))?;
    Ok(BuiltCapture { dir, sequence, frames: draft.frames.len(), length_m: draft.length_m })
}

/// Reads a capture directory written by [`build`]: manifest bytes, signature, parsed manifest.
pub fn read_capture_dir(dir: &Path) -> Result<(Vec<u8>, String, CaptureManifest)> {
    let m_path = dir.join("manifest.json");
    let bytes = std::fs::read(&m_path).map_err(|e| IngestError::io(&m_path, e))?;
    let s_path = dir.join("manifest.sig");
    let sig = std::fs::read_to_string(&s_path).map_err(|e| IngestError::io(&s_path, e))?;
    let manifest = CaptureManifest::parse(&bytes)?;
    Ok((bytes, sig.trim().to_owned(), manifest))
}

/// Where a capture directory keeps a frame.
pub fn frame_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("frames").join(format!("{sha256}.jpg"))
}
