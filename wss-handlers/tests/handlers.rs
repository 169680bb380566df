//! The handlers over real loopback sockets, each on an in-process server, with tungstenite as
//! the client.

mod support;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    assert_silent, close, connect, next_json, next_message, refused_status, try_connect,
};
use tungstenite::Message;
use wss_handlers::{AddressFilter, Chat, Echo, LogFile, Uppercase};
use wss_server::{
    BuiltinFile, ConnectionEvent, DataType, ServerHandler, ServerOptions, WebServer,
    WebServerOptions, WebSocketServer,
};

/// A web server with one WebSocket server at `/t`, stopped on drop.
struct Served {
    web: WebServer,
    wss: WebSocketServer,
}

impl Served {
    fn start<H: ServerHandler>(handler: H, data_type: DataType) -> Served {
        Self::start_on("127.0.0.1", handler, data_type).expect("start on 127.0.0.1")
    }

    fn start_on<H: ServerHandler>(host: &str, handler: H, data_type: DataType) -> Option<Served> {
        let web = WebServer::start(WebServerOptions::default().with_address(host, 0)).ok()?;
        let options = ServerOptions::default()
            .with_path("/t")
            .with_data_type(data_type);
        let wss = WebSocketServer::new(&web, handler, options).expect("new server");
        Some(Served { web, wss })
    }

    fn url(&self, query: &str) -> String {
        format!("ws://{}/t{query}", self.web.local_addr())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.web.stop();
    }
}

#[test]
fn echo_keeps_text_as_text_and_binary_as_binary() {
    let s = Served::start(Echo, DataType::Text);
    let mut ws = connect(&s.url(""));
    ws.send(Message::text("héllo")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("héllo"));
    let bytes = vec![0u8, 0xff, 0x80, b'a'];
    ws.send(Message::binary(bytes.clone())).unwrap();
    assert_eq!(next_message(&mut ws), Message::binary(bytes));
    ws.send(Message::text("")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text(""));
    close(ws);
}

#[test]
fn uppercase_applies_full_unicode_rules() {
    let s = Served::start(Uppercase, DataType::Text);
    let mut ws = connect(&s.url(""));
    ws.send(Message::text("straße, ǆ, ﬁn")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("STRASSE, Ǆ, FIN"));
    ws.send(Message::binary(b"abc".to_vec())).unwrap();
    assert_eq!(next_message(&mut ws), Message::binary(b"ABC".to_vec()));
    close(ws);
}

#[test]
fn chat_welcomes_announces_relays_and_says_goodbye() {
    let s = Served::start(Chat::new(), DataType::Object);
    let mut ann = connect(&s.url("?name=Ann"));
    let welcome = next_json(&mut ann);
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["name"], "Ann");
    assert_eq!(welcome["text"], "Welcome to the chat!");
    assert_eq!(welcome["users"], json!(["Ann"]));

    let mut bob = connect(&s.url("?name=Bob"));
    let welcome = next_json(&mut bob);
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["users"], json!(["Ann", "Bob"]));
    assert_eq!(welcome["count"], 2);
    let joined = next_json(&mut ann);
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["name"], "Bob");

    let xss = "<img src=x onerror=alert(1)>";
    bob.send(Message::text(
        json!({"type": "message", "text": xss}).to_string(),
    ))
    .unwrap();
    let relayed = next_json(&mut ann);
    assert_eq!(
        relayed,
        json!({"type": "message", "name": "Bob", "text": xss})
    );
    // The sender does not get its own message back.
    assert_silent(&mut bob, Duration::from_millis(200));

    close(bob);
    let left = next_json(&mut ann);
    assert_eq!(left["type"], "left");
    assert_eq!(left["name"], "Bob");
    assert_eq!(left["users"], json!(["Ann"]));
    close(ann);
}

#[test]
fn chat_cleans_names_and_keeps_them_unique() {
    let s = Served::start(Chat::new(), DataType::Object);
    // "\u{7}Ann\u{202E}" percent-encoded, then the same name again, then no name at all.
    let mut a = connect(&s.url("?name=%07Ann%E2%80%AE"));
    assert_eq!(next_json(&mut a)["name"], "Ann");
    let mut b = connect(&s.url("?name=ann"));
    assert_eq!(next_json(&mut b)["name"], "ann 2");
    let long = "x".repeat(200);
    let mut c = connect(&s.url(&format!("?name={long}")));
    assert_eq!(
        next_json(&mut c)["name"].as_str().unwrap().chars().count(),
        32
    );
    let mut d = connect(&s.url(""));
    assert_eq!(next_json(&mut d)["name"], "Guest 1");
    for ws in [a, b, c, d] {
        close(ws);
    }
}

#[test]
fn chat_drops_control_characters_and_empty_messages() {
    let s = Served::start(Chat::new(), DataType::Object);
    let mut a = connect(&s.url("?name=A"));
    next_json(&mut a);
    let mut b = connect(&s.url("?name=B"));
    next_json(&mut b);
    next_json(&mut a); // B joined
    b.send(Message::text(
        json!({"type": "message", "text": " \u{0} "}).to_string(),
    ))
    .unwrap();
    b.send(Message::text(
        json!({"type": "message", "text": "x\u{1b}y"}).to_string(),
    ))
    .unwrap();
    let m = next_json(&mut a);
    assert_eq!(
        m["text"], "xy",
        "the empty message was dropped, the escape removed"
    );
    close(a);
    close(b);
}

fn filter_status(filter: AddressFilter<Echo>) -> Result<(), u16> {
    let s = Served::start(filter, DataType::Text);
    match try_connect(&s.url(""), &[]) {
        Ok(ws) => {
            close(ws);
            Ok(())
        }
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn address_filter_refuses_unlisted_addresses_with_403() {
    let only_10 = AddressFilter::new(Echo).allow("10.0.0.0/8".parse().unwrap());
    assert_eq!(filter_status(only_10), Err(403));
    let denied = AddressFilter::new(Echo)
        .allow("127.0.0.0/8".parse().unwrap())
        .deny("127.0.0.1".parse().unwrap());
    assert_eq!(filter_status(denied), Err(403));
}

#[test]
fn address_filter_lets_listed_addresses_through_to_the_inner_handler() {
    let s = Served::start(
        AddressFilter::new(Echo).allow("127.0.0.0/8".parse().unwrap()),
        DataType::Text,
    );
    let mut ws = connect(&s.url(""));
    ws.send(Message::text("through")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("through"));
    close(ws);
    assert_eq!(refused_count(&s), 0);
}

fn refused_count(s: &Served) -> u64 {
    let handler = s
        .wss
        .handler::<AddressFilter<Echo>>()
        .expect("the filter is the server handler");
    handler.with(|f| f.refused()).expect("not busy")
}

#[test]
fn address_filter_counts_refusals() {
    let s = Served::start(
        AddressFilter::new(Echo).deny("127.0.0.0/8".parse().unwrap()),
        DataType::Text,
    );
    assert_eq!(refused_status(&s.url("")), 403);
    assert_eq!(refused_status(&s.url("")), 403);
    assert_eq!(refused_count(&s), 2);
}

#[test]
fn address_filter_handles_ipv6_peers() {
    let allow_v6 = AddressFilter::new(Echo).allow("::1/128".parse().unwrap());
    let Some(s) = Served::start_on("::1", allow_v6, DataType::Text) else {
        eprintln!("SKIPPED address_filter_handles_ipv6_peers: no IPv6 loopback here");
        return;
    };
    let mut ws = connect(&s.url(""));
    ws.send(Message::text("v6")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("v6"));
    close(ws);
    drop(s);

    let only_v4 = AddressFilter::new(Echo).allow("0.0.0.0/0".parse().unwrap());
    let s = Served::start_on("::1", only_v4, DataType::Text).expect("::1 worked before");
    assert_eq!(refused_status(&s.url("")), 403);
    let ip: IpAddr = "::1".parse().unwrap();
    assert!(s.web.local_addr().ip() == ip);
}

/// Refuses connections whose URL asks for it, to see refusals in the log.
struct Picky;

impl ServerHandler for Picky {
    type Connection = wss_handlers::EchoConnection;
    fn on_connection(
        &mut self,
        wss: &WebSocketServer,
        event: &ConnectionEvent,
    ) -> Option<Self::Connection> {
        if event.request.query.get_exact("refuse").is_some() {
            None
        } else {
            Echo.on_connection(wss, event)
        }
    }
}

fn scratch_dir(tag: &str) -> support::webdriver::TempDir {
    support::webdriver::TempDir::new(tag)
}

fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_timestamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 25
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b[24] == b' '
}

#[test]
fn log_file_writes_one_line_per_event_and_no_secrets() {
    let dir = scratch_dir("logfile");
    let path = dir.0.join("events.log");
    let s = Served::start(LogFile::open(&path, Picky).unwrap(), DataType::Text);
    wait_for_line(&path, "server.open");

    let mut ws = support::try_connect(
        &s.url("?token=s3cr3t"),
        &[("Cookie", "sid=c00kie"), ("Authorization", "Bearer t0ken")],
    )
    .unwrap();
    ws.send(Message::text("payload-text")).unwrap();
    next_message(&mut ws);
    close(ws);
    wait_for_line(&path, "code=1000");

    assert_eq!(refused_status(&s.url("?refuse")), 403);
    wait_for_line(&path, "connection.refuse");

    // A client that vanishes without a close frame: an error line, then 1006.
    let ws = connect(&s.url(""));
    drop(ws);
    wait_for_line(&path, "code=1006");

    s.wss.terminate(None);
    assert!(s.wss.wait_terminated(Some(Duration::from_secs(5))));
    let text = wait_for_line(&path, "server.terminate");

    for secret in ["s3cr3t", "c00kie", "t0ken", "payload-text", "token="] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
    }
    let events: Vec<&str> = text
        .lines()
        .map(|l| {
            assert!(is_timestamped(l), "bad line {l:?}");
            l.split(' ').nth(1).unwrap()
        })
        .collect();
    assert_eq!(
        events,
        [
            "server.open",
            "connection.accept",
            "connection.open",
            "connection.terminate",
            "connection.refuse",
            "connection.accept",
            "connection.open",
            "connection.error",
            "connection.terminate",
            "server.terminate",
        ],
        "{text}"
    );
    let accept = text.lines().nth(1).unwrap();
    assert!(accept.contains(" remote=127.0.0.1:"), "{accept}");
    assert!(accept.ends_with(" path=\"/t\""), "{accept}");
    let open = text.lines().nth(2).unwrap();
    assert!(open.contains(" id="), "{open}");
    let error = text.lines().nth(7).unwrap();
    assert!(error.contains("error=\"1006 "), "{error}");
}

#[test]
fn log_file_follows_rotation() {
    let dir = scratch_dir("logrotate");
    let path = dir.0.join("events.log");
    let rotated = dir.0.join("events.log.1");
    let s = Served::start(LogFile::open(&path, Echo).unwrap(), DataType::Text);
    close(connect(&s.url("")));
    wait_for_line(&path, "connection.terminate");
    std::fs::rename(&path, &rotated).unwrap();
    close(connect(&s.url("")));
    let fresh = wait_for_line(&path, "connection.terminate");
    assert!(
        !fresh.contains("server.open"),
        "old lines stay in the rotated file"
    );
    assert!(std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("server.open"));
    std::fs::remove_file(&path).unwrap();
    close(connect(&s.url("")));
    wait_for_line(&path, "connection.open");
}

#[test]
fn log_file_fails_at_open_on_an_unwritable_path() {
    let dir = scratch_dir("lognodir");
    assert!(LogFile::open(dir.0.join("missing/dir/x.log"), Echo).is_err());
}

/// The session cookie the web server hands out on a plain GET.
fn session_cookie(web: &WebServer) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(web.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        web.local_addr()
    )
    .unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let line = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no Set-Cookie in {response}"));
    let value = line.split_once(':').unwrap().1.trim();
    value.split(';').next().unwrap().to_string()
}

#[test]
fn chat_remembers_a_name_in_the_web_session() {
    let web = WebServer::start(
        WebServerOptions::default()
            .with_address("127.0.0.1", 0)
            .with_scalable_session(true)
            // Only a served page opens a session (a 404 does not), as the chat page would.
            .with_file("/", BuiltinFile::new("text/html", &b"chat"[..])),
    )
    .unwrap();
    let options = ServerOptions::default()
        .with_path("/t")
        .with_data_type(DataType::Object);
    let wss = WebSocketServer::new(&web, Chat::new(), options).unwrap();
    let s = Served { web, wss };
    let cookie = session_cookie(&s.web);

    let mut first = try_connect(&s.url("?name=Kim"), &[("Cookie", &cookie)]).unwrap();
    assert_eq!(next_json(&mut first)["name"], "Kim");
    close(first);

    // Same session, no name in the URL: the session's name is used.
    let mut again = try_connect(&s.url(""), &[("Cookie", &cookie)]).unwrap();
    assert_eq!(next_json(&mut again)["name"], "Kim");
    // Another browser (no cookie) is a guest.
    let mut other = connect(&s.url(""));
    assert_eq!(next_json(&mut other)["name"], "Guest 1");
    close(again);
    close(other);
}
