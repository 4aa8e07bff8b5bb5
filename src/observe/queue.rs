//! The queue between requests and the prediction log's writer. A request never waits on
//! the writer. The writer runs at the lowest CPU priority, and std's bounded channel makes
//! a sender spin and yield while a receiver is part way through taking an item from the
//! slot it wants: on a saturated core the scheduler can leave the writer off the CPU for a
//! second, and the request, and with it the core's every other request, waited that long
//! (BENCHMARKS.md, "Stalls on a saturated core"). A lock is no better: a writer preempted
//! while holding it holds every request that wants it.
//!
//! Here the items go through std's unbounded channel, whose senders claim a slot with an
//! atomic step and never wait on a receiver (at most on another sender installing the next
//! block of slots), and the bound is a counter of the items queued or held by the writer:
//! a request that would pass it gets its item back, which the caller drops and counts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};

/// A queue of at most `capacity` items (at least 1), counting those the receiver has taken
/// and not yet said it is done with.
pub fn queue<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel();
    let count = Arc::new(AtomicUsize::new(0));
    let capacity = capacity.max(1);
    (Sender { tx, count: Arc::clone(&count), capacity }, Receiver { rx, count, capacity })
}

pub struct Sender<T> {
    tx: mpsc::Sender<T>,
    count: Arc<AtomicUsize>,
    capacity: usize,
}

impl<T> Sender<T> {
    /// Queues `item`, or gives it back when the queue is full or the receiver is gone.
    pub fn offer(&self, item: T) -> Result<(), T> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(item);
        }
        self.tx.send(item).map_err(|refused| {
            self.count.fetch_sub(1, Ordering::Relaxed);
            refused.0
        })
    }
}

pub struct Receiver<T> {
    rx: mpsc::Receiver<T>,
    count: Arc<AtomicUsize>,
    capacity: usize,
}

impl<T> Receiver<T> {
    /// Moves what is queued to the end of `into`; `true` once the sender is gone and
    /// nothing is left.
    pub fn take(&self, into: &mut VecDeque<T>) -> bool {
        // The counter keeps at most `capacity` items in the channel: one more try sees the end.
        for _ in 0..=self.capacity {
            match self.rx.try_recv() {
                Ok(item) => into.push_back(item),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    /// The receiver is done with `count` of the items it took: they no longer count
    /// against the capacity.
    pub fn done(&self, count: usize) {
        self.count.fetch_sub(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_order_and_closed_once_the_sender_is_gone() {
        let (tx, rx) = queue(2);
        assert!(tx.offer(1).is_ok() && tx.offer(2).is_ok());
        assert_eq!(tx.offer(3), Err(3));
        let mut got = VecDeque::new();
        assert!(!rx.take(&mut got));
        assert_eq!(got, [1, 2]);
        // What the receiver holds counts until it is done with it.
        assert_eq!(tx.offer(4), Err(4));
        got.pop_front();
        rx.done(1);
        assert!(tx.offer(4).is_ok());
        assert_eq!(tx.offer(5), Err(5));
        got.clear();
        rx.done(1);
        assert!(tx.offer(5).is_ok());
        drop(tx);
        assert!(rx.take(&mut got));
        assert_eq!(got, [4, 5]);
    }
}
