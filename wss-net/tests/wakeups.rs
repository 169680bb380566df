//! Commands from other threads: a sleeping loop is woken, a busy one is not woken per message.

mod util;

use std::io::Write;
use std::thread;
use std::time::Duration;

use util::*;
use wss_net::Outgoing;

#[test]
fn send_from_another_thread_wakes_an_idle_loop() {
    let server = start(quick_config(), false);
    let mut s = raw_ws(server.addr, "/ws");
    let conn = server.expect_opened();
    // Let the loops go to sleep.
    thread::sleep(Duration::from_millis(100));
    let before = server.handle.stats().wakeups;
    let handle = server.handle.clone();
    thread::spawn(move || handle.send(conn, Outgoing::Text("wake".into())))
        .join()
        .unwrap();
    assert_eq!(read_frame(&mut s), Some((1, b"wake".to_vec())));
    assert!(
        server.handle.stats().wakeups > before,
        "the sleeping loop was woken"
    );
}

#[test]
fn sends_under_load_cause_far_fewer_wakeups_than_messages() {
    const MESSAGES: usize = 10_000;
    let mut config = quick_config();
    config.threads = 1;
    let server = start(config, true);
    let mut busy = raw_ws(server.addr, "/ws");
    let busy_id = server.expect_opened();
    let mut target = raw_ws(server.addr, "/ws");
    let target_id = server.expect_opened();
    let _ = busy_id;

    // Load: a client keeps the loop busy with echo traffic while another thread sends.
    let mut load_writer = busy.try_clone().unwrap();
    let load = thread::spawn(move || {
        let frame = client_frame(true, 2, &[0u8; 512]);
        for _ in 0..2_000 {
            if load_writer.write_all(&frame).is_err() {
                break;
            }
        }
    });
    let drain = thread::spawn(move || {
        let mut n = 0;
        while n < 2_000 {
            if read_frame(&mut busy).is_none() {
                break;
            }
            n += 1;
        }
        n
    });

    let before = server.handle.stats().wakeups;
    let handle = server.handle.clone();
    let sender = thread::spawn(move || {
        for i in 0..MESSAGES {
            handle.send(target_id, Outgoing::Text(format!("{i}")));
        }
    });
    for i in 0..MESSAGES {
        assert_eq!(
            read_frame(&mut target),
            Some((1, format!("{i}").into_bytes()))
        );
    }
    sender.join().unwrap();
    let wakeups = server.handle.stats().wakeups - before;
    load.join().unwrap();
    assert_eq!(drain.join().unwrap(), 2_000);
    assert!(
        wakeups * 10 < MESSAGES as u64,
        "{wakeups} wake-ups for {MESSAGES} messages"
    );
    eprintln!("{wakeups} wake-ups for {MESSAGES} messages");
}
