//! Keeps a replica's snapshot in step with the shared registry directory: file-system
//! events trigger a reconcile at once, and a poll catches what events miss (network file
//! systems, a watcher that could not start).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Registry;

/// Events arrive in bursts (a promotion writes a temp file, renames it, touches a lock):
/// wait this long after the first before reconciling once.
const DEBOUNCE: Duration = Duration::from_millis(50);

pub fn spawn(registry: Arc<Registry>, poll: Duration, use_events: bool) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let root = registry.dir().root().to_path_buf();
    let watcher = use_events.then(|| start_watcher(&root, tx)).flatten();
    tokio::spawn(async move {
        // Moving the watcher in keeps it alive exactly as long as this task.
        let _watcher = watcher;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = rx.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                }
            }
            let registry = Arc::clone(&registry);
            match tokio::task::spawn_blocking(move || registry.reconcile()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("registry reconcile failed: {e}"),
                Err(e) => tracing::error!("registry reconcile task failed: {e}"),
            }
        }
    })
}

/// Whether an event can change what the directory serves. Opening and reading a file is
/// not a change: a reconcile reads the directory, and counting its own reads as changes
/// made every reconcile schedule the next, about 20 a second while nothing changed.
fn is_change(event: &notify::Event) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match event.kind {
        // A file written and closed: its content is final now.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn start_watcher(root: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        // An error is passed on as a change: a reconcile finds out what it was.
        if event.as_ref().map_or(true, is_change) {
            // A full channel already holds a wake-up; dropping this one loses nothing.
            let _ = tx.try_send(());
        }
    };
    let started = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(root, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match started {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(root = %root.display(), "registry file watching unavailable, polling only: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading the directory, as every reconcile does, is not a change; writing a file is.
    /// Real inotify events, which arrive in order: the first one counted as a change must
    /// be the write's, not one of the reads' before it.
    #[test]
    fn reads_are_not_changes_and_writes_are() {
        let dir = tempfile::tempdir().expect("temp dir");
        let read = dir.path().join("state.toml");
        std::fs::write(&read, "x").expect("write");
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && is_change(&event)
            {
                let _ = tx.send(event);
            }
        })
        .expect("inotify");
        watcher.watch(dir.path(), RecursiveMode::Recursive).expect("watch");
        for _ in 0..3 {
            std::fs::read_dir(dir.path()).expect("list").for_each(drop);
            std::fs::read(&read).expect("read");
        }
        let written = dir.path().join("new");
        std::fs::write(&written, "y").expect("write");
        let first = rx.recv_timeout(Duration::from_secs(30)).expect("an event");
        assert_eq!(first.paths, vec![written], "{first:?}");
    }
}
