//! Operating `wss` (issue 22): `/metrics` scraped by a real Prometheus, `/healthz` and
//! `/readyz` over raw sockets, the drain that spreads closes, JSON logs, `WSS_<FLAG>`, and
//! the signals (a second one forces the exit, SIGHUP does not kill).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::redis::free_port;
use support::{connect, next_message, Client, Wss};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// The metrics listener's address, from the `metrics on http://ADDR/metrics` log line.
fn metrics_addr(wss: &Wss) -> SocketAddr {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = wss.stderr().lines().find_map(|l| {
            let rest = &l[l.find("metrics on http://")? + "metrics on http://".len()..];
            rest[..rest.find('/')?].parse().ok()
        });
        if let Some(a) = found {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics line on stderr:\n{}",
            wss.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw HTTP/1.1 exchange: the response's status, its head lines and its body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    /// How many header lines named `name` the raw head holds.
    fn count(&self, name: &str) -> usize {
        self.head
            .lines()
            .skip(1)
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            })
            .count()
    }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    try_get(addr, target).unwrap_or_else(|| panic!("no HTTP answer from {addr}{target}"))
}

/// `None` when nothing listens yet or no full head came back.
fn try_get(addr: SocketAddr, target: &str) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthz_and_readyz_answer_without_cookies_and_readyz_turns_503_in_a_drain() {
    let mut wss = Wss::start(&[
        "--handler",
        "echo",
        "--metrics",
        "127.0.0.1:0",
        "--health-path",
        "/",
        "--drain-time",
        "3",
    ]);
    let metrics = metrics_addr(&wss);
    // The chat page opens a session: the probes' lack of one below is not an accident.
    let page = get(wss.addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.count("set-cookie"), 1, "{}", page.head);
    for addr in [wss.addr, metrics] {
        let alive = get(addr, "/healthz");
        assert_eq!(alive.status, 200, "{}", alive.head);
        assert_eq!(alive.body, "ok\n");
        assert_eq!(alive.count("set-cookie"), 0, "{}", alive.head);
        let ready = get(addr, "/readyz");
        assert_eq!(ready.status, 200, "{}", ready.head);
        assert_eq!(ready.count("set-cookie"), 0, "{}", ready.head);
    }
    assert_eq!(get(metrics, "/nothing").status, 404);

    // A client keeps the drain going for a while.
    let mut ws = connect(&wss.ws_url(""));
    ws.send(Message::text("hi")).unwrap();
    next_message(&mut ws);
    wss.signal("TERM");
    wait_for("/readyz 503", || get(metrics, "/readyz").status == 503);
    let ready = get(wss.addr, "/readyz");
    assert_eq!(ready.status, 503, "{}", ready.head);
    assert_eq!(ready.body, "draining\n");
    assert_eq!(ready.count("set-cookie"), 0);
    assert_eq!(get(metrics, "/healthz").status, 200, "alive while draining");
    // New upgrades are refused while draining.
    let refused = support::refused_status(&wss.ws_url(""));
    assert_eq!(refused, 503);
    drop(ws);
    let status = wss.wait_exit(Duration::from_secs(15)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn drain_time_spreads_the_close_frames_over_about_that_time() {
    const CLIENTS: usize = 100;
    let mut wss = Wss::start(&["--handler", "echo", "--drain-time", "2"]);
    let (tx, rx) = mpsc::channel();
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| connect(&wss.ws_url(""))).collect();
    // Every client is open on the server before the signal.
    for ws in &mut clients {
        ws.send(Message::text("x")).unwrap();
        next_message(ws);
    }
    for mut ws in clients {
        let tx = tx.clone();
        std::thread::spawn(move || loop {
            match ws.read() {
                Ok(Message::Close(frame)) => {
                    let code = frame.map(|f| u16::from(f.code));
                    let _ = tx.send((Instant::now(), code));
                    // Answer, then let the server end the TCP connection.
                    while ws.read().is_ok() {}
                    return;
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = tx.send((Instant::now(), None));
                    return;
                }
            }
        });
    }
    drop(tx);
    wss.signal("TERM");
    let mut arrivals = Vec::new();
    while let Ok(a) = rx.recv_timeout(Duration::from_secs(15)) {
        arrivals.push(a);
    }
    assert_eq!(arrivals.len(), CLIENTS);
    assert!(
        arrivals.iter().all(|(_, code)| *code == Some(1001)),
        "every client gets 1001: {:?}",
        arrivals.iter().map(|a| a.1).collect::<Vec<_>>()
    );
    let first = arrivals.iter().map(|a| a.0).min().unwrap();
    let last = arrivals.iter().map(|a| a.0).max().unwrap();
    let spread = last - first;
    assert!(
        spread >= Duration::from_millis(1200) && spread <= Duration::from_secs(4),
        "closes spread over {spread:?}, expected about 2 s"
    );
    // Evenly: the first half of the closes takes about the first half of the time.
    let mut times: Vec<Instant> = arrivals.iter().map(|a| a.0).collect();
    times.sort();
    let middle = times[CLIENTS / 2] - first;
    assert!(
        middle >= spread / 4 && middle <= spread * 3 / 4,
        "half the closes after {middle:?} of {spread:?}: not spread evenly"
    );
    let status = wss.wait_exit(Duration::from_secs(15)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_second_signal_exits_at_once_with_a_non_zero_status() {
    let mut wss = Wss::start(&["--handler", "echo", "--drain-time", "30"]);
    let _ws = connect(&wss.ws_url(""));
    wss.signal("TERM");
    wait_for("the drain to start", || wss.stderr().contains("draining"));
    wss.signal("TERM");
    let status = wss
        .wait_exit(Duration::from_secs(5))
        .expect("exits at once");
    assert_eq!(status.code(), Some(128 + 15), "{}", wss.stderr());
}

#[test]
fn sighup_reopens_the_log_file_and_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("wss-ops-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.log");
    let _ = std::fs::remove_file(&log);
    let mut wss = Wss::start(&["--handler", "echo", "--log", log.to_str().unwrap()]);
    wss.signal("HUP");
    wait_for("the reopen notice", || wss.stderr().contains("reopened"));
    // Copy-and-truncate rotation leaves the same file: the next line still lands in it.
    std::fs::write(&log, "").unwrap();
    let mut ws = connect(&wss.ws_url(""));
    ws.send(Message::text("after hup")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("after hup"));
    ws.close(None).unwrap();
    wait_for("a line in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("connection.open"))
    });
    assert!(wss.wait_exit(Duration::from_millis(100)).is_none(), "alive");
    wss.signal("TERM");
    assert_eq!(wss.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_log_lines_parse_and_carry_the_event_fields() {
    let mut wss = Wss::start(&[
        "--handler",
        "echo",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    let mut ws = connect(&wss.ws_url("?token=sekrit-query"));
    ws.send(Message::text("hello")).unwrap();
    next_message(&mut ws);
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .unwrap();
    while ws.read().is_ok() {}
    wait_for("the close event", || {
        wss.stderr().contains("connection closed")
    });
    wss.signal("TERM");
    assert_eq!(wss.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let stderr = wss.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["ts", "level", "msg"] {
            assert!(line[key].is_string(), "{key} missing in {line}");
        }
    }
    let find = |msg: &str| {
        lines
            .iter()
            .find(|l| l["msg"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} line in:\n{stderr}"))
    };
    let accepted = find("connection accepted");
    assert_eq!(accepted["path"], "/ws");
    assert!(accepted["remote"]
        .as_str()
        .is_some_and(|r| r.starts_with("127.0.0.1:")));
    let open = find("connection open");
    assert!(open["conn"].is_u64(), "{open}");
    assert_eq!(open["path"], "/ws");
    let closed = find("connection closed");
    assert_eq!(closed["conn"], open["conn"]);
    assert_eq!(closed["code"], 1000);
    assert_eq!(closed["remote"], open["remote"]);
    assert_eq!(find("server open")["path"], "/ws");
    assert!(
        !stderr.contains("sekrit-query"),
        "a query string reached the log"
    );

    // A refusal is an event too (the address filter refuses 127.0.0.1 here).
    let mut wss = Wss::start(&[
        "--handler",
        "echo",
        "--allow",
        "10.0.0.0/8",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    assert_eq!(support::refused_status(&wss.ws_url("")), 403);
    wait_for("the refusal logged", || wss.stderr().contains("refused"));
    wss.signal("TERM");
    assert_eq!(wss.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let refused: serde_json::Value = wss
        .stderr()
        .lines()
        .find(|l| l.contains("connection refused"))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .expect("a refusal line");
    assert_eq!(refused["path"], "/ws");
    assert_eq!(refused["level"], "DEBUG");
    assert!(refused["remote"]
        .as_str()
        .is_some_and(|r| r.starts_with("127.0.0.1:")));
}

/// Spawns `wss` with `env` and `args`, returns the path of its readiness line.
fn ready_path(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut child = Command::new(Wss::exe())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    let (_, path) = support::parse_ready_line(line.trim_end())
        .unwrap_or_else(|| panic!("no readiness line: {line:?}"));
    path
}

#[test]
fn flags_come_from_wss_environment_variables_and_flags_win() {
    let env = [
        ("WSS_HANDLER", "echo"),
        ("WSS_HOST", "127.0.0.1"),
        ("WSS_PORT", "0"),
        ("WSS_PATH", "/from-env"),
    ];
    assert_eq!(ready_path(&env, &[]), "/from-env");
    assert_eq!(ready_path(&env, &["--path", "/from-flag"]), "/from-flag");
}

// ---- A real Prometheus scrapes `wss --metrics` ----

fn tool_installed(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn prometheus_missing() -> bool {
    if tool_installed("prometheus") && tool_installed("promtool") {
        return false;
    }
    assert!(
        std::env::var("WSS_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
        "prometheus is not installed and WSS_REQUIRE_PROMETHEUS=1"
    );
    let _ = std::io::stderr().write_all(
        b"\n!!! SKIPPED: prometheus/promtool are not installed, so this metrics test did not \
          run. bash scripts/setup-test-peers installs them; WSS_REQUIRE_PROMETHEUS=1 makes \
          this a failure. !!!\n",
    );
    true
}

/// A private Prometheus on a free loopback port scraping `target` every second.
struct Prometheus {
    child: std::process::Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("wss-ops-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: wss\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, addr, dir }
    }

    /// The value of an instant query that yields one sample, or `None`.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let reply = try_get(self.addr, &format!("/api/v1/query?query={encoded}"))?;
        if reply.status != 200 {
            return None;
        }
        // Prometheus answers HTTP/1.1 chunked or not; the JSON object is the body's core.
        let body = &reply.body[reply.body.find('{')?..=reply.body.rfind('}')?];
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let result = v["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    fn wait_value(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql);
            if last == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{promql}: wanted {want}, Prometheus says {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_the_metrics_of_a_scripted_exchange() {
    if prometheus_missing() {
        return;
    }
    let wss = Wss::start(&["--handler", "echo", "--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&wss);
    // Three clients: each sends two texts and one binary; one leaves with 1000, one with
    // 4001, one stays.
    let mut clients: Vec<Client> = (0..3).map(|_| connect(&wss.ws_url(""))).collect();
    for ws in &mut clients {
        for m in [
            Message::text("a"),
            Message::text("bb"),
            Message::binary(vec![1, 2, 3]),
        ] {
            ws.send(m.clone()).unwrap();
            assert_eq!(next_message(ws), m);
        }
    }
    for code in [CloseCode::Normal, CloseCode::Library(4001)] {
        let mut ws = clients.pop().unwrap();
        ws.close(Some(CloseFrame {
            code,
            reason: "".into(),
        }))
        .unwrap();
        while ws.read().is_ok() {}
    }

    let scrape = get(metrics, "/metrics");
    assert_eq!(scrape.status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.body.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let prometheus = Prometheus::start(metrics);
    prometheus.wait_value("up{job=\"wss\"}", 1.0);
    prometheus.wait_value("wss_connections{path=\"/ws\"}", 1.0);
    prometheus.wait_value("wss_connections_opened_total{path=\"/ws\"}", 3.0);
    prometheus.wait_value(
        "wss_messages_received_total{path=\"/ws\",type=\"text\"}",
        6.0,
    );
    prometheus.wait_value(
        "wss_messages_received_total{path=\"/ws\",type=\"binary\"}",
        3.0,
    );
    prometheus.wait_value("wss_messages_sent_total{type=\"text\"}", 6.0);
    prometheus.wait_value("wss_closes_total{code=\"1000\",by=\"client\"}", 1.0);
    prometheus.wait_value("wss_closes_total{code=\"other\",by=\"client\"}", 1.0);
    prometheus.wait_value(
        "wss_handshakes_total{path=\"/ws\",result=\"accepted\"}",
        3.0,
    );
    drop(clients);
}

#[test]
fn readyz_is_503_while_the_configured_redis_is_unreachable() {
    let Some(redis) = support::redis::Redis::start() else {
        return;
    };
    let wss = Wss::start(&[
        "--handler",
        "broadcast",
        "--metrics",
        "127.0.0.1:0",
        "--redis",
        &redis.url(),
    ]);
    let metrics = metrics_addr(&wss);
    wait_for("ready with Redis up", || {
        get(metrics, "/readyz").status == 200
    });
    let scrape = get(metrics, "/metrics").body;
    assert!(scrape.contains("\nwss_broker_up 1\n"), "{scrape}");
    assert!(scrape.contains("\nwss_broker_lost_total 0\n"), "{scrape}");
    // A relayed message goes through Redis and comes back: its lag is measured.
    let mut ws = connect(&wss.ws_url(""));
    let lag_count = || {
        get(metrics, "/metrics")
            .body
            .lines()
            .find_map(|l| l.strip_prefix("wss_broker_lag_seconds_count "))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    assert_eq!(lag_count(), Some(0));
    for _ in 0..5 {
        ws.send(Message::text("through redis")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for("a lag measured", || lag_count().is_some_and(|n| n >= 1));
    drop(redis);
    wait_for("/readyz 503 with Redis gone", || {
        get(metrics, "/readyz").status == 503
    });
    let ready = get(metrics, "/readyz");
    assert_eq!(ready.body, "broker unreachable\n");
    assert_eq!(get(metrics, "/healthz").status, 200, "alive all the same");
    assert!(get(metrics, "/metrics")
        .body
        .contains("\nwss_broker_up 0\n"));
}
