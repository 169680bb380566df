//! The chat page in a real browser: headless Chromium driven through chromedriver.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (or `WSS_CHROMIUM` and
//! `WSS_CHROMEDRIVER` pointing at the binaries). Without them the test is skipped with a loud
//! message, except under CI (`CI` set) or with `WSS_REQUIRE_BROWSER=1`, where it fails.

mod support;

use std::io::Write;
use std::time::Duration;

use support::webdriver::{Browser, BrowserTools, ENTER};
use support::Wss;

const WAIT: Duration = Duration::from_secs(20);

fn tools_or_skip() -> Option<BrowserTools> {
    let tools = BrowserTools::find();
    if tools.is_none() {
        let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
            || std::env::var_os("WSS_REQUIRE_BROWSER").is_some();
        assert!(
            !required,
            "the browser test is required here but Chromium or chromedriver is missing: \
             apt-get install -y chromium chromium-driver"
        );
        // Written to the real stderr, not through eprintln!, which the test harness captures.
        let _ = writeln!(
            std::io::stderr(),
            "\n{bar}\n!! SKIPPED: the real-browser chat test needs Chromium and chromedriver.\n\
             !! Install them with: apt-get install -y chromium chromium-driver\n{bar}\n",
            bar = "!".repeat(78)
        );
    }
    tools
}

/// JavaScript that is true once some line of the message list satisfies `cond` (an
/// expression over `li`, the list item, and `t`, its text).
fn any_line(cond: &str) -> String {
    format!(
        "return Array.from(document.querySelectorAll('#messages li'))\
         .some(li => {{ const t = li.textContent; return {cond}; }});"
    )
}

fn js_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

const ONLINE: &str = "return document.getElementById('state').dataset.state === 'online';";
const OFFLINE: &str = "return document.getElementById('state').dataset.state === 'offline';";

#[test]
fn two_pages_join_talk_and_leave_in_chromium() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let mut server = Wss::start(&["--handler", "chat", "--shutdown-timeout", "1"]);
    let base = server.http_url();
    let browser = Browser::start(&tools);

    browser.goto(&format!("{base}?name=Alice"));
    browser.wait_for("Alice online", ONLINE, WAIT);
    browser.wait_for(
        "Alice's welcome",
        &any_line("t.includes('Welcome to the chat!')"),
        WAIT,
    );
    let alice = browser.current_tab();

    let bob = browser.new_tab();
    browser.switch_to(&bob);
    browser.goto(&format!("{base}?name=Bob"));
    browser.wait_for("Bob online", ONLINE, WAIT);
    // Bob sees Alice, who was there first, among the people in the room.
    browser.wait_for(
        "Alice in Bob's people list",
        "return Array.from(document.querySelectorAll('#people-list li'))\
         .some(li => li.textContent.includes('Alice'));",
        WAIT,
    );

    // Bob's page is the browser's second load of the chat: its script and style are
    // revalidated (304), not downloaded again.
    assert_revalidated(&loads(&browser), &["/chat.js", "/chat.css"]);

    browser.switch_to(&alice);
    browser.wait_for(
        "Bob joined, seen by Alice",
        &any_line("t.startsWith('Bob joined')"),
        WAIT,
    );

    // Enter sends.
    browser.switch_to(&bob);
    browser.type_into("#composer-input", &format!("Hello Alice{ENTER}"));
    browser.wait_for(
        "Bob's own bubble",
        &any_line("li.classList.contains('mine') && t.includes('Hello Alice')"),
        WAIT,
    );
    let cleared = browser.eval("return document.getElementById('composer-input').value;");
    assert_eq!(cleared, "", "the input is cleared after sending");

    browser.switch_to(&alice);
    browser.wait_for(
        "Bob's message at Alice",
        &any_line(
            "li.classList.contains('message') && !li.classList.contains('mine') \
                   && li.querySelector('.name').textContent === 'Bob' \
                   && li.querySelector('.text').textContent === 'Hello Alice'",
        ),
        WAIT,
    );

    // Markup in a message is shown as text and runs nothing.
    let xss = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    browser.switch_to(&bob);
    browser.type_into("#composer-input", &format!("{xss}{ENTER}"));
    browser.switch_to(&alice);
    browser.wait_for(
        "the markup shown as text at Alice",
        &any_line(&format!(
            "li.querySelector('.text') && li.querySelector('.text').textContent === {}",
            js_str(xss)
        )),
        WAIT,
    );
    std::thread::sleep(Duration::from_millis(300));
    let injected = browser.eval(
        "return { pwned: typeof window.__pwned, imgs: document.querySelectorAll('#messages img').length, \
                  scripts: document.querySelectorAll('#messages script').length };",
    );
    assert_eq!(
        injected["pwned"], "undefined",
        "the payload ran: {injected}"
    );
    assert_eq!(injected["imgs"], 0, "{injected}");
    assert_eq!(injected["scripts"], 0, "{injected}");

    // Closing Bob's page tells Alice that Bob left.
    browser.switch_to(&bob);
    browser.close_tab();
    browser.switch_to(&alice);
    browser.wait_for(
        "Bob left, seen by Alice",
        &any_line("t.startsWith('Bob left')"),
        WAIT,
    );

    // A server restart: the page shows it is offline, then reconnects by itself.
    let port = server.addr.port().to_string();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("wss exits on SIGTERM");
    assert!(status.success());
    browser.wait_for("Alice offline", OFFLINE, WAIT);
    let _restarted = Wss::start(&["--handler", "chat", "--port", &port]);
    browser.wait_for("Alice back online", ONLINE, WAIT);
    browser.wait_for(
        "a second welcome after the reconnect",
        "return Array.from(document.querySelectorAll('#messages li'))\
         .filter(li => li.textContent.includes('Welcome to the chat!')).length >= 2;",
        WAIT,
    );
}

/// Writes `NAME.html` and `NAME.js` into `dir`: a page whose script opens a socket to `target`
/// and records the outcome in `window.__outcome`.
fn write_probe(dir: &std::path::Path, name: &str, target: &str) {
    std::fs::write(
        dir.join(format!("{name}.html")),
        format!("<!doctype html><title>probe</title><script src=\"/{name}.js\"></script>"),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{name}.js")),
        format!(
            "window.__outcome = 'pending';\n\
             const ws = new WebSocket({});\n\
             ws.onopen = () => {{ window.__outcome = 'open'; ws.close(); }};\n\
             ws.onerror = () => {{ if (window.__outcome === 'pending') window.__outcome = 'refused'; }};\n",
            js_str(target)
        ),
    )
    .unwrap();
}

fn outcome_from(browser: &Browser, page: &str) -> String {
    browser.goto(page);
    browser.wait_for(
        "the probe's outcome",
        "return window.__outcome === 'open' || window.__outcome === 'refused';",
        WAIT,
    );
    browser
        .eval("return window.__outcome;")
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_page_from_another_origin_needs_allow_origin() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let dir = support::webdriver::TempDir::new("foreign-origin");
    // Another port is another origin: this server only hands out the probe pages.
    let foreign = Wss::start(&["--handler", "echo", "--root", dir.0.to_str().unwrap()]);
    let origin = foreign.http_url().trim_end_matches('/').to_string();
    let guarded = Wss::start(&["--handler", "echo"]);
    let open = Wss::start(&["--handler", "echo", "--allow-origin", &origin]);
    write_probe(&dir.0, "guarded", &guarded.ws_url(""));
    write_probe(&dir.0, "open", &open.ws_url(""));

    let browser = Browser::start(&tools);
    assert_eq!(
        outcome_from(&browser, &format!("{origin}/guarded.html")),
        "refused",
        "a cross-origin socket under the default policy"
    );
    assert_eq!(
        outcome_from(&browser, &format!("{origin}/open.html")),
        "open",
        "{origin} is allowed by --allow-origin"
    );
}

/// Opens `base?name=NAME` in a new tab (the first page uses the current one) and waits until
/// the page is online; returns the tab.
fn join(browser: &Browser, base: &str, name: &str, first: bool) -> String {
    if !first {
        let tab = browser.new_tab();
        browser.switch_to(&tab);
    }
    browser.goto(&format!("{base}?name={name}"));
    browser.wait_for(&format!("{name} online"), ONLINE, WAIT);
    browser.current_tab()
}

/// `from` says `text`; waits until `to` shows it as `from_name`'s message, text intact.
fn say(browser: &Browser, from: &str, to: &str, from_name: &str, text: &str) {
    browser.switch_to(from);
    browser.type_into("#composer-input", &format!("{text}{ENTER}"));
    browser.switch_to(to);
    browser.wait_for(
        &format!("{from_name}'s message arriving"),
        &any_line(&format!(
            "li.classList.contains('message') && !li.classList.contains('mine') \
             && li.querySelector('.name').textContent === {} \
             && li.querySelector('.text').textContent === {}",
            js_str(from_name),
            js_str(text)
        )),
        WAIT,
    );
}

/// The page's socket as its read-only debug handle (`window.__wssChat`) reports it.
fn socket_info(browser: &Browser) -> serde_json::Value {
    browser.eval(
        "const c = window.__wssChat; \
         return c ? { url: c.url, extensions: c.extensions, readyState: c.readyState } : null;",
    )
}

#[test]
fn two_pages_chat_over_https_and_wss_in_chromium() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let pki = support::tls::PkiFiles::new();
    let tls_args = pki.args();
    let mut args = vec!["--handler", "chat"];
    args.extend(tls_args.iter().map(String::as_str));
    let server = Wss::start(&args);
    assert_eq!(server.scheme, "wss");
    let base = server.http_url();
    assert!(base.starts_with("https://"), "{base}");
    // The test CA is not in the browser's store; this switch is for this test only.
    let browser = Browser::start_with(&tools, &["--ignore-certificate-errors"]);

    let alice = join(&browser, &base, "Alice", true);
    let info = socket_info(&browser);
    let url = info["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with(&format!("wss://{}/", server.addr)),
        "the page's socket: {info}"
    );
    let bob = join(&browser, &base, "Bob", false);
    browser.switch_to(&alice);
    browser.wait_for(
        "Bob joined, seen by Alice",
        &any_line("t.startsWith('Bob joined')"),
        WAIT,
    );
    say(&browser, &bob, &alice, "Bob", "Hello Alice, over TLS");
    say(&browser, &alice, &bob, "Alice", "Hello Bob, encrypted too");
}

#[test]
fn chromium_negotiates_permessage_deflate_and_messages_flow() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let server = Wss::start(&["--handler", "chat"]);
    let plain = Wss::start(&["--handler", "chat", "--deflate", "off"]);
    let browser = Browser::start(&tools);

    let base = server.http_url();
    let alice = join(&browser, &base, "Alice", true);
    let info = socket_info(&browser);
    let extensions = info["extensions"].as_str().unwrap_or_default();
    assert!(
        extensions.starts_with("permessage-deflate"),
        "deflate is on by default, yet the browser's socket has {info}"
    );
    let bob = join(&browser, &base, "Bob", false);
    // Long and repetitive: well over the 64-byte threshold, so it travels compressed both
    // ways (Chromium compresses what it sends, the server what it relays).
    let long = "compressible chat text, ".repeat(20);
    let long = long.trim_end();
    say(&browser, &bob, &alice, "Bob", long);
    say(&browser, &alice, &bob, "Alice", "short reply");
    say(&browser, &alice, &bob, "Alice", &format!("{long} (again)"));

    // The same browser against --deflate off: nothing negotiated, the chat still works.
    browser.switch_to(&alice);
    join(&browser, &plain.http_url(), "Carol", false);
    let info = socket_info(&browser);
    assert_eq!(info["extensions"], "", "--deflate off: {info}");
}

/// Status, transfer and body sizes of the page and each file it loaded, as the browser's
/// Resource Timing reports them.
fn loads(browser: &Browser) -> serde_json::Value {
    browser.eval(
        "const all = performance.getEntriesByType('navigation')\
            .concat(performance.getEntriesByType('resource'));\
         return all.map(e => ({ name: e.name, status: e.responseStatus, \
            transfer: e.transferSize, body: e.encodedBodySize, type: e.initiatorType }));",
    )
}

/// Resource Timing reports a `transferSize` of exactly 300 for a response taken from the
/// cache after the server answered `304` (the spec's "validated" cache mode), and body + 300
/// for a full download. Asserts every load of `names` was revalidated.
fn assert_revalidated(entries: &serde_json::Value, names: &[&str]) {
    for name in names {
        let entry = entries
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|e| e["name"].as_str().is_some_and(|n| n.ends_with(name)))
            })
            .unwrap_or_else(|| panic!("no load of {name}: {entries}"));
        assert_eq!(
            entry["transfer"], 300,
            "{name} was downloaded again instead of revalidated with a 304: {entry}"
        );
    }
}

#[test]
fn a_second_load_of_the_chat_page_is_revalidated_with_304s() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let server = Wss::start(&["--handler", "chat"]);
    let page = format!("{}?name=Alice", server.http_url());
    let browser = Browser::start(&tools);
    browser.goto(&page);
    browser.wait_for("Alice online", ONLINE, WAIT);
    let first = loads(&browser);
    for entry in first.as_array().into_iter().flatten() {
        if entry["status"] == 200 {
            assert!(
                entry["transfer"].as_u64() > Some(300),
                "a first load comes from the network: {entry}"
            );
        }
    }
    browser.goto(&page);
    browser.wait_for("Alice online again", ONLINE, WAIT);
    assert_revalidated(&loads(&browser), &["/?name=Alice", "/chat.js", "/chat.css"]);
}
