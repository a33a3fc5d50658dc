//! Arrow schemas of every table in the lake. Each column carries its description in the field
//! metadata (`description`), so `DESCRIBE` and Parquet readers show it too.
//!
//! Every table is partitioned by `date` (UTC day, `YYYY-MM-DD`), a Hive-style partition column that
//! lives in the path, not in the files. Tables with positions carry `lat`/`lon` and a WKB
//! `geometry` column described by GeoParquet metadata.

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::collections::HashMap;
use std::sync::Arc;

/// Name of the Hive-style partition column shared by all tables.
pub const PARTITION_COLUMN: &str = "date";
/// Name of the WKB geometry column in tables that have one.
pub const GEOMETRY_COLUMN: &str = "geometry";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Captures,
    Telemetry,
    Frames,
    Detections,
    Features,
    Coverage,
    Rewards,
    Epochs,
    Redactions,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Captures,
        Table::Telemetry,
        Table::Frames,
        Table::Detections,
        Table::Features,
        Table::Coverage,
        Table::Rewards,
        Table::Epochs,
        Table::Redactions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Captures => "captures",
            Self::Telemetry => "telemetry",
            Self::Frames => "frames",
            Self::Detections => "detections",
            Self::Features => "features",
            Self::Coverage => "coverage",
            Self::Rewards => "rewards",
            Self::Epochs => "epochs",
            Self::Redactions => "redactions",
        }
    }

    /// GeoParquet geometry type of the `geometry` column, if the table has one.
    pub fn geometry_type(self) -> Option<&'static str> {
        match self {
            Self::Captures => Some("LineString"),
            Self::Telemetry | Self::Frames | Self::Features | Self::Coverage => Some("Point"),
            Self::Detections | Self::Rewards | Self::Epochs | Self::Redactions => None,
        }
    }

    /// The schema of the Parquet files (without the partition column).
    pub fn schema(self) -> SchemaRef {
        let fields = match self {
            Self::Captures => captures(),
            Self::Telemetry => telemetry(),
            Self::Frames => frames(),
            Self::Detections => detections(),
            Self::Features => features(),
            Self::Coverage => coverage(),
            Self::Rewards => rewards(),
            Self::Epochs => epochs(),
            Self::Redactions => redactions(),
        };
        let mut meta = HashMap::new();
        meta.insert("roadhex.table".to_owned(), self.name().to_owned());
        Arc::new(Schema::new_with_metadata(fields, meta))
    }
}

/// Every table's columns as Markdown (docs/analysts.md embeds this text; a test keeps them equal).
pub fn markdown() -> String {
    let mut out = String::new();
    for table in Table::ALL {
        let schema = table.schema();
        out.push_str(&format!(
            "### `{}`\n\n| column | type | null | description |\n|---|---|---|---|\n",
            table.name()
        ));
        for f in schema.fields() {
            let doc = f.metadata().get("description").map_or("", String::as_str);
            let null = if f.is_nullable() { "yes" } else { "" };
            out.push_str(&format!("| `{}` | {} | {null} | {doc} |\n", f.name(), f.data_type()));
        }
        out.push_str(&format!(
            "| `{PARTITION_COLUMN}` | Utf8 (partition) | | UTC day `YYYY-MM-DD`; filters on it prune files. |\n\n"
        ));
    }
    out
}

fn col(name: &str, data_type: DataType, nullable: bool, doc: &str) -> Field {
    let mut meta = HashMap::new();
    meta.insert("description".to_owned(), doc.to_owned());
    Field::new(name, data_type, nullable).with_metadata(meta)
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn utf8() -> DataType {
    DataType::Utf8
}

fn position(doc: &str) -> Vec<Field> {
    vec![
        col("lat", DataType::Float64, false, &format!("Latitude of {doc}, WGS84 degrees.")),
        col("lon", DataType::Float64, false, &format!("Longitude of {doc}, WGS84 degrees.")),
    ]
}

fn geometry(doc: &str) -> Field {
    col(GEOMETRY_COLUMN, DataType::Binary, false, &format!("{doc} as WKB (CRS84), see GeoParquet metadata."))
}

fn captures() -> Vec<Field> {
    let mut f = vec![
        col(
            "capture_id",
            utf8(),
            false,
            "Capture id: first 16 bytes of SHA-256 over the signed manifest, hex.",
        ),
        col("device_id", utf8(), false, "Device that signed the manifest."),
        col("contributor_id", utf8(), false, "Contributor the device was registered to at upload."),
        col("sequence", DataType::UInt64, false, "Per-device capture sequence number."),
        col("created_at", ts(), false, "When the device closed the capture (device clock)."),
        col("committed_at", ts(), false, "When the server accepted the commit (server clock)."),
        col("start_time", ts(), false, "Time of the first frame."),
        col("end_time", ts(), false, "Time of the last frame."),
        col("frame_count", DataType::UInt32, false, "Frames listed in the manifest."),
        col("valid_frame_count", DataType::UInt32, false, "Frames that passed the telemetry gates."),
        col("bytes", DataType::UInt64, false, "Total size of the uploaded frames."),
        col("length_m", DataType::Float64, false, "Length of the telemetry track in metres."),
        col("mount", utf8(), false, "Camera mount: front or side."),
        col("camera_width", DataType::UInt32, false, "Image width in pixels."),
        col("camera_height", DataType::UInt32, false, "Image height in pixels."),
        col(
            "focal_length_px",
            DataType::Float64,
            true,
            "Focal length in pixels (given or from the field of view).",
        ),
        col("mount_height_m", DataType::Float64, false, "Camera height above the road in metres."),
        col("dropped_reasons", utf8(), true, "JSON object: gate reason code → dropped frame count."),
    ];
    f.extend(position("the first frame"));
    f.push(geometry("Telemetry track"));
    f
}

fn telemetry() -> Vec<Field> {
    let mut f = vec![
        col("capture_id", utf8(), false, "Capture the sample belongs to."),
        col("device_id", utf8(), false, "Device that recorded it."),
        col("seq", DataType::UInt32, false, "Index of the sample within its capture."),
        col("t", ts(), false, "GNSS time of the sample."),
    ];
    f.extend(position("the GNSS solution"));
    f.extend([
        col("alt", DataType::Float64, false, "Altitude above the ellipsoid in metres."),
        col("speed", DataType::Float64, false, "Ground speed in m/s."),
        col("heading", DataType::Float64, false, "Course over ground, degrees clockwise from north."),
        col("hdop", DataType::Float64, true, "Horizontal dilution of precision, if reported."),
        col("satellites", DataType::UInt8, true, "Satellites used in the solution, if reported."),
        col("fix", utf8(), true, "Fix type (none, 2d or 3d), if reported."),
        col("gate", utf8(), true, "Gate reason code if the sample fails the GNSS gates, else null."),
        geometry("GNSS position"),
    ]);
    f
}

fn frames() -> Vec<Field> {
    let mut f = vec![
        col("frame_id", utf8(), false, "Published frame id."),
        col("capture_id", utf8(), false, "Capture the frame came in."),
        col("frame_index", DataType::UInt32, false, "Index of the frame in its manifest."),
        col("device_id", utf8(), false, "Device that took it."),
        col("contributor_id", utf8(), false, "Contributor credited for it."),
        col("captured_at", ts(), false, "Exposure time."),
        col("published_at", ts(), false, "When the anonymized frame was published."),
    ];
    f.extend(position("the camera"));
    f.extend([
        col("heading", DataType::Float64, false, "Camera heading, degrees clockwise from north."),
        col("speed", DataType::Float64, false, "Ground speed in m/s."),
        col("h3_r12", DataType::UInt64, false, "H3 resolution-12 cell of the camera position."),
        col("h3_r10", DataType::UInt64, false, "Parent cell at resolution 10."),
        col("h3_r8", DataType::UInt64, false, "Parent cell at resolution 8."),
        col("h3_r6", DataType::UInt64, false, "Parent cell at resolution 6."),
        col("mount", utf8(), false, "Camera mount: front or side."),
        col("object_key", utf8(), false, "Object-store key of the published JPEG."),
        col("width", DataType::UInt32, false, "Image width in pixels."),
        col("height", DataType::UInt32, false, "Image height in pixels."),
        col("bytes", DataType::UInt64, false, "Size of the published JPEG."),
        col("quality", utf8(), false, "Quality gate verdict: ok or a reason code."),
        col("anonymizer", utf8(), false, "Detector ensemble and version that anonymized the frame."),
        col("phash", DataType::UInt64, false, "64-bit difference hash of the frame (near-duplicate search)."),
        geometry("Camera position"),
    ]);
    f
}

fn detections() -> Vec<Field> {
    vec![
        col("frame_id", utf8(), false, "Frame the box was found in."),
        col("capture_id", utf8(), false, "Capture of the frame."),
        col("kind", utf8(), false, "face, plate or sign."),
        col("class", utf8(), true, "Sign class (GTSRB name) for signs, else null."),
        col("score", DataType::Float32, false, "Detector confidence in [0, 1]."),
        col("x", DataType::UInt32, false, "Box left edge in pixels."),
        col("y", DataType::UInt32, false, "Box top edge in pixels."),
        col("w", DataType::UInt32, false, "Box width in pixels."),
        col("h", DataType::UInt32, false, "Box height in pixels."),
        col("detector", utf8(), false, "Detector name and version."),
        col("blurred", DataType::Boolean, false, "Whether the region was blurred in the published frame."),
        col("lat", DataType::Float64, true, "Signs: latitude of the sign estimated from this frame alone."),
        col("lon", DataType::Float64, true, "Signs: longitude of the sign estimated from this frame alone."),
        col("feature_id", utf8(), true, "Signs: the map feature this observation was merged into."),
    ]
}

fn features() -> Vec<Field> {
    let mut f = vec![
        col("feature_id", utf8(), false, "Stable feature id."),
        col("class", utf8(), false, "Sign class (GTSRB name or other_sign)."),
    ];
    f.extend(position("the sign"));
    f.extend([
        col("h3_r12", DataType::UInt64, false, "H3 resolution-12 cell of the sign."),
        col("h3_r10", DataType::UInt64, false, "Parent cell at resolution 10."),
        col("h3_r8", DataType::UInt64, false, "Parent cell at resolution 8."),
        col("h3_r6", DataType::UInt64, false, "Parent cell at resolution 6."),
        col("first_seen", ts(), false, "First observation."),
        col("last_seen", ts(), false, "Latest observation."),
        col("observations", DataType::UInt32, false, "Detections merged into this feature."),
        col("contributors", DataType::UInt32, false, "Distinct contributors who observed it."),
        col("confidence", DataType::Float64, false, "Confidence in [0, 1]."),
        col("error_m", DataType::Float64, false, "Estimated position error in metres."),
        geometry("Sign position"),
    ]);
    f
}

fn coverage() -> Vec<Field> {
    let mut f = vec![
        col("h3_r12", DataType::UInt64, false, "H3 resolution-12 cell covered."),
        col("h3_r10", DataType::UInt64, false, "Parent cell at resolution 10."),
        col("h3_r8", DataType::UInt64, false, "Parent cell at resolution 8."),
        col("h3_r6", DataType::UInt64, false, "Parent cell at resolution 6."),
        col("mount", utf8(), false, "Camera mount: front or side."),
        col(
            "frame_id",
            utf8(),
            true,
            "First frame of the capture in this cell (null for a cell only passed between frames).",
        ),
        col("frame_count", DataType::UInt32, false, "Published frames of the capture in this cell."),
        col("capture_id", utf8(), false, "Capture that covered the cell."),
        col("device_id", utf8(), false, "Device that covered it."),
        col("contributor_id", utf8(), false, "Contributor who covered it."),
        col(
            "captured_at",
            ts(),
            false,
            "When the capture first entered the cell (frame time, or interpolated between frames).",
        ),
    ];
    f.extend(position("the cell centre"));
    f.push(geometry("Cell centre"));
    f
}

fn rewards() -> Vec<Field> {
    vec![
        col("epoch_id", utf8(), false, "Epoch the credit belongs to."),
        col("contributor_id", utf8(), false, "Contributor credited."),
        col("device_id", utf8(), false, "Device that earned it."),
        col("capture_id", utf8(), false, "Capture whose first valid frame in the cell earned it."),
        col("h3_r12", DataType::UInt64, false, "Cell credited."),
        col("mount", utf8(), false, "Camera mount: front or side."),
        col(
            "captured_at",
            ts(),
            false,
            "Time of the capture's first frame in the cell (the credited frame).",
        ),
        col(
            "multiplier",
            DataType::Float64,
            false,
            "Freshness multiplier earned, in [0, 1]; 0 when flagged.",
        ),
        col(
            "points",
            DataType::UInt64,
            false,
            "Millionths of a point: round(multiplier x region weight x progress multiplier x 1e6).",
        ),
        col("amount", DataType::UInt64, false, "Tokens in base units."),
        col("flags", utf8(), true, "Fraud flags that zeroed the credit, comma-separated."),
    ]
}

fn epochs() -> Vec<Field> {
    vec![
        col("epoch_id", utf8(), false, "Epoch id."),
        col("starts_at", ts(), false, "Epoch start (inclusive)."),
        col("ends_at", ts(), false, "Epoch end (exclusive)."),
        col("cutoff_at", ts(), false, "Uploads committed after this do not count."),
        col("config_version", utf8(), false, "Version of the rewards configuration used."),
        col("budget", DataType::UInt64, false, "Tokens distributed, in base units."),
        col("total_points", DataType::Float64, false, "Sum of points of all credits (rewards.points / 1e6)."),
        col("merkle_root", utf8(), false, "Merkle root of the ledger, hex."),
        col(
            "closed_at",
            ts(),
            false,
            "When the epoch's inputs closed (its cutoff); no run time is kept, so reruns are byte-identical.",
        ),
    ]
}

fn redactions() -> Vec<Field> {
    vec![
        col("redaction_id", utf8(), false, "Redaction request id."),
        col("frame_id", utf8(), false, "Frame concerned."),
        col("step", utf8(), false, "requested, approved, rejected or applied."),
        col("boxes", utf8(), true, "JSON array of [x, y, w, h] boxes; null means the whole frame."),
        col("reason", utf8(), false, "Reason given."),
        col("actor", utf8(), false, "Who took the step."),
        col("at", ts(), false, "When the step was taken."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_documented_and_geometry_matches() {
        for t in Table::ALL {
            let s = t.schema();
            for f in s.fields() {
                assert!(f.metadata().contains_key("description"), "{}.{}", t.name(), f.name());
            }
            let has_geom = s.field_with_name(GEOMETRY_COLUMN).is_ok();
            assert_eq!(has_geom, t.geometry_type().is_some(), "{}", t.name());
            if has_geom {
                assert!(s.field_with_name("lat").is_ok() && s.field_with_name("lon").is_ok());
            }
        }
    }
}
