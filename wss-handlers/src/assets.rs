//! The built-in chat page: three files compiled into the binary and served from memory, with
//! the security headers a page that holds a session cookie should carry.

/// The page's Content-Security-Policy. Scripts and styles only from the page's own origin (so no
/// inline script can ever run, even if markup slipped in), sockets only to the same origin
/// (`'self'` covers `ws:`/`wss:` on the page's host and port), nothing else at all.
pub const CHAT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../assets/chat/index.html");
const CHAT_JS: &[u8] = include_bytes!("../assets/chat/chat.js");
const CHAT_CSS: &[u8] = include_bytes!("../assets/chat/chat.css");
/// Marker in index.html replaced by the socket path, so the page needs no inline script to
/// learn where to connect.
const PATH_MARKER: &str = "__WSS_PATH__";

/// One file of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Its URL path, e.g. `/chat.js`.
    pub path: &'static str,
    /// The `Content-Type` to answer with.
    pub content_type: &'static str,
    /// The bytes.
    pub body: Vec<u8>,
}

impl Asset {
    /// The headers to send with this file besides those the web server writes itself
    /// (`Content-Type` from [`content_type`](Self::content_type), `X-Content-Type-Options:
    /// nosniff`, `ETag`, `Last-Modified`, `Date`): the CSP, no framing, no referrer leak, and
    /// `Cache-Control: no-cache`, so the browser revalidates on every load (a `304` while
    /// the binary is the same) and an upgraded binary is picked up at once.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("Content-Security-Policy".into(), CHAT_CSP.into()),
            ("X-Frame-Options".into(), "DENY".into()),
            ("Referrer-Policy".into(), "no-referrer".into()),
            ("Cache-Control".into(), "no-cache".into()),
        ]
    }
}

/// The chat page, ready to serve: `index.html` (also at `/`), `chat.js` and `chat.css`.
///
/// ```
/// use wss_handlers::ChatPage;
/// let page = ChatPage::new("/ws");
/// let index = page.get("/").unwrap();
/// assert_eq!(index.content_type, "text/html; charset=utf-8");
/// assert!(String::from_utf8_lossy(&index.body).contains(r#"content="/ws""#));
/// assert!(page.get("/secret").is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ChatPage {
    assets: Vec<Asset>,
}

impl ChatPage {
    /// The page, told to connect its socket to `ws_path` on the same host and port.
    pub fn new(ws_path: &str) -> ChatPage {
        let index = INDEX_HTML.replace(PATH_MARKER, &escape_attribute(ws_path));
        ChatPage {
            assets: vec![
                Asset {
                    path: "/index.html",
                    content_type: "text/html; charset=utf-8",
                    body: index.into_bytes(),
                },
                Asset {
                    path: "/chat.js",
                    content_type: "text/javascript; charset=utf-8",
                    body: CHAT_JS.to_vec(),
                },
                Asset {
                    path: "/chat.css",
                    content_type: "text/css; charset=utf-8",
                    body: CHAT_CSS.to_vec(),
                },
            ],
        }
    }

    /// The file at `path` (the query, if any, is ignored); `/` is `index.html`.
    pub fn get(&self, path: &str) -> Option<&Asset> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = if path == "/" { "/index.html" } else { path };
        self.assets.iter().find(|a| a.path == path)
    }

    /// Every file of the page.
    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }
}

/// Escapes text for a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_escaped_into_the_page() {
        let page = ChatPage::new("/a\"><script>x</script>");
        let html = String::from_utf8(page.get("/index.html").unwrap().body.clone()).unwrap();
        assert!(html.contains("content=\"/a&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(!html.contains(PATH_MARKER));
    }

    #[test]
    fn page_has_no_inline_script_or_handlers() {
        let page = ChatPage::new("/ws");
        let html = String::from_utf8(page.get("/").unwrap().body.clone()).unwrap();
        // Every <script> has a src and no body.
        for (i, _) in html.match_indices("<script") {
            let tag_end = html[i..].find('>').unwrap() + i;
            assert!(html[i..tag_end].contains("src="), "inline script at {i}");
            assert!(html[tag_end + 1..].starts_with("</script>"));
        }
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices(" on") {
            let name: String = lower[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !lower[i + 3 + name.len()..].starts_with('='),
                "inline handler on{name}"
            );
        }
        assert!(
            !html.contains("style="),
            "inline style (blocked by the CSP)"
        );
    }

    #[test]
    fn script_never_uses_html_sinks() {
        let js = String::from_utf8_lossy(CHAT_JS);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "chat.js uses {sink}");
        }
    }

    #[test]
    fn every_asset_carries_security_headers_once() {
        let page = ChatPage::new("/ws");
        for a in page.assets() {
            let h = a.headers();
            assert!(h
                .iter()
                .any(|(k, v)| k == "Content-Security-Policy" && v == CHAT_CSP));
            // The server writes these itself: listing them here would send them twice.
            for owned in ["content-type", "x-content-type-options", "etag", "date"] {
                assert!(
                    !h.iter().any(|(k, _)| k.eq_ignore_ascii_case(owned)),
                    "{owned} in {}'s headers",
                    a.path
                );
            }
        }
        assert!(CHAT_CSP.contains("script-src 'self'"));
        assert!(!CHAT_CSP.contains("unsafe"));
    }

    #[test]
    fn query_is_ignored_and_unknown_paths_miss() {
        let page = ChatPage::new("/ws");
        assert_eq!(page.get("/?name=x").unwrap().path, "/index.html");
        assert_eq!(
            page.get("/chat.css").unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert!(page.get("/../Cargo.toml").is_none());
        assert!(page.get("").is_none());
    }
}
