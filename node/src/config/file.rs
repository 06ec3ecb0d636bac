//! Reading and writing `pods.toml`: a file that does not parse or validate changes nothing,
//! and a write replaces the file whole (written beside it, synced, renamed over it).

use std::fs;
use std::io::Write;
use std::path::Path;

use super::Settings;
use crate::error::NodeError;

/// The settings file's name in a data dir.
pub const CONFIG_FILE: &str = "pods.toml";

impl Settings {
    /// Reads and validates `DIR/pods.toml`; every problem is reported with its place.
    pub fn load(dir: &Path) -> Result<Settings, NodeError> {
        let file = dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&file).map_err(|e| NodeError::Settings {
            file: file.clone(),
            problems: vec![match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "missing: create the node with `pods init --data-dir DIR --name ORG`".to_owned()
                }
                _ => e.to_string(),
            }],
        })?;
        let settings: Settings = toml::from_str(&text).map_err(|e| NodeError::Settings {
            file: file.clone(),
            problems: vec![e.to_string().trim_end().to_owned()],
        })?;
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(NodeError::Settings {
                file,
                problems: problems.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(settings)
    }

    /// Validates and writes the settings to `DIR/pods.toml`, replacing the file atomically.
    pub fn save(&self, dir: &Path) -> Result<(), NodeError> {
        let file = dir.join(CONFIG_FILE);
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(NodeError::Settings {
                file,
                problems: problems.iter().map(ToString::to_string).collect(),
            });
        }
        let text = toml::to_string_pretty(self).map_err(|e| NodeError::Settings {
            file: file.clone(),
            problems: vec![e.to_string()],
        })?;
        write_atomically(&file, text.as_bytes(), 0o644)
    }
}

/// Writes `bytes` to `file` whole or not at all: a temporary file beside it, synced, renamed
/// over it, and the directory synced.
pub(crate) fn write_atomically(file: &Path, bytes: &[u8], mode: u32) -> Result<(), NodeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = file.parent().unwrap_or(Path::new("."));
    let io = |e: std::io::Error| NodeError::DataDir {
        path: file.to_path_buf(),
        reason: format!("cannot write: {e}"),
    };
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, file).map_err(io)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
