//! The queue of events waiting for `poll_event`.
//!
//! An idle connection has no event waiting, so the queue is one null pointer then: its
//! storage (a boxed `VecDeque`) is lent from a small per-thread pool when the first event is
//! pushed and given back as soon as the last one is taken. Events that the caller leaves
//! queued (a consumer that is behind stops taking them) keep their box for as long as they
//! wait. The ring keeps its capacity in the pool, so the usual push-then-pop costs no
//! allocation.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::Event;

/// Rings each thread keeps for the next connection that queues an event. Sized for a turn in
/// which many connections each got a burst; a pooled ring holds no event.
const POOL_MAX: usize = 64;

/// A pooled ring keeps up to this many slots (about 2.5 KiB); a larger one (a long burst) is
/// freed instead, so the pool stays small.
const POOL_KEEP_SLOTS: usize = 64;

// The box is the point: a queue costs one pointer, and lending a ring moves a pointer.
type Ring = Box<VecDeque<Event>>;

thread_local! {
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Ring>> = const { RefCell::new(Vec::new()) };
}

/// An empty ring from this thread's pool, or a new one.
fn lend() -> Ring {
    POOL.try_with(|pool| pool.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Empties `ring` (dropping what it held) and keeps it in this thread's pool, unless it is
/// large, the pool is full, or the thread is ending: then it is freed.
fn give_back(mut ring: Ring) {
    if !ring.is_empty() {
        ring.clear();
    }
    if ring.capacity() > POOL_KEEP_SLOTS {
        return;
    }
    let _ = POOL.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut() {
            if pool.len() < POOL_MAX {
                pool.push(ring);
            }
        }
    });
}

#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    /// Oldest first; present exactly while an event waits.
    #[allow(clippy::box_collection)]
    ring: Option<Ring>,
}

impl EventQueue {
    #[inline]
    pub(crate) fn push(&mut self, event: Event) {
        self.ring.get_or_insert_with(lend).push_back(event);
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Event> {
        let ring = self.ring.as_mut()?;
        let event = ring.pop_front();
        if ring.is_empty() {
            if let Some(ring) = self.ring.take() {
                give_back(ring);
            }
        }
        event
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        if let Some(ring) = self.ring.take() {
            give_back(ring);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Timeout;

    fn ev(n: u8) -> Event {
        Event::Ping(vec![n])
    }

    #[test]
    fn events_come_out_in_the_order_they_went_in() {
        let mut q = EventQueue::default();
        q.push(ev(1));
        q.push(ev(2));
        assert_eq!(q.pop(), Some(ev(1)));
        q.push(ev(3));
        assert_eq!(q.pop(), Some(ev(2)));
        q.push(ev(4));
        assert_eq!(q.pop(), Some(ev(3)));
        assert_eq!(q.pop(), Some(ev(4)));
        assert_eq!(q.pop(), None);
        q.push(Event::TimedOut(Timeout::Idle));
        assert_eq!(q.pop(), Some(Event::TimedOut(Timeout::Idle)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_drained_queue_holds_no_ring() {
        let mut q = EventQueue::default();
        for n in 0..100 {
            q.push(ev(n));
        }
        assert!(q.ring.as_ref().is_some_and(|r| r.len() == 100));
        for n in 0..100 {
            assert_eq!(q.pop(), Some(ev(n)));
        }
        assert!(q.ring.is_none());
    }

    #[test]
    fn events_left_waiting_survive_other_queues_using_the_pool() {
        let mut waiting = EventQueue::default();
        waiting.push(ev(1));
        waiting.push(ev(2));
        // Other connections on this thread queue, drain and drop their queues meanwhile.
        for round in 0..10 {
            let mut other = EventQueue::default();
            other.push(ev(100 + round));
            assert_eq!(other.pop(), Some(ev(100 + round)));
            let mut dropped = EventQueue::default();
            dropped.push(ev(200));
            drop(dropped);
        }
        assert_eq!(waiting.pop(), Some(ev(1)));
        assert_eq!(waiting.pop(), Some(ev(2)));
        assert_eq!(waiting.pop(), None);
    }

    #[test]
    fn a_lent_ring_carries_no_event_from_a_dropped_queue() {
        let mut dropped = EventQueue::default();
        dropped.push(ev(1));
        dropped.push(ev(2));
        drop(dropped);
        let mut next = EventQueue::default();
        next.push(ev(3));
        assert_eq!(next.pop(), Some(ev(3)));
        assert_eq!(next.pop(), None);
    }

    #[test]
    fn a_drained_ring_is_reused() {
        let mut q = EventQueue::default();
        q.push(ev(1));
        let first: *const VecDeque<Event> = q.ring.as_deref().map_or(std::ptr::null(), |r| r);
        assert_eq!(q.pop(), Some(ev(1)));
        q.push(ev(2));
        let second: *const VecDeque<Event> = q.ring.as_deref().map_or(std::ptr::null(), |r| r);
        assert_eq!(first, second, "the same ring came back from the pool");
    }
}
