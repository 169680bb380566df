//! What a URL path names under the static root, and the files ready to serve: resolution
//! (never outside the root), reading and hashing. The reading functions do disk I/O and run
//! only on the file thread (see `files.rs`), never on a network thread.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

use crate::options::BuiltinFile;

/// A file ready to serve from memory: its bytes, their validators and the headers that go with
/// them, all computed once when the file is read.
#[derive(Debug)]
pub(crate) struct Entity {
    pub(crate) body: Vec<u8>,
    /// Strong validator: a hash of the bytes, quoted (`"…"`).
    pub(crate) etag: String,
    /// Whole seconds (what `Last-Modified` can say).
    pub(crate) modified: SystemTime,
    /// `modified` as an IMF-fixdate.
    pub(crate) last_modified: String,
    /// `Content-Type`, `X-Content-Type-Options`, `Cache-Control` and the file's own extra
    /// headers, each name once.
    pub(crate) headers: Vec<(String, String)>,
    /// An HTML page: the only kind of file that opens a session.
    pub(crate) html: bool,
    /// Where a root file came from, to revalidate it; `None` for built-in files.
    pub(crate) source: Option<Source>,
}

/// The identity of a root file on disk when it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) real: PathBuf,
    pub(crate) len: u64,
    pub(crate) mtime: Option<SystemTime>,
}

/// Header names the server writes itself: a file's own headers cannot add a second one.
const SERVER_OWNED: [&str; 8] = [
    "content-length",
    "date",
    "etag",
    "last-modified",
    "set-cookie",
    "transfer-encoding",
    "connection",
    "allow",
];

impl Entity {
    /// Builds an entity: `content_type`, `nosniff` and `cache_control` are the defaults that a
    /// same-named header in `extra` replaces; server-owned headers in `extra` are dropped.
    pub(crate) fn new(
        body: Vec<u8>,
        modified: SystemTime,
        content_type: &str,
        cache_control: &str,
        extra: &[(String, String)],
        source: Option<Source>,
    ) -> Entity {
        let etag = etag_of(&body);
        let modified = whole_seconds(modified);
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), content_type.into()),
            ("X-Content-Type-Options".into(), "nosniff".into()),
            ("Cache-Control".into(), cache_control.into()),
        ];
        for (name, value) in extra {
            let lower = name.to_ascii_lowercase();
            if SERVER_OWNED.contains(&lower.as_str()) {
                continue;
            }
            match headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some(slot) => slot.1.clone_from(value),
                None => headers.push((name.clone(), value.clone())),
            }
        }
        let html = headers.first().is_some_and(|(_, v)| is_html(v));
        Entity {
            body,
            etag,
            last_modified: httpdate::fmt_http_date(modified),
            modified,
            headers,
            html,
            source,
        }
    }

    /// A built-in file; `since` stands in for its modification time (the server's start).
    pub(crate) fn builtin(file: &BuiltinFile, since: SystemTime) -> Entity {
        Entity::new(
            file.body.to_vec(),
            since,
            &file.content_type,
            "no-cache",
            &file.headers,
            None,
        )
    }

    /// Reads a root file found by [`resolve`]. `None` if it vanished, grew past the limit or
    /// cannot be read.
    pub(crate) fn read(source: Source, max_file_size: u64, cache_control: &str) -> Option<Entity> {
        let file = fs::File::open(&source.real).ok()?;
        let mut body = Vec::with_capacity(usize::try_from(source.len).unwrap_or(0));
        // The size was checked, but the file may grow while we read it.
        file.take(max_file_size.saturating_add(1))
            .read_to_end(&mut body)
            .ok()?;
        if body.len() as u64 > max_file_size {
            return None;
        }
        let modified = source.mtime.unwrap_or_else(SystemTime::now);
        let content_type = content_type(&source.real);
        Some(Entity::new(
            body,
            modified,
            &content_type,
            cache_control,
            &[],
            Some(source),
        ))
    }

    /// Bytes this entity holds, for the cache's budget (with a fixed allowance for the rest).
    pub(crate) fn cost(&self) -> usize {
        self.body.len() + 512
    }
}

fn is_html(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "text/html" || essence == "application/xhtml+xml"
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A strong entity tag: the first 128 bits of the SHA-1 of the bytes, in hex, quoted.
fn etag_of(body: &[u8]) -> String {
    let digest = Sha1::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for b in digest.iter().take(16) {
        tag.push(char::from(HEX[usize::from(b >> 4)]));
        tag.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    tag.push('"');
    tag
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What a decoded URL path names under the root.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// A file to serve (a folder's `index.html` for a path ending in `/`).
    File(Source),
    /// A folder named without its trailing slash: redirect to the path with one.
    Folder,
    /// Nothing to serve (no such file, outside the root, too large, a folder without index).
    Missing,
}

/// Resolves `decoded` (a percent-decoded URL path) under the canonical `root`. Does disk I/O.
pub(crate) fn resolve(root: &Path, decoded: &str, max_file_size: u64) -> Resolved {
    let Some(relative) = safe_relative(decoded) else {
        return Resolved::Missing;
    };
    // Symlinks may point anywhere: judge the real target, not the name.
    let Some(mut real) = fs::canonicalize(root.join(relative))
        .ok()
        .filter(|r| r.starts_with(root))
    else {
        return Resolved::Missing;
    };
    if real.is_dir() {
        if !decoded.ends_with('/') {
            return Resolved::Folder;
        }
        match fs::canonicalize(real.join("index.html"))
            .ok()
            .filter(|r| r.starts_with(root))
        {
            Some(index) => real = index,
            None => return Resolved::Missing,
        }
    }
    match fs::metadata(&real) {
        Ok(meta) if meta.is_file() && meta.len() <= max_file_size => Resolved::File(Source {
            real,
            len: meta.len(),
            mtime: meta.modified().ok(),
        }),
        _ => Resolved::Missing,
    }
}

/// The path below the root for a decoded URL path, or `None` when it tries to leave it
/// (`..`), names a drive or absolute path, or holds characters no file name here needs.
fn safe_relative(decoded: &str) -> Option<PathBuf> {
    if !decoded.starts_with('/') || decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return None,
            s => {
                // A segment such as `C:` would make `join` replace the root on Windows.
                let mut comps = Path::new(s).components();
                match (comps.next(), comps.next()) {
                    (Some(Component::Normal(c)), None) => out.push(c),
                    _ => return None,
                }
            }
        }
    }
    Some(out)
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `Content-Type` by file extension from mime_guess's table; text types are declared UTF-8,
/// unknown extensions are served as bytes.
pub(crate) fn content_type(path: &Path) -> String {
    let guess = mime_guess::from_path(path).first_raw();
    match guess {
        Some(t) if t.starts_with("text/") || t == "application/javascript" => {
            format!("{t}; charset=utf-8")
        }
        Some(t) => t.to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wss-statics-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).expect("temp dir");
        fs::create_dir_all(dir.join("empty")).expect("temp dir");
        fs::write(dir.join("index.html"), "<p>home</p>").expect("write");
        fs::write(dir.join("sub/app.js"), "x()").expect("write");
        fs::write(dir.join("sub/index.html"), "<p>sub</p>").expect("write");
        fs::canonicalize(&dir).expect("canonical")
    }

    fn lookup(root: &Path, raw: &str, max: u64) -> Option<Entity> {
        let decoded = percent_decode(raw)?;
        match resolve(root, &decoded, max) {
            Resolved::File(source) => Entity::read(source, max, "no-cache"),
            _ => None,
        }
    }

    #[test]
    fn serves_files_with_their_content_type() {
        let root = temp_root("serve");
        let f = lookup(&root, "/sub/app.js", 1 << 20).expect("found");
        assert_eq!(f.headers[0].1, "text/javascript; charset=utf-8");
        assert_eq!(f.body, b"x()");
        assert!(!f.html);
        let f = lookup(&root, "/", 1 << 20).expect("index");
        assert_eq!(f.headers[0].1, "text/html; charset=utf-8");
        assert!(f.html);
        assert!(lookup(&root, "/missing.txt", 1 << 20).is_none());
    }

    #[test]
    fn folders_redirect_without_slash_and_serve_their_index_with_it() {
        let root = temp_root("folders");
        assert!(matches!(resolve(&root, "/sub", 1 << 20), Resolved::Folder));
        assert!(matches!(
            resolve(&root, "/empty", 1 << 20),
            Resolved::Folder
        ));
        match resolve(&root, "/sub/", 1 << 20) {
            Resolved::File(s) => assert!(s.real.ends_with("sub/index.html")),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(resolve(&root, "/empty/", 1 << 20), Resolved::Missing),
            "no listing"
        );
    }

    #[test]
    fn content_types_come_from_the_table() {
        for (name, want) in [
            ("a.html", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.png", "image/png"),
            ("a.wasm", "application/wasm"),
            ("a.avif", "image/avif"),
            ("a.mp4", "video/mp4"),
            ("a.unknownext", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
        assert!(content_type(Path::new("a.js")).contains("javascript"));
    }

    #[test]
    fn entity_headers_are_one_of_each_and_the_etag_is_the_content_hash() {
        let extra = vec![
            (
                "Content-Type".to_string(),
                "text/html; charset=utf-8".to_string(),
            ),
            ("x-content-type-options".to_string(), "nosniff".to_string()),
            ("Cache-Control".to_string(), "max-age=60".to_string()),
            ("Content-Length".to_string(), "1".to_string()),
            ("Date".to_string(), "then".to_string()),
            (
                "Content-Security-Policy".to_string(),
                "default-src 'none'".to_string(),
            ),
        ];
        let e = Entity::new(
            b"abc".to_vec(),
            SystemTime::now(),
            "text/plain",
            "no-cache",
            &extra,
            None,
        );
        let names: Vec<String> = e
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-content-type-options",
                "cache-control",
                "content-security-policy"
            ]
        );
        assert_eq!(e.headers[0].1, "text/html; charset=utf-8");
        assert_eq!(e.headers[2].1, "max-age=60");
        assert!(e.html);
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
        assert_eq!(e.etag, "\"a9993e364706816aba3e25717850c26c\"");
        let same = Entity::new(
            b"abc".to_vec(),
            UNIX_EPOCH,
            "text/plain",
            "no-cache",
            &[],
            None,
        );
        assert_eq!(same.etag, e.etag);
        assert_eq!(same.last_modified, "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn traversal_attempts_are_not_found() {
        let root = temp_root("traversal");
        let outside = root
            .parent()
            .expect("parent")
            .join(format!("wss-secret-{}.txt", std::process::id()));
        fs::write(&outside, "secret").expect("write");
        let name = outside.file_name().and_then(|n| n.to_str()).unwrap_or("x");
        for path in [
            format!("/../{name}"),
            format!("/sub/../../{name}"),
            format!("/%2e%2e/{name}"),
            format!("/%2E%2E/{name}"),
            format!("/sub/%2e%2e/%2e%2e/{name}"),
            format!("/..%2f{name}"),
            format!("/..%5c{name}"),
            format!("/{}", outside.display()),
            format!("//{}", outside.display()),
            "/sub/app.js%00".to_string(),
            "/%zz".to_string(),
        ] {
            assert!(
                lookup(&root, &path, 1 << 20).is_none(),
                "{path} must be 404"
            );
        }
        let _ = fs::remove_file(outside);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_leaving_the_root_are_not_found() {
        let root = temp_root("symlink");
        let outside = temp_root("symlink-target");
        std::os::unix::fs::symlink(outside.join("index.html"), root.join("link.html"))
            .expect("symlink");
        std::os::unix::fs::symlink(&outside, root.join("linkdir")).expect("symlink");
        std::os::unix::fs::symlink(root.join("index.html"), root.join("inside.html"))
            .expect("symlink");
        assert!(lookup(&root, "/link.html", 1 << 20).is_none());
        assert!(lookup(&root, "/linkdir/index.html", 1 << 20).is_none());
        assert!(lookup(&root, "/linkdir/", 1 << 20).is_none());
        assert!(matches!(
            resolve(&root, "/linkdir", 1 << 20),
            Resolved::Missing
        ));
        assert!(lookup(&root, "/inside.html", 1 << 20).is_some());
    }

    #[test]
    fn files_over_the_size_limit_are_not_served() {
        let root = temp_root("size");
        assert!(lookup(&root, "/index.html", 3).is_none());
        assert!(lookup(&root, "/sub/app.js", 3).is_some());
    }
}
