//! The worker's mailbox: two queues (control, data) behind one mutex, read by one thread that
//! parks when both are empty.
//!
//! Why not a channel: with the server pinned to one core, a network loop that sends to a
//! sleeping worker through a crossbeam channel wakes it while still holding the channel's
//! waker lock; the worker preempts the loop, blocks on that lock, and the pair pays about three
//! extra futex calls and context switches per handshake and per message batch. Here a sender
//! pushes under the lock, releases it, and only then unparks the worker, so the woken worker
//! never finds the lock taken by the thread that woke it.
//!
//! What it keeps of the two channels it replaces:
//! - control messages are received before data ones; each queue is first in, first out;
//! - sends work from any thread, and fail (giving the message back) once the receiver is gone;
//! - the receiver learns when every sender is gone ([`RecvError::Disconnected`]);
//! - a message never received is dropped with the mailbox (the worker's batches release their
//!   backlog cost on drop).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::Instant;

/// Why [`Receiver::recv`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvError {
    /// The deadline passed with both queues empty.
    Timeout,
    /// Both queues are empty and every sender is gone: nothing can arrive any more.
    Disconnected,
}

/// The queues and counts that change together, under the mailbox's lock.
struct Queues<T> {
    control: VecDeque<T>,
    data: VecDeque<T>,
    /// Live [`Sender`]s; the receiver is disconnected when it reaches zero.
    senders: usize,
    /// The receiver is gone: sends fail from then on.
    closed: bool,
}

struct Shared<T> {
    queues: Mutex<Queues<T>>,
    /// The receiver is parked or about to park, and wants an `unpark`. Set under the lock by
    /// the receiver after it found both queues empty, so a sender that pushes after that sees
    /// it once it has released the lock (the lock orders the two); cleared by whoever wakes it.
    sleeping: AtomicBool,
    /// The receiving thread, set before the first time `sleeping` is: senders read it only
    /// after seeing `sleeping`, outside the lock.
    receiver: OnceLock<Thread>,
    /// Length of the control queue, readable without the lock: the worker checks it between
    /// every two network events, and the router bounds the handshakes waiting with it.
    control_len: AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queues<T>> {
        // A panic never happens while the queues are half-changed: keep going.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unparks the receiver if it is waiting. Called with the lock released.
    fn wake(&self) {
        // The plain load first: senders find the worker awake most of the time under load,
        // and a load does not take the cache line from the receiver as a swap would.
        if self.sleeping.load(Ordering::Acquire) && self.sleeping.swap(false, Ordering::AcqRel) {
            if let Some(t) = self.receiver.get() {
                t.unpark();
            }
        }
    }
}

/// A new mailbox: a sender to its control queue, one to its data queue (clone either for
/// more), and its only receiver.
pub(crate) fn mailbox<T>() -> (Sender<T>, Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queues: Mutex::new(Queues {
            control: VecDeque::new(),
            data: VecDeque::new(),
            senders: 2,
            closed: false,
        }),
        sleeping: AtomicBool::new(false),
        receiver: OnceLock::new(),
        control_len: AtomicUsize::new(0),
    });
    let sender = |queue| Sender {
        shared: Arc::clone(&shared),
        queue,
    };
    let (control, data) = (sender(Queue::Control), sender(Queue::Data));
    let receiver = Receiver {
        shared,
        data: VecDeque::new(),
    };
    (control, data, receiver)
}

/// Which of the two queues a [`Sender`] feeds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// Read first: handshakes, errors, terminate.
    Control,
    /// Network batches, read when no control message waits.
    Data,
}

/// Sends to one queue of the mailbox, from any thread. Cloning counts one more sender.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
    queue: Queue,
}

impl<T> Sender<T> {
    /// Queues `msg` at the end of this sender's queue. Gives `msg` back if the receiver is
    /// gone.
    pub(crate) fn send(&self, msg: T) -> Result<(), T> {
        {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(msg);
            }
            match self.queue {
                Queue::Control => {
                    q.control.push_back(msg);
                    let len = q.control.len();
                    self.shared.control_len.store(len, Ordering::Release);
                }
                Queue::Data => q.data.push_back(msg),
            }
        }
        // Outside the lock: the receiver we wake must not find it taken by us.
        self.shared.wake();
        Ok(())
    }

    /// How many control messages wait (a snapshot: others may send or receive meanwhile).
    pub(crate) fn control_len(&self) -> usize {
        self.shared.control_len.load(Ordering::Acquire)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.lock().senders += 1;
        Sender {
            shared: Arc::clone(&self.shared),
            queue: self.queue,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut q = self.shared.lock();
            q.senders -= 1;
            q.senders == 0
        };
        if last {
            // A parked receiver must learn that nothing will come.
            self.shared.wake();
        }
    }
}

/// The receiving end. The first thread that waits on it is the one senders wake: only that
/// thread (the worker) may receive from then on.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Data messages taken from the shared queue in one go, not yet returned: one lock per
    /// loop turn's worth of batches, not one per batch.
    data: VecDeque<T>,
}

impl<T> Receiver<T> {
    /// Whether a control message waits (the worker lets it pass a long batch of events).
    pub(crate) fn has_control(&self) -> bool {
        self.shared.control_len.load(Ordering::Acquire) > 0
    }

    /// The oldest control message, if any, without waiting.
    pub(crate) fn try_control(&mut self) -> Option<T> {
        if !self.has_control() {
            return None;
        }
        let mut q = self.shared.lock();
        let msg = q.control.pop_front();
        self.shared
            .control_len
            .store(q.control.len(), Ordering::Release);
        msg
    }

    /// The next message, control first, waiting until `deadline` (forever if `None`).
    pub(crate) fn recv(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        loop {
            // Control first, even ahead of data already taken from the shared queue.
            if let Some(msg) = self.try_control() {
                return Ok(msg);
            }
            if let Some(msg) = self.data.pop_front() {
                return Ok(msg);
            }
            {
                let mut q = self.shared.lock();
                if let Some(msg) = q.control.pop_front() {
                    self.shared
                        .control_len
                        .store(q.control.len(), Ordering::Release);
                    return Ok(msg);
                }
                if !q.data.is_empty() {
                    // Our queue is empty: swap, so both allocations are reused.
                    std::mem::swap(&mut self.data, &mut q.data);
                    continue;
                }
                if q.senders == 0 {
                    return Err(RecvError::Disconnected);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(RecvError::Timeout);
                }
                self.shared.receiver.get_or_init(thread::current);
                // Under the lock, after finding both queues empty: any later send sees it.
                self.shared.sleeping.store(true, Ordering::Release);
            }
            match deadline {
                None => thread::park(),
                Some(d) => thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
            // Woken, timed out or spurious: the loop looks again either way. A sender that
            // saw the flag before this store leaves an unpark token: one extra turn, later.
            self.shared.sleeping.store(false, Ordering::Release);
        }
    }

    /// Closes the mailbox: sends fail from now on. Returns what was never received, control
    /// messages first, so the caller can answer it.
    pub(crate) fn close(&mut self) -> Vec<T> {
        let mut rest = Vec::new();
        {
            let mut q = self.shared.lock();
            q.closed = true;
            rest.extend(q.control.drain(..));
            self.shared.control_len.store(0, Ordering::Release);
            rest.extend(self.data.drain(..));
            rest.extend(q.data.drain(..));
        }
        rest
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Dropped outside the lock: a message's drop may do work of its own (release a cost).
        drop(self.close());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn control_comes_before_data_and_each_queue_keeps_its_order() {
        let (ctl, tx, mut rx) = mailbox();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        ctl.send(10).unwrap();
        ctl.send(11).unwrap();
        assert!(rx.has_control());
        assert_eq!(tx.control_len(), 2);
        assert_eq!(rx.recv(None), Ok(10));
        // Data taken into the receiver's own queue still yields to new control messages.
        assert_eq!(rx.recv(None), Ok(11));
        assert_eq!(rx.recv(None), Ok(1));
        tx.send(3).unwrap();
        ctl.send(12).unwrap();
        assert_eq!(rx.recv(None), Ok(12));
        assert!(!rx.has_control());
        assert_eq!(rx.try_control(), None);
        assert_eq!(rx.recv(None), Ok(2));
        assert_eq!(rx.recv(None), Ok(3));
        assert_eq!(tx.control_len(), 0);
    }

    #[test]
    fn a_send_from_another_thread_wakes_a_parked_receiver() {
        let (ctl, tx, mut rx) = mailbox();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            tx.send(7).unwrap();
            tx
        });
        let start = Instant::now();
        // A deadline far away: only the send can end the wait in time.
        let got = rx.recv(Some(start + Duration::from_secs(30)));
        assert_eq!(got, Ok(7));
        assert!(start.elapsed() < Duration::from_secs(10));
        drop((ctl, sender.join().unwrap()));
    }

    #[test]
    fn a_timeout_returns_with_nothing() {
        let (_ctl, tx, mut rx) = mailbox::<u32>();
        let start = Instant::now();
        let wait = Duration::from_millis(30);
        assert_eq!(rx.recv(Some(start + wait)), Err(RecvError::Timeout));
        assert!(start.elapsed() >= wait);
        // A deadline already past returns at once, and a message waiting beats it.
        assert_eq!(rx.recv(Some(start)), Err(RecvError::Timeout));
        tx.send(1).unwrap();
        assert_eq!(rx.recv(Some(start)), Ok(1));
    }

    #[test]
    fn no_wake_up_is_lost_under_many_senders() {
        const THREADS: usize = 8;
        const EACH: u64 = 40_000;
        let (ctl, tx, mut rx) = mailbox();
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (ctl, tx) = (ctl.clone(), tx.clone());
                thread::spawn(move || {
                    for i in 0..EACH {
                        // Both queues, so the receiver parks with either one just filled.
                        let to = if i % 3 == 0 { &ctl } else { &tx };
                        to.send((t, i)).unwrap();
                        if i % 1000 == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop((ctl, tx));
        let start = Instant::now();
        let mut last_control = [None; THREADS];
        let mut last_data = [None; THREADS];
        let mut got = 0;
        // A lost wake-up would stall a receive until this deadline: fail instead of hanging.
        let deadline = start + Duration::from_secs(20);
        loop {
            match rx.recv(Some(deadline)) {
                Ok((t, i)) => {
                    // Each sender's messages keep their order within their queue.
                    let last = if i % 3 == 0 {
                        &mut last_control[t]
                    } else {
                        &mut last_data[t]
                    };
                    assert!(
                        !matches!(*last, Some(l) if l >= i),
                        "{t}: {i} after {last:?}"
                    );
                    *last = Some(i);
                    got += 1;
                }
                Err(RecvError::Disconnected) => break,
                Err(RecvError::Timeout) => panic!("stalled after {got} messages"),
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(got, THREADS as u64 * EACH);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn the_last_sender_gone_wakes_and_disconnects_the_receiver() {
        let (ctl, tx, mut rx) = mailbox::<u32>();
        let other = tx.clone();
        tx.send(1).unwrap();
        drop((ctl, tx));
        // Messages sent before the end are still received first.
        assert_eq!(rx.recv(None), Ok(1));
        let dropper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            drop(other);
        });
        let far = Instant::now() + Duration::from_secs(30);
        assert_eq!(rx.recv(Some(far)), Err(RecvError::Disconnected));
        dropper.join().unwrap();
    }

    /// Counts its drops, as the worker's batches give their cost back to the backlog.
    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_closed_mailbox_refuses_sends_and_unreceived_messages_are_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        let counted = || Counted(Arc::clone(&drops));
        let (ctl, tx, mut rx) = mailbox();
        ctl.send(counted()).unwrap();
        tx.send(counted()).unwrap();
        let rest = rx.close();
        assert_eq!(rest.len(), 2);
        drop(rest);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        // Refused sends hand the message back; the caller's drop releases it.
        assert!(tx.send(counted()).is_err());
        assert!(ctl.send(counted()).is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 4);
        // A receiver dropped with messages still queued drops them too.
        let (ctl, tx, rx) = mailbox();
        tx.send(counted()).unwrap();
        ctl.send(counted()).unwrap();
        drop(rx);
        assert_eq!(drops.load(Ordering::SeqCst), 6);
    }
}
