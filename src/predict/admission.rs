//! Admission control: at most `server.max_in_flight` predict and infer requests in
//! flight, refused at once beyond it. (A limit that shrank with the runtime's queueing
//! delay was tried and measured worse under twice the load a core can serve: a refusal
//! costs about half a served request, so admitting less freed little CPU; BENCHMARKS.md,
//! "Overload".)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub(super) struct Admission {
    in_flight: AtomicUsize,
    limit: usize,
}

/// A request's place among those in flight; released when dropped.
#[derive(Debug)]
pub struct Permit(Arc<Admission>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

impl Admission {
    pub(super) fn new(limit: usize) -> Arc<Admission> {
        Arc::new(Admission { in_flight: AtomicUsize::new(0), limit: limit.max(1) })
    }

    /// A permit, or `None` when the current limit is reached.
    pub(super) fn try_admit(self: &Arc<Self>) -> Option<Permit> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(self));
        (before < self.limit).then_some(permit)
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_up_to_the_limit_and_back_when_dropped() {
        let a = Admission::new(2);
        let (p1, p2) = (a.try_admit(), a.try_admit());
        assert!(p1.is_some() && p2.is_some());
        assert!(a.try_admit().is_none());
        assert_eq!(a.in_flight(), 2);
        drop(p1);
        assert!(a.try_admit().is_some());
    }
}
