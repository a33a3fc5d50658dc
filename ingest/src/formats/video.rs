//! Keyframes from dashcam video: decodes a video file sequentially with OpenCV (FFmpeg backend) and
//! keeps one JPEG every few metres of travel along a GNSS track, like the firmware's motion model
//! (shared/docs/hivemapper-reference.md §1.2).

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};
use roadhex_schemas::GnssSample;
use roadhex_schemas::gates::{self, GateConfig};
use roadhex_schemas::geo::haversine_m;
use thiserror::Error;

/// Lowest JPEG quality accepted for keyframes.
pub const MIN_JPEG_QUALITY: i32 = 85;

/// The firmware keeps a frame once it is `spacing - 1 m` from the last one (`allowed_gap`).
const SPACING_SLACK_M: f64 = 1.0;

/// Failed grabs in a row that end the stream (see `Video::next_frame`).
const GRAB_ATTEMPTS: usize = 8;

/// One kept frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledFrame {
    /// Unix time in milliseconds (UTC).
    pub t_ms: i64,
    /// Baseline JPEG, no EXIF/XMP/comment segments.
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// What the container says about the video stream, checked by decoding its first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Frame count from the container; 0 when it does not say.
    pub frames: u64,
    pub fps: f64,
    /// Size of the decoded (auto-rotated) frames.
    pub width: u32,
    pub height: u32,
    /// `frames / fps`; 0 when either is unknown.
    pub duration_ms: i64,
}

#[derive(Debug, Error)]
pub enum VideoError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("this OpenCV build has no FFmpeg video backend; install OpenCV with videoio/FFmpeg support")]
    BackendMissing,
    #[error(
        "cannot open {path} as a video: not a video, an unsupported codec, or an MP4 without its index \
         (e.g. a recording cut off by power loss)"
    )]
    OpenFailed { path: PathBuf },
    #[error("{path} has no decodable video frames")]
    NoFrames { path: PathBuf },
    #[error(
        "{path} ends after {decoded} of {expected} frames: the file is cut short or corrupt; \
         copy it from the camera again"
    )]
    Truncated { path: PathBuf, decoded: u64, expected: u64 },
    #[error("{path} reports neither a frame rate nor frame timestamps")]
    NoTiming { path: PathBuf },
    #[error("decoding {path} failed: {source}")]
    DecodeFailed { path: PathBuf, source: opencv::Error },
    #[error("JPEG quality {0} is outside {MIN_JPEG_QUALITY}..=100")]
    QualityOutOfRange(i32),
    #[error("JPEG encoding failed: {0}")]
    EncodeFailed(String),
    #[error("the GNSS track is empty")]
    TrackEmpty,
    #[error("the GNSS track is not sorted by time")]
    TrackUnsorted,
    #[error(
        "the video ({video_start_ms}..{video_end_ms} ms) does not overlap the GNSS track \
         ({track_start_ms}..{track_end_ms} ms, unix UTC); check the video start time and the camera clock"
    )]
    NoOverlap { video_start_ms: i64, video_end_ms: i64, track_start_ms: i64, track_end_ms: i64 },
}

impl VideoError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Read { .. } => "video_read_failed",
            Self::BackendMissing => "video_backend_missing",
            Self::OpenFailed { .. } => "video_open_failed",
            Self::NoFrames { .. } => "video_no_frames",
            Self::Truncated { .. } => "video_truncated",
            Self::NoTiming { .. } => "video_no_timing",
            Self::DecodeFailed { .. } => "video_decode_failed",
            Self::QualityOutOfRange(_) => "jpeg_quality_invalid",
            Self::EncodeFailed(_) => "jpeg_encode_failed",
            Self::TrackEmpty => "track_empty",
            Self::TrackUnsorted => "track_unsorted",
            Self::NoOverlap { .. } => "video_track_no_overlap",
        }
    }
}

/// Reads the stream's properties and decodes the first frame.
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    let mut video = Video::open(path)?;
    let mut frame = Mat::default();
    if !video.next_frame()? || !video.retrieve(&mut frame)? {
        return Err(VideoError::NoFrames { path: path.to_path_buf() });
    }
    let frames = video.declared_frames;
    let duration_ms =
        if frames > 0 && video.fps > 0.0 { (frames as f64 * 1000.0 / video.fps).round() as i64 } else { 0 };
    Ok(VideoInfo {
        frames,
        fps: video.fps,
        width: frame.cols().max(0) as u32,
        height: frame.rows().max(0) as u32,
        duration_ms,
    })
}

/// `start_ms` = UTC time of the video's first frame. Keeps a frame when the vehicle has travelled at least
/// `spacing_m` (use cfg.spacing_at(speed): 8 m, 12 m when fast, minus 1 m slack like the firmware) since the
/// last kept frame, judged on the track position interpolated at the frame's time; frames outside the track's
/// time span are skipped.
pub fn sample(
    path: &Path,
    track: &[GnssSample],
    start_ms: i64,
    cfg: &GateConfig,
    jpeg_quality: i32,
) -> Result<Vec<SampledFrame>, VideoError> {
    if !(MIN_JPEG_QUALITY..=100).contains(&jpeg_quality) {
        return Err(VideoError::QualityOutOfRange(jpeg_quality));
    }
    let (Some(first), Some(last)) = (track.first(), track.last()) else {
        return Err(VideoError::TrackEmpty);
    };
    if track.windows(2).any(|w| w[1].t_ms < w[0].t_ms) {
        return Err(VideoError::TrackUnsorted);
    }
    let (track_start_ms, track_end_ms) = (first.t_ms, last.t_ms);

    let mut video = Video::open(path)?;
    let mut frame = Mat::default();
    let mut kept: Vec<SampledFrame> = Vec::new();
    let mut last_kept: Option<(f64, f64)> = None;
    let mut last_t_ms = start_ms;
    let mut past_track_end = false;
    while video.next_frame()? {
        let t_ms = start_ms + video.frame_offset_ms()?;
        last_t_ms = t_ms;
        if t_ms > track_end_ms {
            // Frame times only grow: nothing further can be on the track.
            past_track_end = true;
            break;
        }
        let Some((pos, _, _)) = gates::position_at(track, t_ms) else { continue };
        if let Some((lat, lon)) = last_kept {
            // Written so that a NaN position (bad track) skips the frame instead of keeping it.
            let far_enough =
                haversine_m(lat, lon, pos.lat, pos.lon) >= cfg.spacing_at(pos.speed) - SPACING_SLACK_M;
            if !far_enough {
                continue;
            }
        }
        if !video.retrieve(&mut frame)? {
            return Err(VideoError::DecodeFailed {
                path: path.to_path_buf(),
                source: opencv::Error::new(opencv::core::StsError, "decoder returned an empty frame"),
            });
        }
        kept.push(SampledFrame {
            t_ms,
            jpeg: encode_jpeg(&frame, jpeg_quality)?,
            width: frame.cols().max(0) as u32,
            height: frame.rows().max(0) as u32,
        });
        last_kept = Some((pos.lat, pos.lon));
    }

    if video.decoded == 0 {
        return Err(VideoError::NoFrames { path: path.to_path_buf() });
    }
    // The decoder stops quietly at a cut in the data; the container's frame count gives it away. A
    // small tolerance covers counts that FFmpeg estimates from the duration.
    let expected = video.declared_frames;
    if !past_track_end && video.decoded + (expected / 50).max(2) < expected {
        return Err(VideoError::Truncated { path: path.to_path_buf(), decoded: video.decoded, expected });
    }
    if kept.is_empty() && (last_t_ms < track_start_ms || start_ms > track_end_ms) {
        return Err(VideoError::NoOverlap {
            video_start_ms: start_ms,
            video_end_ms: last_t_ms,
            track_start_ms,
            track_end_ms,
        });
    }
    Ok(kept)
}

/// Encodes a BGR frame; OpenCV's JPEG writer adds only the JFIF header, no EXIF.
fn encode_jpeg(frame: &Mat, quality: i32) -> Result<Vec<u8>, VideoError> {
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
    let mut buf = Vector::<u8>::new();
    match imgcodecs::imencode(".jpg", frame, &mut buf, &params) {
        Ok(true) if !buf.is_empty() => Ok(buf.to_vec()),
        Ok(_) => Err(VideoError::EncodeFailed("the encoder produced no data".into())),
        Err(e) => Err(VideoError::EncodeFailed(e.to_string())),
    }
}

/// A sequentially decoded video; frames are grabbed (decoded) one by one and converted to BGR only
/// when retrieved, so skipped frames cost no colour conversion.
struct Video {
    cap: videoio::VideoCapture,
    path: PathBuf,
    fps: f64,
    declared_frames: u64,
    /// Frames grabbed so far.
    decoded: u64,
}

impl Video {
    fn open(path: &Path) -> Result<Self, VideoError> {
        std::fs::metadata(path).map_err(|source| VideoError::Read { path: path.to_path_buf(), source })?;
        // FFmpeg only: other backends time frames differently, and the image-sequence backend would
        // take a single JPEG for a one-frame video.
        if !videoio::has_backend(videoio::VideoCaptureAPIs::CAP_FFMPEG).unwrap_or(false) {
            return Err(VideoError::BackendMissing);
        }
        let open_failed = || VideoError::OpenFailed { path: path.to_path_buf() };
        let cap = videoio::VideoCapture::from_file(path, videoio::CAP_FFMPEG).map_err(|_| open_failed())?;
        if !cap.is_opened().unwrap_or(false) {
            return Err(open_failed());
        }
        let prop = |id| cap.get(id).ok().filter(|v: &f64| v.is_finite() && *v > 0.0);
        let fps = prop(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let declared_frames = prop(videoio::CAP_PROP_FRAME_COUNT).map_or(0, |n| n.round() as u64);
        Ok(Self { cap, path: path.to_path_buf(), fps, declared_frames, decoded: 0 })
    }

    /// Decodes the next frame; `false` at the end of the stream.
    fn next_frame(&mut self) -> Result<bool, VideoError> {
        // OpenCV's FFmpeg reader gives up a grab after 512 packets of other streams and returns
        // `false` in mid-file. GoPro MP4s hit this: a metadata track of ~800 zero-duration samples is
        // demuxed in one burst about a second in. The next grab carries on; at the real end of the
        // stream every grab fails at once.
        for _ in 0..GRAB_ATTEMPTS {
            if self.cap.grab().map_err(|e| self.decode_failed(e))? {
                self.decoded += 1;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Converts the last grabbed frame to BGR; `false` if the decoder has none.
    fn retrieve(&mut self, frame: &mut Mat) -> Result<bool, VideoError> {
        let ok = self.cap.retrieve(frame, 0).map_err(|e| self.decode_failed(e))?;
        Ok(ok && !frame.empty())
    }

    /// Time of the last grabbed frame since the first, from its timestamp, else from index / fps.
    fn frame_offset_ms(&self) -> Result<i64, VideoError> {
        let index = self.decoded.saturating_sub(1);
        // OpenCV reports 0 when a frame has no timestamp, which is only right for the first frame.
        let pos = self
            .cap
            .get(videoio::CAP_PROP_POS_MSEC)
            .ok()
            .filter(|p| p.is_finite() && (*p > 0.0 || (index == 0 && *p == 0.0)));
        match pos {
            Some(p) => Ok(p.round() as i64),
            None if self.fps > 0.0 => Ok((index as f64 * 1000.0 / self.fps).round() as i64),
            None => Err(VideoError::NoTiming { path: self.path.clone() }),
        }
    }

    fn decode_failed(&self, source: opencv::Error) -> VideoError {
        VideoError::DecodeFailed { path: self.path.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roadhex_schemas::geo::destination;

    fn udacity() -> std::path::PathBuf {
        roadhex_schemas::testdata::shared_data().join("dashcam_udacity/vehicle_detection/test_video.mp4")
    }
    fn gopro() -> std::path::PathBuf {
        roadhex_schemas::testdata::shared_data().join("gpmf_gopro/gpmf-parser/max-heromode.mp4")
    }
    const T0: i64 = 1_700_000_000_000;

    /// 10 Hz samples heading east at `speed` m/s from `t0` for `secs` seconds.
    fn straight_track(t0: i64, secs: f64, speed: f64) -> Vec<GnssSample> {
        let n = (secs * 10.0).ceil() as i64 + 1;
        (0..n)
            .map(|i| {
                let (lat, lon) = destination(45.0, 13.0, 90.0, speed * i as f64 / 10.0);
                GnssSample {
                    t_ms: t0 + i * 100,
                    lat,
                    lon,
                    alt: 10.0,
                    speed,
                    heading: 90.0,
                    hdop: Some(1.0),
                    satellites: Some(10),
                    fix: None,
                }
            })
            .collect()
    }

    /// Marker bytes of the segments before the scan data.
    fn jpeg_segments(jpeg: &[u8]) -> Vec<u8> {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "no SOI");
        let mut markers = Vec::new();
        let mut i = 2;
        while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
            let marker = jpeg[i + 1];
            markers.push(marker);
            if marker == 0xDA {
                break;
            }
            i += 2 + u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        }
        markers
    }

    fn check_frames(frames: &[SampledFrame], width: u32, height: u32) {
        for f in frames {
            assert_eq!((f.width, f.height), (width, height));
            let markers = jpeg_segments(&f.jpeg);
            assert_eq!(markers.last(), Some(&0xDA), "no scan: {markers:x?}");
            // Only JFIF (APP0) is allowed: no EXIF/XMP (APP1..APP15) and no comment.
            assert!(markers.iter().all(|&m| m != 0xFE && !(0xE1..=0xEF).contains(&m)), "{markers:x?}");
            let decoded = imgcodecs::imdecode(&Vector::<u8>::from_slice(&f.jpeg), imgcodecs::IMREAD_COLOR)
                .expect("imdecode");
            assert_eq!((decoded.cols() as u32, decoded.rows() as u32), (width, height));
        }
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("roadhex-video-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    #[test]
    fn probes_udacity_clip() {
        let info = probe(&udacity()).expect("probe");
        assert_eq!((info.width, info.height), (1280, 720));
        assert_eq!(info.frames, 38);
        assert!(info.fps > 20.0 && info.fps < 31.0, "{info:?}");
        assert!((info.duration_ms - (38.0 * 1000.0 / info.fps) as i64).abs() <= 1, "{info:?}");
    }

    #[test]
    fn samples_udacity_clip_every_7_to_8_metres() {
        let info = probe(&udacity()).expect("probe");
        let speed = 15.0;
        let track = straight_track(T0, info.duration_ms as f64 / 1000.0 + 1.0, speed);
        let frames = sample(&udacity(), &track, T0, &GateConfig::default(), 90).expect("sample");
        // 15 m/s at ~25 fps is 0.6 m per frame: a frame every 12 frames (7.2 m) over 38 frames.
        let step = ((GateConfig::default().spacing_m - 1.0) / (speed / info.fps)).ceil() as usize;
        let expected = (info.frames as usize - 1) / step + 1;
        assert_eq!(
            frames.len(),
            expected,
            "step {step}: {:?}",
            frames.iter().map(|f| f.t_ms).collect::<Vec<_>>()
        );
        assert_eq!(frames[0].t_ms, T0);
        for w in frames.windows(2) {
            let metres = (w[1].t_ms - w[0].t_ms) as f64 / 1000.0 * speed;
            assert!((7.0..=7.0 + 2.0 * speed / info.fps).contains(&metres), "{metres} m between kept frames");
        }
        check_frames(&frames, 1280, 720);
    }

    #[test]
    fn fast_track_uses_the_wider_spacing_and_skips_frames_off_the_track() {
        let info = probe(&udacity()).expect("probe");
        // The track starts 0.5 s into the video: earlier frames have no position.
        let track = straight_track(T0 + 500, 2.0, 30.0);
        let frames = sample(&udacity(), &track, T0, &GateConfig::default(), 85).expect("sample");
        assert!(frames.len() >= 2, "{} frames", frames.len());
        assert!(frames[0].t_ms >= T0 + 500 && frames[0].t_ms < T0 + 500 + (1000.0 / info.fps) as i64 + 1);
        for w in frames.windows(2) {
            let metres = (w[1].t_ms - w[0].t_ms) as f64 / 1000.0 * 30.0;
            assert!(
                (11.0..=11.0 + 2.0 * 30.0 / info.fps).contains(&metres),
                "{metres} m between kept frames"
            );
        }
    }

    #[test]
    fn parked_vehicle_keeps_one_frame() {
        let track = straight_track(T0, 3.0, 0.0);
        let frames = sample(&udacity(), &track, T0, &GateConfig::default(), 95).expect("sample");
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn samples_gopro_max_heromode() {
        let info = probe(&gopro()).expect("probe");
        assert!(info.width > 0 && info.height > 0 && info.fps > 0.0 && info.duration_ms > 10_000, "{info:?}");
        let track = straight_track(T0, info.duration_ms as f64 / 1000.0 + 1.0, 10.0);
        let frames = sample(&gopro(), &track, T0, &GateConfig::default(), 90).expect("sample");
        // 10 m/s over ~10.5 s with a 7 m threshold.
        let expected = info.duration_ms as f64 / 1000.0 * 10.0 / 7.0;
        assert!(
            (frames.len() as f64 - expected).abs() <= 2.0,
            "{} frames, expected ~{expected:.1}",
            frames.len()
        );
        // All of the clip is decoded, past OpenCV's early `false` about a second in.
        assert!(frames.last().is_some_and(|f| f.t_ms > T0 + info.duration_ms - 1000), "{frames:?}");
        check_frames(&frames, info.width, info.height);
    }

    #[test]
    fn bad_files_and_arguments_give_codes() {
        let code = |r: Result<Vec<SampledFrame>, VideoError>| r.err().map(|e| e.code());
        let track = straight_track(T0, 3.0, 15.0);
        let cfg = GateConfig::default();

        let junk = temp_file("junk.mp4", &[0x5Au8; 50_000]);
        assert_eq!(probe(&junk).err().map(|e| e.code()), Some("video_open_failed"));
        assert_eq!(code(sample(&junk, &track, T0, &cfg, 90)), Some("video_open_failed"));
        let empty = temp_file("empty.mp4", b"");
        assert_eq!(code(sample(&empty, &track, T0, &cfg, 90)), Some("video_open_failed"));

        // Index (moov) first, data cut: frames decode until the cut.
        let bytes = std::fs::read(udacity()).expect("read clip");
        let cut = temp_file("cut.mp4", &bytes[..bytes.len() / 2]);
        assert_eq!(code(sample(&cut, &track, T0, &cfg, 90)), Some("video_truncated"));
        // Index last (GoPro): the cut loses it.
        let bytes = std::fs::read(gopro()).expect("read clip");
        let cut_gopro = temp_file("cut-gopro.mp4", &bytes[..bytes.len() / 2]);
        assert_eq!(probe(&cut_gopro).err().map(|e| e.code()), Some("video_open_failed"));

        let missing = Path::new("/nonexistent/roadhex.mp4");
        assert_eq!(code(sample(missing, &track, T0, &cfg, 90)), Some("video_read_failed"));
        let clip = &udacity();
        assert_eq!(code(sample(clip, &track, T0, &cfg, 80)), Some("jpeg_quality_invalid"));
        assert_eq!(code(sample(clip, &[], T0, &cfg, 90)), Some("track_empty"));
        let mut unsorted = track.clone();
        unsorted.swap(0, 1);
        assert_eq!(code(sample(clip, &unsorted, T0, &cfg, 90)), Some("track_unsorted"));
        // Start time an hour off (a time-zone mistake).
        assert_eq!(code(sample(clip, &track, T0 + 3_600_000, &cfg, 90)), Some("video_track_no_overlap"));
        assert_eq!(code(sample(clip, &track, T0 - 3_600_000, &cfg, 90)), Some("video_track_no_overlap"));

        for p in [junk, empty, cut, cut_gopro] {
            let _ = std::fs::remove_file(p);
        }
    }
}
