//! The queue of events waiting for `poll_event`.
//!
//! Almost every `receive` produces one event that the caller takes right away, so the first
//! event waits in an inline slot: no allocation, no ring arithmetic. Only a burst (several
//! frames in one read) spills into a boxed `VecDeque` (boxed so that the common case pays 8
//! bytes per connection for it, not 32), which is freed once drained so that an idle
//! connection holds no event memory.

use std::collections::VecDeque;

use super::Event;

#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    /// The oldest event, when it is not in `rest`.
    first: Option<Event>,
    /// Events after `first`, oldest first; never empty when present.
    // The box is the point: 8 bytes in every connection instead of 32 for the rare burst.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Event>>>,
}

impl EventQueue {
    #[inline]
    pub(crate) fn push(&mut self, event: Event) {
        if self.first.is_none() && self.rest.is_none() {
            self.first = Some(event);
        } else {
            self.rest.get_or_insert_with(Box::default).push_back(event);
        }
    }

    /// Whether a data message waits in the queue (looked at only when a close arrives).
    pub(crate) fn has_message(&self) -> bool {
        let is_message = |e: &Event| matches!(e, Event::Message(_));
        self.first.as_ref().is_some_and(is_message)
            || self.rest.as_ref().is_some_and(|r| r.iter().any(is_message))
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Event> {
        if let Some(event) = self.first.take() {
            return Some(event);
        }
        let rest = self.rest.as_mut()?;
        let event = rest.pop_front();
        if rest.is_empty() {
            self.rest = None;
        }
        event
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
    fn a_message_is_found_wherever_it_waits() {
        let mut q = EventQueue::default();
        assert!(!q.has_message());
        q.push(ev(1));
        assert!(!q.has_message(), "a ping is no message");
        q.push(Event::Message(crate::Message::Text("m".into())));
        assert!(q.has_message(), "behind the first event");
        let _ = q.pop();
        assert!(q.has_message(), "alone in the spill");
        let _ = q.pop();
        assert!(!q.has_message());
        q.push(Event::Message(crate::Message::Binary(vec![1])));
        assert!(q.has_message(), "in the inline slot");
    }

    #[test]
    fn a_drained_burst_frees_its_memory() {
        let mut q = EventQueue::default();
        for n in 0..100 {
            q.push(ev(n));
        }
        assert!(q.rest.as_ref().is_some_and(|r| r.len() == 99));
        for n in 0..100 {
            assert_eq!(q.pop(), Some(ev(n)));
        }
        assert!(q.rest.is_none());
        assert!(q.first.is_none());
    }
}
