//! The connection's timers, kept as the two points in time they derive from, with no heap.
//!
//! The idle ping and the idle timeout both run from the last time bytes arrived, so one
//! point serves both; the close timer has its own deadline. Deadlines are computed when
//! asked for, which keeps `receive` down to one store.
//!
//! A point is stored as nanoseconds since a process-wide epoch (8 bytes, where an
//! `Option<Instant>` takes 16): exact, so a timer neither fires early nor late. The epoch is
//! set from the first instant any connection sees, moved back by up to 2^32 s (136 years,
//! when the platform's `Instant` can go that far) so that instants from before it still
//! count; 2^64 ns leave centuries after it. An instant before the epoch all the same is
//! stored as the epoch itself (later than it was), and a `now` before it counts as earlier
//! than every deadline: either way a timer can only fire late, never early.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The instant that tick 0 stands for, once any instant was seen.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The epoch, set from `seen` if this is the first instant seen.
fn epoch(seen: Instant) -> Instant {
    *EPOCH.get_or_init(|| {
        let mut back = Duration::from_secs(1 << 32);
        loop {
            match seen.checked_sub(back) {
                Some(epoch) => return epoch,
                None if back.is_zero() => return seen,
                None => back /= 2,
            }
        }
    })
}

/// A point in time, as nanoseconds after the epoch (never 0, so `Option<Tick>` is 8 bytes).
type Tick = NonZeroU64;

thread_local! {
    /// The last instant converted on this thread and its tick. A network layer passes the
    /// same `now` to every connection it serves in a turn, so most conversions on the receive
    /// path are a comparison instead of an `Instant` subtraction.
    static LAST_TICK: Cell<Option<(Instant, Tick)>> = const { Cell::new(None) };
}

/// `at` as a tick, rounded up: the stored point is never earlier than `at`.
#[inline]
fn tick_up(at: Instant) -> Tick {
    let cached = LAST_TICK.try_with(Cell::get).ok().flatten();
    if let Some((_, tick)) = cached.filter(|(seen, _)| *seen == at) {
        return tick;
    }
    let nanos = at.saturating_duration_since(epoch(at)).as_nanos();
    let tick = NonZeroU64::new(u64::try_from(nanos).unwrap_or(u64::MAX)).unwrap_or(NonZeroU64::MIN);
    let _ = LAST_TICK.try_with(|last| last.set(Some((at, tick))));
    tick
}

/// `now` as nanoseconds after the epoch, rounded down (0 before the epoch): a deadline
/// compared with it is never reached early.
fn nanos_down(now: Instant) -> u64 {
    let nanos = now.saturating_duration_since(epoch(now)).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// `from + after`, or `None` (never) when it is past what a tick holds.
fn later(from: Tick, after: Duration) -> Option<Tick> {
    let after = u64::try_from(after.as_nanos()).ok()?;
    from.checked_add(after)
}

/// The instant of a deadline, or `None` when it is past what `Instant` holds.
fn instant_of(at: Tick) -> Option<Instant> {
    // The epoch is set by then: a tick was made from an instant.
    let epoch = *EPOCH.get()?;
    epoch.checked_add(Duration::from_nanos(at.get()))
}

/// A timer that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Our close frame was not answered in time.
    Close,
    /// Nothing was received for the whole idle timeout.
    Idle,
    /// Nothing was received for half of it: send a ping.
    Ping,
}

/// The timers' points in time. Whether the half-idle ping is still to be sent for the
/// current quiet spell is a flag the connection keeps next to its other flags (here it would
/// cost 8 bytes of padding) and passes in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    /// When bytes last arrived, while the idle timer runs.
    last_rx: Option<Tick>,
    /// The deadline for the peer's close; `None` also when it is past what a tick holds.
    close_at: Option<Tick>,
}

impl Timers {
    /// Bytes arrived at `now`: the idle timer (if any) starts over. Returns whether the
    /// half-idle ping is now armed.
    #[inline]
    pub(crate) fn received(&mut self, now: Instant, idle: Option<Duration>) -> bool {
        if idle.is_some() {
            self.last_rx = Some(tick_up(now));
        }
        idle.is_some()
    }

    /// Arms the close timer for `now + after`; a sum past what a tick holds means never.
    pub(crate) fn arm_close(&mut self, now: Instant, after: Duration) {
        self.close_at = later(tick_up(now), after);
    }

    pub(crate) fn stop_all(&mut self) {
        *self = Timers::default();
    }

    fn ping_at(&self, ping: bool, idle: Option<Duration>) -> Option<Tick> {
        if !ping {
            return None;
        }
        later(self.last_rx?, idle? / 2)
    }

    fn idle_at(&self, idle: Option<Duration>) -> Option<Tick> {
        later(self.last_rx?, idle?)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self, ping: bool, idle: Option<Duration>) -> Option<Instant> {
        let at = [self.close_at, self.ping_at(ping, idle), self.idle_at(idle)]
            .into_iter()
            .flatten()
            .min()?;
        instant_of(at)
    }

    /// The most urgent timer that ran out by `now`: close, then idle, then ping.
    pub(crate) fn due(&self, now: Instant, ping: bool, idle: Option<Duration>) -> Option<Due> {
        let now = nanos_down(now);
        let passed = |at: Option<Tick>| at.is_some_and(|at| at.get() <= now);
        if passed(self.close_at) {
            Some(Due::Close)
        } else if passed(self.idle_at(idle)) {
            Some(Due::Idle)
        } else if passed(self.ping_at(ping, idle)) {
            Some(Due::Ping)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let t0 = Instant::now();
        let idle = Some(Duration::from_secs(10));
        let mut t = Timers::default();
        assert_eq!(t.next(false, idle), None);
        let ping = t.received(t0, idle);
        assert!(ping);
        assert_eq!(
            t.next(ping, idle),
            Some(t0 + Duration::from_secs(5)),
            "ping first"
        );
        assert_eq!(
            t.due(t0 + Duration::from_secs(5), ping, idle),
            Some(Due::Ping)
        );
        // The ping went out.
        assert_eq!(t.next(false, idle), Some(t0 + Duration::from_secs(10)));
        assert_eq!(t.due(t0 + Duration::from_secs(9), false, idle), None);
        assert_eq!(
            t.due(t0 + Duration::from_secs(10), false, idle),
            Some(Due::Idle)
        );
        t.arm_close(t0, Duration::from_secs(1));
        assert_eq!(t.next(false, idle), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            t.due(t0 + Duration::from_secs(10), false, idle),
            Some(Due::Close)
        );
        t.stop_all();
        assert_eq!(t.next(true, idle), None);
    }

    #[test]
    fn deadlines_past_what_instant_holds_never_come() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let ping = t.received(t0, Some(Duration::MAX));
        t.arm_close(t0, Duration::MAX);
        assert_eq!(t.next(ping, Some(Duration::MAX)), None);
    }

    #[test]
    fn ticks_are_exact_and_round_toward_late() {
        let t0 = Instant::now() + Duration::from_nanos(987_654_321);
        let tick = tick_up(t0);
        assert_eq!(instant_of(tick), Some(t0), "exact to the nanosecond");
        assert_eq!(nanos_down(t0), tick.get());
        let t1 = t0 + Duration::from_nanos(1);
        assert_eq!(
            tick_up(t1).get(),
            tick.get() + 1,
            "the cache is per instant"
        );
        assert_eq!(tick_up(t0), tick);
        let epoch = *EPOCH.get().unwrap();
        // Before the epoch (only reachable when the platform's `Instant` goes back that far):
        // stored as the epoch, later than it was; as `now`, earlier than every deadline.
        if let Some(before) = epoch.checked_sub(Duration::from_secs(1)) {
            assert_eq!(tick_up(before), NonZeroU64::MIN);
            assert_eq!(nanos_down(before), 0);
            let mut t = Timers::default();
            t.arm_close(before, Duration::ZERO);
            assert_eq!(t.due(before, false, None), None, "never early");
        }
    }

    #[test]
    fn a_deadline_is_due_at_its_instant_not_a_nanosecond_before() {
        let t0 = Instant::now() + Duration::from_nanos(3);
        let idle = Some(Duration::from_nanos(2_000_000_003));
        let mut t = Timers::default();
        let ping = t.received(t0, idle);
        let ping_at = t.next(ping, idle).unwrap();
        assert_eq!(ping_at, t0 + Duration::from_nanos(1_000_000_001));
        assert_eq!(t.due(ping_at - Duration::from_nanos(1), ping, idle), None);
        assert_eq!(t.due(ping_at, ping, idle), Some(Due::Ping));
    }

    #[test]
    fn no_idle_timeout_means_no_idle_timers() {
        let mut t = Timers::default();
        let ping = t.received(Instant::now(), None);
        assert!(!ping);
        assert_eq!(t.next(true, None), None);
    }
}
