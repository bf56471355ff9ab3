//! Atomic file writes: an interrupted run never leaves a half-written result.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and synced,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |context: String| move |source| Error::Io { context, source };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("out", format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file =
        std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .map_err(io(format!("writing {}", tmp.display())))?;
    file.sync_all()
        .map_err(io(format!("syncing {}", tmp.display())))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(format!("renaming onto {}", path.display())))
}
