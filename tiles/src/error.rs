use thiserror::Error;

pub type Result<T, E = TilesError> = std::result::Result<T, E>;

/// Everything the tiles, imagery and query routes can refuse or fail with.
#[derive(Debug, Error)]
pub enum TilesError {
    #[error("unknown layer {0:?}; layers are coverage, sequences, frames and features")]
    UnknownLayer(String),
    #[error("tile {z}/{x}/{y} does not exist (zoom 0–{max}, x and y below 2^zoom)")]
    BadTile { z: u32, x: u32, y: u32, max: u8 },
    #[error("{0:?} is not an H3 cell index (hex, like 8c2a100d2c8d5ff)")]
    BadCell(String),
    #[error("frame {0} is not published")]
    FrameNotFound(String),
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error("query area is {area_km2:.2} km², more than the {max_km2} km² allowed; split it")]
    AreaTooLarge { area_km2: f64, max_km2: f64 },
    #[error("bad cursor {0:?}; pass the next_cursor of the previous page unchanged")]
    BadCursor(String),
    #[error("web map assets are not installed in {0} (run `make setup`)")]
    AssetsMissing(String),
    #[error(transparent)]
    Lake(#[from] roadhex_lake::LakeError),
    #[error("tile encoding: {0}")]
    Encode(#[from] mvt::Error),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl TilesError {
    /// Machine-readable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownLayer(_) => "unknown_layer",
            Self::BadTile { .. } => "bad_tile",
            Self::BadCell(_) => "bad_cell",
            Self::FrameNotFound(_) => "frame_not_found",
            Self::BadQuery(_) => "bad_query",
            Self::AreaTooLarge { .. } => "area_too_large",
            Self::BadCursor(_) => "bad_cursor",
            Self::AssetsMissing(_) => "assets_missing",
            Self::Lake(e) => e.code(),
            Self::Encode(_) => "tile_encoding_failed",
            Self::Task(_) => "task_failed",
            Self::Io(_) => "io_error",
        }
    }
}
