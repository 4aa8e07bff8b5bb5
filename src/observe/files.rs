//! The rotating JSON-lines sink: `predictions-<UTC start>-<n>.jsonl` in a directory, a new
//! file past a size or an age, the oldest deleted beyond a count.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::features::feast::EventTime;

/// Where and when to rotate.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    pub dir: PathBuf,
    pub max_file_bytes: u64,
    pub max_file_age: Duration,
    /// 0: keep every file.
    pub max_files: usize,
}

pub const FILE_PREFIX: &str = "predictions-";
pub const FILE_SUFFIX: &str = ".jsonl";

struct Current {
    file: File,
    bytes: u64,
    opened: Instant,
}

pub struct FilesSink {
    options: FilesOptions,
    current: Option<Current>,
    seq: u64,
}

impl FilesSink {
    pub fn new(options: FilesOptions) -> FilesSink {
        FilesSink { options, current: None, seq: 0 }
    }

    /// Writes whole lines, rotating first when the file is full or old. A failed write
    /// closes the file: the next attempt starts a new one (a half-written line at the end
    /// of the old one is skipped by readers).
    pub fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if self.current.as_ref().is_some_and(|c| self.due(c)) {
            self.current = None;
            self.prune();
        }
        if self.current.is_none() {
            self.current = Some(self.open()?);
        }
        let Some(current) = self.current.as_mut() else { return Ok(()) };
        let written = current.file.write_all(lines);
        if let Err(e) = written {
            self.current = None;
            return Err(e);
        }
        current.bytes += lines.len() as u64;
        Ok(())
    }

    /// Rotates an idle file that has grown old (called between batches).
    pub fn tick(&mut self) {
        if self.current.as_ref().is_some_and(|c| self.due(c)) {
            self.current = None;
            self.prune();
        }
    }

    fn due(&self, c: &Current) -> bool {
        c.bytes >= self.options.max_file_bytes || c.opened.elapsed() >= self.options.max_file_age
    }

    fn open(&mut self) -> std::io::Result<Current> {
        std::fs::create_dir_all(&self.options.dir)?;
        let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let stamp = compact_utc(since.as_secs());
        loop {
            self.seq += 1;
            let name = format!("{FILE_PREFIX}{stamp}-{:06}{FILE_SUFFIX}", self.seq);
            match OpenOptions::new().append(true).create_new(true).open(self.options.dir.join(name)) {
                Ok(file) => return Ok(Current { file, bytes: 0, opened: Instant::now() }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Before a new file is opened: deletes the oldest so that, with it, `max_files` remain
    /// (names sort by time).
    fn prune(&self) {
        if self.options.max_files == 0 {
            return;
        }
        let files = log_files(&self.options.dir).unwrap_or_default();
        let excess = (files.len() + 1).saturating_sub(self.options.max_files);
        for old in &files[..excess] {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::warn!(file = %old.display(), "prediction log: cannot delete an old file: {e}");
            }
        }
    }
}

/// The log files in `dir`, oldest first.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(FILE_SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `20261130T110203Z`: sorts as it reads.
fn compact_utc(seconds: u64) -> String {
    let text = EventTime { seconds: i64::try_from(seconds).unwrap_or(i64::MAX), nanos: 0 }.rfc3339();
    // 2026-11-30T11:02:03.000000Z
    let (date, rest) = text.split_once('T').unwrap_or((&text, ""));
    let hms = rest.get(..8).unwrap_or(rest);
    format!("{}T{}Z", date.replace('-', ""), hms.replace(':', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, max_file_bytes: u64, max_files: usize) -> FilesOptions {
        FilesOptions {
            dir: dir.to_path_buf(),
            max_file_bytes,
            max_file_age: Duration::from_secs(3600),
            max_files,
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sink = FilesSink::new(options(dir.path(), 10, 2));
        for i in 0..6 {
            sink.write(format!("{{\"n\":{i}}}\n").as_bytes()).expect("write");
        }
        let files = log_files(dir.path()).expect("list");
        assert_eq!(files.len(), 2, "{files:?}");
        let text: String = files.iter().map(|f| std::fs::read_to_string(f).expect("read")).collect();
        assert_eq!(text, "{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n");
    }

    #[test]
    fn rotates_by_age() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut o = options(dir.path(), 1 << 20, 0);
        o.max_file_age = Duration::ZERO;
        let mut sink = FilesSink::new(o);
        sink.write(b"a\n").expect("write");
        sink.tick();
        sink.write(b"b\n").expect("write");
        assert_eq!(log_files(dir.path()).expect("list").len(), 2);
    }

    #[test]
    fn names_sort_by_time() {
        assert_eq!(compact_utc(1_796_036_523), "20261130T110203Z");
    }
}
