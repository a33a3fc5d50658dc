//! Device key files (JSON, mode 0600, written atomically).

use crate::error::{IngestError, Result};
use roadhex_schemas::signing::DeviceKeyFile;
use std::path::Path;

pub fn load(path: &Path) -> Result<DeviceKeyFile> {
    let bytes = std::fs::read(path).map_err(|e| IngestError::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| IngestError::Build(format!("{}: not a key file: {e}", path.display())))
}

/// Writes the key file via a temporary file and rename, so a crash never leaves half a key.
pub fn save(path: &Path, key: &DeviceKeyFile) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(key).map_err(|e| IngestError::Build(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(|e| IngestError::io(&tmp, e))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| IngestError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| IngestError::io(path, e))
}

/// Creates a new key file; refuses to overwrite an existing one (it may hold a registered key).
pub fn generate(path: &Path) -> Result<DeviceKeyFile> {
    if path.exists() {
        return Err(IngestError::Build(format!(
            "{} exists; refusing to overwrite a device key",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    }
    let key = DeviceKeyFile::generate();
    save(path, &key)?;
    Ok(key)
}
