//! A cheap structural check of JPEG bytes: SOI, a frame header with sane dimensions, and EOI.
//! It never decodes pixels, so a decompression bomb is refused before anything allocates.

use crate::limits::{MAX_IMAGE_SIDE, MIN_IMAGE_SIDE};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JpegError {
    #[error("not a JPEG: missing the SOI marker")]
    NoSoi,
    #[error("truncated JPEG: missing the EOI marker")]
    NoEoi,
    #[error("JPEG has no frame header (SOF) before its image data")]
    NoFrameHeader,
    #[error("JPEG segment structure is broken at byte {0}")]
    Corrupt(usize),
    #[error("JPEG is {width}x{height}; each side must be {MIN_IMAGE_SIDE}..={MAX_IMAGE_SIDE} pixels")]
    AbsurdDimensions { width: u32, height: u32 },
}

impl JpegError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSoi | Self::NoEoi | Self::NoFrameHeader | Self::Corrupt(_) => "frame_not_jpeg",
            Self::AbsurdDimensions { .. } => "frame_dimensions_invalid",
        }
    }
}

/// Image size from a JPEG's frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub width: u32,
    pub height: u32,
}

/// Checks the marker structure up to the first scan and reads the dimensions.
pub fn inspect(bytes: &[u8]) -> Result<JpegInfo, JpegError> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(JpegError::NoSoi);
    }
    // Some encoders pad after EOI; accept trailing zero bytes only.
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 4 || bytes[end - 2] != 0xFF || bytes[end - 1] != 0xD9 {
        return Err(JpegError::NoEoi);
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return Err(JpegError::Corrupt(i));
        }
        let marker = bytes[i + 1];
        match marker {
            // Fill bytes.
            0xFF => {
                i += 1;
                continue;
            }
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            // Start of scan or end of image before any frame header.
            0xDA | 0xD9 => return Err(JpegError::NoFrameHeader),
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if len < 2 || i + 2 + len > bytes.len() {
            return Err(JpegError::Corrupt(i));
        }
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            if len < 7 {
                return Err(JpegError::Corrupt(i));
            }
            let height = u32::from(u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]));
            let width = u32::from(u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]));
            let side = MIN_IMAGE_SIDE..=MAX_IMAGE_SIDE;
            if !side.contains(&width) || !side.contains(&height) {
                return Err(JpegError::AbsurdDimensions { width, height });
            }
            return Ok(JpegInfo { width, height });
        }
        i += 2 + len;
    }
    Err(JpegError::NoFrameHeader)
}

/// Markers of metadata segments before the first scan: APP1..APP15 (EXIF, XMP, ICC, maker
/// notes…) and COM. APP0 (JFIF) carries only the pixel aspect and is not metadata.
pub fn metadata_markers(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        match marker {
            0xFF => {
                i += 1;
                continue;
            }
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0xDA | 0xD9 => break,
            0xE1..=0xEF | 0xFE => out.push(marker),
            _ => {}
        }
        i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_metadata_segments() {
        let mut v = jpeg(64, 64);
        assert!(metadata_markers(&v).is_empty(), "JFIF alone is not metadata");
        let exif = [0xFF, 0xE1, 0x00, 0x06, b'E', b'x', b'i', b'f'];
        v.splice(2..2, exif);
        assert_eq!(metadata_markers(&v), vec![0xE1]);
    }

    fn jpeg(width: u16, height: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, b'J', b'F'];
        v.extend([0xFF, 0xC0, 0x00, 0x0B, 8]);
        v.extend(height.to_be_bytes());
        v.extend(width.to_be_bytes());
        v.extend([1, 1, 0x11, 0]);
        v.extend([0xFF, 0xDA, 0x00, 0x02, 1, 2, 3, 0xFF, 0xD9]);
        v
    }

    #[test]
    fn reads_dimensions_and_refuses_broken_files() {
        assert_eq!(inspect(&jpeg(1280, 720)), Ok(JpegInfo { width: 1280, height: 720 }));
        assert_eq!(inspect(&jpeg(65_000, 65_000)).unwrap_err().code(), "frame_dimensions_invalid");
        assert_eq!(inspect(b"GIF89a....").unwrap_err(), JpegError::NoSoi);
        let full = jpeg(640, 480);
        assert_eq!(inspect(&full[..full.len() - 3]).unwrap_err(), JpegError::NoEoi);
        let mut padded = full.clone();
        padded.extend([0, 0]);
        assert!(inspect(&padded).is_ok());
    }
}
