//! Tests of the connection as a whole: its size, and what lent boxes must never carry.

mod size_tests {
    use super::super::*;
    #[allow(unused_imports)]
    use crate::frame::{encode_frame, Opcode};
    #[allow(unused_imports)]
    use std::time::Duration;

    /// A server holds one `Connection` per client, most of them idle: this is most of what
    /// an idle client costs. It was 384 bytes before the config was shared and the rare
    /// state boxed, and 224 before the partial receive state and the event queue were lent
    /// from pools and the timers became ticks, and 80 when the pools moved into the caller's
    /// `Scratch` and the timers dropped their process-wide epoch (the close deadline went
    /// into the rare box to make room for the idle timers' `Instant`): it must not grow.
    /// Run with `--nocapture` for the parts.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn connection_stays_small() {
        use std::mem::size_of;
        let size = size_of::<Connection>();
        println!(
            "Connection {size} = config {} + decoder {} + events {} + out {} + timers {} + \
             rare {} + role, state, 3 flags",
            size_of::<Arc<Config>>(),
            size_of::<Decoder>(),
            size_of::<EventQueue>(),
            size_of::<Vec<u8>>(),
            size_of::<Timers>(),
            size_of::<Option<Box<Rare>>>(),
        );
        let limit = 80;
        assert!(size <= limit, "Connection is {size} bytes, limit {limit}");
    }
}

/// The scratch behind the decoder's partial state and the event queue: what one connection
/// leaves in a lent box must never reach the next connection that borrows it.
mod scratch_tests {
    use super::super::*;
    #[allow(unused_imports)]
    use crate::frame::{encode_frame, Opcode};
    #[allow(unused_imports)]
    use std::time::Duration;

    const KEY: [u8; 4] = [9, 8, 7, 6];

    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, opcode, payload, Some(KEY));
        out
    }

    fn server(now: Instant) -> Connection {
        Connection::new(Role::Server, Config::default(), now)
    }

    fn events(scratch: &mut Scratch, conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event(scratch)).collect()
    }

    /// Another connection on this scratch, fed a fragmented text, a ping and a binary message
    /// in reads of `piece` bytes, must see exactly them.
    fn assert_next_connection_decodes(scratch: &mut Scratch, now: Instant, piece: usize) {
        let mut wire = frame(false, Opcode::Text, b"he");
        wire.extend(frame(true, Opcode::Ping, b"ping"));
        wire.extend(frame(true, Opcode::Continuation, b"llo"));
        wire.extend(frame(true, Opcode::Binary, &[5; 300]));
        let mut conn = server(now);
        let mut seen = Vec::new();
        for chunk in wire.chunks(piece) {
            conn.receive(scratch, now, chunk);
            seen.extend(events(scratch, &mut conn));
        }
        assert_eq!(
            seen,
            [
                Event::Ping(b"ping".to_vec()),
                Event::Message(Message::Text("hello".into())),
                Event::Message(Message::Binary(vec![5; 300])),
            ],
            "reads of {piece} bytes"
        );
        assert!(conn.error().is_none());
    }

    #[test]
    fn a_connection_dropped_mid_header_leaves_nothing_behind() {
        let mut s = Scratch::new();
        let now = Instant::now();
        let mut dropped = server(now);
        // The first two bytes of a header announcing a 16-bit length.
        dropped.receive(&mut s, now, &[0x82, 0xfe]);
        drop(dropped);
        assert_next_connection_decodes(&mut s, now, 1);
        assert_next_connection_decodes(&mut s, now, 7);
    }

    #[test]
    fn a_connection_dropped_mid_frame_and_mid_message_leaves_nothing_behind() {
        let mut s = Scratch::new();
        let now = Instant::now();
        // In the middle of a ping's payload.
        let ping = frame(true, Opcode::Ping, b"0123456789");
        let mut dropped = server(now);
        dropped.receive(&mut s, now, &ping[..9]);
        drop(dropped);
        assert_next_connection_decodes(&mut s, now, 3);
        // In a fragmented message, in the middle of its second frame.
        let mut wire = frame(false, Opcode::Text, b"abc");
        let second = frame(false, Opcode::Continuation, b"defghij");
        wire.extend(&second[..second.len() - 2]);
        let mut dropped = server(now);
        dropped.receive(&mut s, now, &wire);
        drop(dropped);
        assert_next_connection_decodes(&mut s, now, 5);
    }

    #[test]
    fn a_connection_that_failed_mid_message_leaves_nothing_behind() {
        let mut s = Scratch::new();
        let now = Instant::now();
        let mut wire = frame(false, Opcode::Text, b"ok so far");
        // Invalid UTF-8 in a continuation split across reads.
        let bad = frame(true, Opcode::Continuation, &[0xff, 0xfe, b'a', b'b']);
        wire.extend(&bad[..bad.len() - 1]);
        let mut failed = server(now);
        failed.receive(&mut s, now, &wire);
        failed.receive(&mut s, now, &bad[bad.len() - 1..]);
        assert_eq!(failed.error(), Some(&ProtocolError::InvalidUtf8));
        // Failing in the middle of a header: a control frame over 125 bytes.
        let mut failed_header = server(now);
        failed_header.receive(&mut s, now, &[0x89]);
        failed_header.receive(&mut s, now, &[0xfe, 0, 200, 1, 2, 3, 4]);
        assert!(failed_header.error().is_some());
        drop(failed);
        drop(failed_header);
        assert_next_connection_decodes(&mut s, now, 2);
        assert_next_connection_decodes(&mut s, now, 1000);
    }

    #[test]
    fn events_left_queued_survive_other_connections_on_the_thread() {
        let mut s = Scratch::new();
        let now = Instant::now();
        let mut blocked = server(now);
        let mut wire = Vec::new();
        for n in 0..3u8 {
            wire.extend(frame(true, Opcode::Binary, &[n; 10]));
        }
        blocked.receive(&mut s, now, &wire);
        // The caller takes one event, then stops (its consumer is behind).
        assert_eq!(
            blocked.poll_event(&mut s),
            Some(Event::Message(Message::Binary(vec![0; 10])))
        );
        for _ in 0..5 {
            assert_next_connection_decodes(&mut s, now, 4);
            let mut dropped = server(now);
            dropped.receive(&mut s, now, &wire);
            drop(dropped);
        }
        assert_eq!(
            events(&mut s, &mut blocked),
            [
                Event::Message(Message::Binary(vec![1; 10])),
                Event::Message(Message::Binary(vec![2; 10])),
            ]
        );
        assert_eq!(blocked.poll_event(&mut s), None);
    }

    #[test]
    fn idle_timers_never_fire_early() {
        let mut s = Scratch::new();
        // Odd durations and starting points: every deadline must be exact to the nanosecond.
        let base = Instant::now();
        for (start, idle) in [
            (0u64, 10_000_000_001u64),
            (1, 3),
            (999_999_999, 7_777),
            (13, 1),
        ] {
            let t0 = base + Duration::from_nanos(start);
            let idle = Duration::from_nanos(idle);
            let config = Config {
                idle_timeout: Some(idle),
                ..Config::default()
            };
            let mut conn = Connection::new(Role::Server, config, t0);
            let ping_at = t0 + idle / 2;
            assert_eq!(conn.poll_timeout(), Some(ping_at));
            conn.handle_timeout(ping_at - Duration::from_nanos(1));
            assert!(!conn.wants_write(), "ping before its deadline");
            conn.handle_timeout(ping_at);
            assert!(conn.wants_write(), "ping at its deadline");
            let idle_at = t0 + idle;
            assert_eq!(conn.poll_timeout(), Some(idle_at));
            conn.handle_timeout(idle_at - Duration::from_nanos(1));
            assert_eq!(
                conn.poll_event(&mut s),
                None,
                "timed out before the deadline"
            );
            conn.handle_timeout(idle_at);
            assert_eq!(
                conn.poll_event(&mut s),
                Some(Event::TimedOut(Timeout::Idle))
            );
        }
    }

    #[test]
    fn the_close_timer_never_fires_early() {
        let mut s = Scratch::new();
        let t0 = Instant::now() + Duration::from_nanos(123_456_789);
        let config = Config {
            close_timeout: Duration::from_nanos(5_000_000_007),
            ..Config::default()
        };
        let at = t0 + config.close_timeout;
        let mut conn = Connection::new(Role::Server, config, t0);
        assert_eq!(conn.poll_timeout(), None);
        conn.close(t0, CloseCode::NORMAL, "").unwrap();
        assert_eq!(conn.poll_timeout(), Some(at));
        conn.handle_timeout(at - Duration::from_nanos(1));
        assert_eq!(conn.poll_event(&mut s), None);
        conn.handle_timeout(at);
        assert_eq!(
            conn.poll_event(&mut s),
            Some(Event::TimedOut(Timeout::Close))
        );
    }

    #[test]
    fn a_connection_moves_between_threads_and_scratches() {
        // A client connection is dialled (and may read its first frames) on one thread with a
        // temporary scratch, then driven by an event loop on another with the loop's.
        let now = Instant::now();
        let config = Config {
            idle_timeout: Some(Duration::from_secs(10)),
            ..Config::default()
        };
        let mut dial = Scratch::new();
        let mut conn = Connection::new(Role::Server, config, now);
        conn.receive(&mut dial, now, &frame(false, Opcode::Text, b"he"));
        conn.receive(&mut dial, now, &frame(true, Opcode::Ping, b"p"));
        drop(dial);
        let (seen, deadline) = std::thread::spawn(move || {
            let mut on_loop = Scratch::new();
            let more = frame(true, Opcode::Continuation, b"llo");
            conn.receive(&mut on_loop, now, &more);
            (events(&mut on_loop, &mut conn), conn.poll_timeout())
        })
        .join()
        .unwrap();
        assert_eq!(
            seen,
            [
                Event::Ping(b"p".to_vec()),
                Event::Message(Message::Text("hello".into())),
            ]
        );
        assert_eq!(
            deadline,
            Some(now + Duration::from_secs(5)),
            "the idle ping"
        );
    }
}
