//! Keeps a replica's snapshot in step with the shared registry directory: file-system
//! events trigger a reconcile at once, and a poll catches what events miss (network file
//! systems, a watcher that could not start).

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
    let watcher = use_events.then(|| start_watcher(&registry, tx)).flatten();
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

fn start_watcher(registry: &Registry, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a wake-up; dropping this one loses nothing.
            let _ = tx.try_send(());
        }
    };
    let root = registry.dir().root().to_path_buf();
    let started = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&root, RecursiveMode::Recursive)?;
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
