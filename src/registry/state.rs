//! `state.toml` of one model: which version each alias serves, and an append-only history
//! of alias moves. Writers hold an exclusive lock on `<model>/.state.lock` for the whole
//! read-modify-write and replace the file atomically (temp file, fsync, rename, fsync of
//! the directory), so readers see the old state or the new one, never a torn file, and a
//! crash at any point leaves a readable registry.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::rollout::{GuardSpec, Rollout, ShadowSpec};

/// The alias that requests without a version are served by.
pub const PRODUCTION: &str = "production";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelState {
    #[serde(default)]
    pub aliases: BTreeMap<String, u64>,
    #[serde(default)]
    pub history: Vec<AliasMove>,
    /// Canaries in progress, by alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollouts: BTreeMap<String, Rollout>,
    /// Shadows in progress, by alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shadows: BTreeMap<String, ShadowSpec>,
    /// Guards watching an alias's canary and shadow, by alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guards: BTreeMap<String, GuardSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Promote,
    Rollback,
    /// A canary started or its weight changed (`from` the alias's version, `to` the canary).
    Canary,
    /// A canary or a shadow was stopped without promoting it; the alias did not move.
    Abort,
    /// A shadow started (`to` the shadow version).
    Shadow,
    /// A guard was set or cleared.
    Guard,
}

impl Action {
    /// The metric label and the word the CLI prints.
    pub fn label(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Canary => "canary",
            Action::Abort => "abort",
            Action::Shadow => "shadow",
            Action::Guard => "guard",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasMove {
    /// RFC 3339 UTC time of the move.
    pub at: String,
    pub alias: String,
    #[serde(default)]
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    pub to: u64,
    /// Who or what made the move (`cli`, `admin-api`, a user name).
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

impl ModelState {
    pub fn read(path: &Path) -> Result<ModelState, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ModelState::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<ModelState, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The version a rollback of `alias` returns to. History is a stack per alias: each
    /// rollback undoes the latest promotion not yet undone, so two rollbacks after two
    /// promotions return to where the alias started.
    pub fn rollback_target(&self, alias: &str) -> Option<u64> {
        let mut undone = 0usize;
        for m in self.history.iter().rev().filter(|m| m.alias == alias) {
            match m.action {
                Action::Rollback => undone += 1,
                Action::Promote if undone > 0 => undone -= 1,
                Action::Promote => return m.from,
                Action::Canary | Action::Abort | Action::Shadow | Action::Guard => {}
            }
        }
        None
    }

    /// Records a rollout step on `alias` (the alias itself does not move).
    pub fn note(&mut self, alias: &str, action: Action, from: Option<u64>, to: u64, by: &str, reason: &str) {
        self.history.push(AliasMove {
            at: rfc3339_now(),
            alias: alias.to_string(),
            action,
            from,
            to,
            by: by.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Moves `alias` to `to`, recording the move.
    pub fn record(&mut self, alias: &str, action: Action, to: u64, by: &str, reason: &str) -> Option<u64> {
        let from = self.aliases.insert(alias.to_string(), to);
        self.note(alias, action, from, to, by, reason);
        from
    }
}

/// An exclusive, cross-process lock on a model's state, held while it lives.
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Blocks until the lock is ours. Works across processes on one host (and on shared
    /// file systems that implement `flock`).
    pub fn acquire(model_dir: &Path) -> Result<StateLock, String> {
        let path = model_dir.join(".state.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.lock().map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(StateLock { _file: file, path })
    }

    /// Replaces `state.toml` atomically. Requires the lock, so it is a method on it.
    pub fn write(&self, state: &ModelState) -> Result<(), String> {
        let dir = self.path.parent().ok_or("state lock has no directory")?;
        let target = dir.join("state.toml");
        let temp = dir.join(format!(".state.toml.{}.tmp", std::process::id()));
        let mut text = String::from(
            "# Which version each alias serves, and every alias move. Written by fti-serve\n\
             # (models promote / rollback, or the admin API); edit with care.\n",
        );
        text.push_str(&toml::to_string(state).map_err(|e| e.to_string())?);
        let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", temp.display());
        let mut file = File::create(&temp).map_err(|e| io("cannot create", e))?;
        file.write_all(text.as_bytes()).map_err(|e| io("cannot write", e))?;
        file.sync_all().map_err(|e| io("cannot sync", e))?;
        drop(file);
        std::fs::rename(&temp, &target).map_err(|e| io("cannot rename", e))?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_000_000), "2025-11-24T16:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rollback_undoes_promotions_like_a_stack() {
        let mut s = ModelState::default();
        s.record("production", Action::Promote, 1, "t", "");
        assert_eq!(s.rollback_target("production"), None);
        s.record("production", Action::Promote, 2, "t", "");
        s.record("canary", Action::Promote, 3, "t", "");
        s.record("production", Action::Promote, 3, "t", "");
        assert_eq!(s.rollback_target("production"), Some(2));
        s.record("production", Action::Rollback, 2, "t", "");
        assert_eq!(s.rollback_target("production"), Some(1));
        s.record("production", Action::Rollback, 1, "t", "");
        assert_eq!(s.rollback_target("production"), None);
        assert_eq!(s.rollback_target("canary"), None);
    }

    #[test]
    fn writes_atomically_and_ignores_leftover_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = StateLock::acquire(dir.path()).expect("lock");
        let mut state = ModelState::default();
        state.record("production", Action::Promote, 7, "test", "first");
        lock.write(&state).expect("write");
        // A crash after writing a temp file but before the rename leaves the old state.
        std::fs::write(dir.path().join(".state.toml.999.tmp"), "aliases = {{{ torn").expect("write");
        let read = ModelState::read(&dir.path().join("state.toml")).expect("readable");
        assert_eq!(read, state);
        assert!(std::fs::read_to_string(dir.path().join("state.toml")).expect("read").starts_with('#'));
    }
}
