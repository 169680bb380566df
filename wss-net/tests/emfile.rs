//! Out of file descriptors: accepting backs off (no busy loop) and recovers once descriptors
//! are free. Alone in its test binary because it lowers the process's descriptor limit.

mod util;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use util::*;

fn set_soft_limit(n: libc::rlim_t) -> libc::rlim_t {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = n.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    let mut config = quick_config();
    config.threads = 1;
    let server = start(config, false);
    let addr: SocketAddr = server.addr;
    // The client's socket exists before the table fills: connecting needs no new descriptor.
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();

    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    let old = set_soft_limit(open + 32);
    let mut filler = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        filler.push(f);
    }
    client.connect(&addr.into()).unwrap();
    thread::sleep(Duration::from_millis(550));
    let pauses = server.handle.stats().accept_pauses;
    // ~5 retries in 550 ms at 100 ms each; a busy loop would count thousands.
    assert!((1..=10).contains(&pauses), "{pauses} accept pauses");
    assert_eq!(server.handle.stats().connections, 0);

    drop(filler);
    set_soft_limit(old);
    let mut s: std::net::TcpStream = client.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}
