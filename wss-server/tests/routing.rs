//! Paths (A6, A7), static files, built-in files and sessions over the wire.

mod support;

use std::time::Duration;

use support::*;
use wss_server::*;

#[test]
fn two_paths_and_a_catch_all_route_correctly() {
    let (la, lb, lc) = (Log::default(), Log::default(), Log::default());
    let web = web();
    let a = WebSocketServer::new(
        &web,
        Rec::new(&la),
        ServerOptions::default().with_path("/a"),
    )
    .unwrap();
    let b = WebSocketServer::new(
        &web,
        Rec::new(&lb),
        ServerOptions::default().with_path("/b"),
    )
    .unwrap();
    let all = WebSocketServer::new(&web, Rec::new(&lc), ServerOptions::default()).unwrap();
    let addr = web.local_addr();
    let _to_a = connect(addr, "/a");
    let _to_b = connect(addr, "/b?x=1");
    let _to_c = connect(addr, "/c");
    let _to_upper_a = connect(addr, "/A");
    assert!(lc.wait_count("open:", 2));
    assert!(la.wait_count("open:", 1) && lb.wait_count("open:", 1));
    assert_eq!(a.connections().len(), 1);
    assert_eq!(b.connections().len(), 1);
    assert_eq!(
        all.connections().len(),
        2,
        "/c and /A (paths are case-sensitive)"
    );
    assert_eq!(a.path(), Some("/a"));
    assert_eq!(all.path(), None);
}

#[test]
fn an_unclaimed_path_answers_404_without_a_catch_all() {
    let log = Log::default();
    let web = web();
    let _a = WebSocketServer::new(
        &web,
        Rec::new(&log),
        ServerOptions::default().with_path("/a"),
    )
    .unwrap();
    let raw = raw_handshake(web.local_addr(), "/b", &[]);
    assert_eq!(status_of(&raw.head), 404);
}

#[test]
fn new_fails_on_a_taken_path_a_second_catch_all_and_bad_input() {
    let log = Log::default();
    let web = web();
    let _a = WebSocketServer::new(
        &web,
        Rec::new(&log),
        ServerOptions::default().with_path("/a"),
    )
    .unwrap();
    let _all = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default()).unwrap();
    let taken = WebSocketServer::new(
        &web,
        Rec::new(&log),
        ServerOptions::default().with_path("/a"),
    );
    assert!(matches!(taken, Err(ServerError::PathTaken(p)) if p == "/a"));
    let second = WebSocketServer::new(&web, Rec::new(&log), ServerOptions::default());
    assert!(matches!(second, Err(ServerError::SecondCatchAll)));
    let bad = WebSocketServer::new(
        &web,
        Rec::new(&log),
        ServerOptions::default().with_path("a"),
    );
    let Err(bad) = bad else {
        panic!("a path without '/' is invalid");
    };
    assert_eq!(bad.errors()[0].err_code, codes::INVALID_PATH);
    assert!("xml".parse::<DataType>().is_err());
    // None of the failed servers ran a callback.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log.count("server-open"), 2);
}

fn root_with_files() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wss-routing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(dir.join("www/style.css"), "p{}").unwrap();
    std::fs::write(dir.join("secret.txt"), "secret").unwrap();
    dir
}

#[test]
fn static_files_are_served_with_content_type_and_never_outside_the_root() {
    let dir = root_with_files();
    let web = web_with(
        WebServerOptions::default()
            .with_root(dir.join("www"))
            .with_file(
                "/chat.js",
                BuiltinFile::new("text/javascript; charset=utf-8", &b"chat()"[..]),
            ),
    );
    let addr = web.local_addr();
    let get = |path: &str| {
        http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
    };
    let page = get("/");
    assert_eq!(status_of(&page), 200, "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8"));
    assert!(page.contains("X-Content-Type-Options: nosniff"));
    assert!(page.ends_with("<h1>hi</h1>"));
    assert!(get("/style.css").contains("Content-Type: text/css"));
    assert!(get("/chat.js").ends_with("chat()"));
    for bad in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%5csecret.txt",
        &format!("{}", dir.join("secret.txt").display()),
        "/missing",
    ] {
        let r = get(bad);
        assert_eq!(status_of(&r), 404, "{bad}: {r}");
        assert!(!r.contains("secret\r") && !r.ends_with("secret"), "{bad}");
    }
    let head = http(addr, "HEAD /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status_of(&head), 200);
    assert!(head.contains("Content-Length: 3"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    let post = http(
        addr,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&post), 405);
}

#[test]
fn builtin_files_are_served_without_a_root() {
    let web = web_with(
        WebServerOptions::default().with_file(
            "/",
            BuiltinFile::new("text/html; charset=utf-8", &b"<p>chat</p>"[..])
                .with_header("Content-Security-Policy", "default-src 'self'"),
        ),
    );
    let r = http(
        web.local_addr(),
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(status_of(&r), 200);
    assert!(r.contains("Content-Security-Policy: default-src 'self'"));
    assert!(r.ends_with("<p>chat</p>"));
}

fn cookie_of(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .map(str::to_owned)
}

#[test]
fn sessions_set_a_safe_cookie_and_reach_on_connection() {
    let log = Log::default();
    let web = web_with(
        WebServerOptions::default()
            .with_scalable_session(true)
            .with_file("/", BuiltinFile::new("text/html", &b"x"[..])),
    );
    let wss = WebSocketServer::new(
        &web,
        Rec::new(&log).accept(|_, e| {
            if let Some(s) = &e.request.session {
                s.update_storage(|v| v["seen"] = true.into());
            }
            true
        }),
        ServerOptions::default().with_path("/ws"),
    )
    .unwrap();
    assert!(wss.scalable_session());
    let addr = web.local_addr();
    let page = http(addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let cookie = cookie_of(&page).expect("a session cookie");
    assert!(cookie.starts_with("4DSID_wss="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let id = pair.split_once('=').unwrap().1.to_owned();
    assert!(id.len() >= 32);
    let raw = raw_handshake(addr, "/ws", &[&format!("Cookie: {pair}")]);
    assert_eq!(status_of(&raw.head), 101);
    assert!(cookie_of(&raw.head).is_none(), "a known session is kept");
    log.wait_for("open:").unwrap();
    assert_eq!(web.session(&id).unwrap().storage()["seen"], true);
    // An id the store does not know is replaced, never adopted.
    let forged = http(
        addr,
        "GET / HTTP/1.1\r\nHost: localhost\r\nCookie: 4DSID_wss=attacker\r\n\r\n",
    );
    let fresh = cookie_of(&forged).expect("a new cookie");
    assert!(!fresh.contains("attacker"));
    assert!(web.session("attacker").is_none());
}

#[test]
fn only_a_page_served_to_a_get_opens_a_session() {
    let web = web_with(
        WebServerOptions::default()
            .with_scalable_session(true)
            .with_file("/", BuiltinFile::new("text/html", &b"x"[..]))
            .with_file("/app.js", BuiltinFile::new("text/javascript", &b"x()"[..])),
    );
    let addr = web.local_addr();
    let missing = http(addr, "GET /favicon.ico HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status_of(&missing), 404);
    assert!(
        cookie_of(&missing).is_none(),
        "a 404 set a cookie: {missing}"
    );
    let post = http(
        addr,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&post), 405);
    assert!(cookie_of(&post).is_none(), "a 405 set a cookie: {post}");
    // A script, and a HEAD of the page: served, but nothing a handler could use.
    let script = http(addr, "GET /app.js HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status_of(&script), 200);
    assert!(
        cookie_of(&script).is_none(),
        "a script set a cookie: {script}"
    );
    let head = http(addr, "HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status_of(&head), 200);
    assert!(cookie_of(&head).is_none(), "a HEAD set a cookie: {head}");
    let page = http(addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status_of(&page), 200);
    let cookie = cookie_of(&page).expect("the page opens a session");
    let id = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert!(web.session(id).is_some());
}

#[test]
fn an_upgrade_without_a_known_cookie_opens_no_session() {
    let log = Log::default();
    let web = web_with(
        WebServerOptions::default()
            .with_scalable_session(true)
            .with_file("/", BuiltinFile::new("text/html", &b"x"[..])),
    );
    let _wss = WebSocketServer::new(
        &web,
        Rec::new(&log).accept(|_, e| {
            assert!(e.request.session.is_none(), "a session without a cookie");
            true
        }),
        ServerOptions::default().with_path("/ws"),
    )
    .unwrap();
    let addr = web.local_addr();
    // No cookie, then a cookie the store never issued: neither opens a session (a client that
    // keeps no cookies must not add one to the store per connection).
    for extra in [&[][..], &["Cookie: 4DSID_wss=unknown"][..]] {
        let raw = raw_handshake(addr, "/ws", extra);
        assert_eq!(status_of(&raw.head), 101);
        assert!(cookie_of(&raw.head).is_none(), "{}", raw.head);
    }
    assert!(log.wait_count("open:", 2), "{:?}", log.lines());
    assert!(web.session("unknown").is_none());
}
