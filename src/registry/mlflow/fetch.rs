//! Downloading one model version from MLflow into the local registry cache, as a version
//! directory like any other (`<cache>/<model>/<version>/`). The files are written into a
//! hidden temporary directory and renamed into place whole, so a reader (this replica's
//! reconcile, another process) sees the version complete or not at all. The manifest's
//! checksum is verified when the version loads, as for any registry.

use std::path::{Path, PathBuf};

use super::client::{MlflowClient, MlflowError};
use crate::registry::dir::MLFLOW_SOURCE_FILE;
use crate::registry::state::rfc3339_now;

/// Artifact directories are followed this deep below the version's root.
const MAX_DEPTH: usize = 4;
/// A version has at most this many files.
const MAX_FILES: usize = 256;

/// Where a version lands, and how much it may weigh.
pub struct Fetch<'a> {
    pub client: &'a MlflowClient,
    pub model_dir: &'a Path,
    pub model: &'a str,
    pub version: u64,
    pub max_bytes: u64,
}

impl Fetch<'_> {
    fn target(&self) -> PathBuf {
        self.model_dir.join(self.version.to_string())
    }

    /// Downloads the version unless the cache already holds it. Returns whether it
    /// downloaded.
    pub async fn run(&self) -> Result<bool, MlflowError> {
        if self.target().is_dir() {
            return Ok(false);
        }
        let root = self.client.artifact_path(self.model, self.version).await?;
        let temp = self.model_dir.join(format!(".fetch-{}-{}", self.version, std::process::id()));
        let local = |e: std::io::Error, what: &Path| MlflowError::Refused {
            call: "download",
            message: format!("{}: {e}", what.display()),
        };
        std::fs::create_dir_all(self.model_dir).map_err(|e| local(e, self.model_dir))?;
        let _ = std::fs::remove_dir_all(&temp);
        std::fs::create_dir(&temp).map_err(|e| local(e, &temp))?;
        let result = match self.download_tree(&root, &temp).await {
            Ok(()) => self.write_provenance(&root, &temp),
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(()) => match std::fs::rename(&temp, self.target()) {
                Ok(()) => Ok(true),
                // Another process (the CLI, a replica sharing the cache) got there first.
                Err(_) if self.target().is_dir() => Ok(false),
                Err(e) => Err(local(e, &self.target())),
            },
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&temp);
        if let Ok(true) = result
            && let Ok(d) = std::fs::File::open(self.model_dir)
        {
            let _ = d.sync_all();
        }
        result
    }

    /// Records where the version came from; its presence makes MLflow's name and number
    /// the version's identity when it loads.
    fn write_provenance(&self, root: &str, dest: &Path) -> Result<(), MlflowError> {
        #[derive(serde::Serialize)]
        struct Provenance<'a> {
            tracking_uri: String,
            model: &'a str,
            version: u64,
            artifact_path: &'a str,
            downloaded_at: String,
        }
        let provenance = Provenance {
            tracking_uri: self.client.uri(),
            model: self.model,
            version: self.version,
            artifact_path: root,
            downloaded_at: rfc3339_now(),
        };
        let refused = |message: String| MlflowError::Refused { call: "download", message };
        let body = toml::to_string(&provenance).map_err(|e| refused(e.to_string()))?;
        let text = format!(
            "# Downloaded by fti-serve from an MLflow Model Registry: MLflow's model name and\n\
             # version number are this version's identity.\n{body}"
        );
        let path = dest.join(MLFLOW_SOURCE_FILE);
        std::fs::write(&path, text).map_err(|e| refused(format!("{}: {e}", path.display())))
    }

    /// Lists and downloads every file below `root` into `dest`, within the limits.
    async fn download_tree(&self, root: &str, dest: &Path) -> Result<(), MlflowError> {
        let refused = |message: String| MlflowError::Refused { call: "download", message };
        let mut pending = vec![(String::new(), 0usize)];
        let mut files = 0usize;
        let mut bytes = 0u64;
        while let Some((relative, depth)) = pending.pop() {
            let listed = if relative.is_empty() { root.to_string() } else { format!("{root}/{relative}") };
            for entry in self.client.list(&listed).await? {
                let name = entry_name(&entry.path, &relative)
                    .map_err(|m| refused(format!("version {} of {}: {m}", self.version, self.model)))?;
                let child = if relative.is_empty() { name.clone() } else { format!("{relative}/{name}") };
                if entry.is_dir {
                    if depth + 1 > MAX_DEPTH {
                        return Err(refused(format!("{child}: directories nest deeper than {MAX_DEPTH}")));
                    }
                    let dir = dest.join(&child);
                    std::fs::create_dir(&dir).map_err(|e| refused(format!("{}: {e}", dir.display())))?;
                    pending.push((child, depth + 1));
                    continue;
                }
                files += 1;
                if files > MAX_FILES {
                    return Err(refused(format!("more than {MAX_FILES} files")));
                }
                let left = self.max_bytes - bytes;
                if let Some(size) = entry.file_size
                    && size > left
                {
                    return Err(refused(format!(
                        "version {} of {} is larger than registry.mlflow.max_version_bytes ({})",
                        self.version, self.model, self.max_bytes
                    )));
                }
                let written =
                    self.client.download(&format!("{root}/{child}"), &dest.join(&child), left).await?;
                if let Some(size) = entry.file_size
                    && size != written
                {
                    return Err(refused(format!("{child}: MLflow lists {size} bytes, {written} arrived")));
                }
                bytes += written;
            }
        }
        if files == 0 {
            return Err(refused(format!(
                "version {} of {} has no artifacts at {root}",
                self.version, self.model
            )));
        }
        Ok(())
    }
}

/// The file name of a listed entry. MLflow lists paths relative to the artifact root
/// (`model.onnx`, or `sub/file` inside `sub`); only the last segment is used, and it must
/// be a plain name.
fn entry_name(listed: &str, parent: &str) -> Result<String, String> {
    let name = listed.rsplit('/').next().unwrap_or(listed);
    let within = listed.strip_suffix(name).map(|p| p.trim_end_matches('/'));
    let parent_ok = matches!(within, Some(p) if p.is_empty() || parent.is_empty() || p.ends_with(parent));
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name.len() <= 255
        && !name.contains(['\\', '\0']);
    if plain && parent_ok {
        Ok(name.to_string())
    } else {
        Err(format!("artifact {listed:?} is not a plain file name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_plain() {
        assert_eq!(entry_name("model.onnx", ""), Ok("model.onnx".to_string()));
        assert_eq!(entry_name("extra/vocab.txt", "extra"), Ok("vocab.txt".to_string()));
        for bad in ["..", ".hidden", "", "a\\b", "x/.."] {
            assert!(entry_name(bad, "").is_err(), "{bad:?}");
        }
    }
}
