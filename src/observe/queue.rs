//! The queue between requests and the prediction log's writer. A request never waits on
//! the writer. The writer runs at the lowest CPU priority, and std's bounded channel makes
//! a sender spin and yield until a receiver part way through taking an item has finished:
//! on a saturated core the scheduler can leave the writer off the CPU for a second, and
//! the request, and with it the core's every other request, waited that long
//! (BENCHMARKS.md, "Stalls on a saturated core"). Here a request holds a lock for one
//! push, and the writer holds it only to swap the queue's vector for an empty one. A
//! request that finds it held sleeps on it in the kernel, which hands the core to the
//! writer at once, instead of spinning where the writer cannot run. A full queue refuses
//! the item, which the caller drops and counts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

struct Shared<T> {
    items: Mutex<Vec<T>>,
    capacity: usize,
    /// Taken and not yet done with by the receiver: they count against `capacity`.
    held: AtomicUsize,
    /// The sender is gone: nothing more will come.
    closed: AtomicBool,
}

/// A bounded queue of `capacity` items (at least 1), counting those the receiver has
/// taken and not yet said it is done with.
pub fn queue<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(Vec::with_capacity(capacity.clamp(1, 4096))),
        capacity: capacity.max(1),
        held: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
    });
    (Sender(Arc::clone(&shared)), Receiver { shared, spare: Vec::new() })
}

pub struct Sender<T>(Arc<Shared<T>>);

impl<T> Sender<T> {
    /// Queues `item`, or gives it back when the queue is full.
    pub fn offer(&self, item: T) -> Result<(), T> {
        let mut items = self.0.items.lock().unwrap_or_else(PoisonError::into_inner);
        if items.len() + self.0.held.load(Ordering::Relaxed) >= self.0.capacity {
            return Err(item);
        }
        items.push(item);
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Swapped with the queue's vector: empty between takes, its capacity kept.
    spare: Vec<T>,
}

impl<T> Receiver<T> {
    /// Moves every queued item to the end of `into`, which then holds everything taken
    /// and not yet done with; `true` once the sender is gone (and so nothing more will
    /// come).
    pub fn take(&mut self, into: &mut VecDeque<T>) -> bool {
        // Read first: everything sent before the sender went is then in the queue.
        let closed = self.shared.closed.load(Ordering::Acquire);
        {
            let mut items = self.shared.items.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *items, &mut self.spare);
            self.shared.held.store(into.len() + self.spare.len(), Ordering::Relaxed);
        }
        into.extend(self.spare.drain(..));
        closed
    }

    /// The receiver now holds `count` taken items (the rest are done with).
    pub fn holding(&self, count: usize) {
        self.shared.held.store(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_order_and_closed_once_the_sender_is_gone() {
        let (tx, mut rx) = queue(2);
        assert!(tx.offer(1).is_ok() && tx.offer(2).is_ok());
        assert_eq!(tx.offer(3), Err(3));
        let mut got = VecDeque::new();
        assert!(!rx.take(&mut got));
        assert_eq!(got, [1, 2]);
        // What the receiver holds counts until it is done with it.
        assert_eq!(tx.offer(4), Err(4));
        got.pop_front();
        rx.holding(got.len());
        assert!(tx.offer(4).is_ok());
        assert_eq!(tx.offer(5), Err(5));
        got.clear();
        rx.holding(0);
        assert!(tx.offer(5).is_ok());
        drop(tx);
        assert!(rx.take(&mut got));
        assert_eq!(got, [4, 5]);
    }
}
