//! Plain GET/HEAD: files from the static root (never outside it), then the built-in files.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::options::BuiltinFile;

/// A file found for a request path.
pub(crate) struct Found {
    pub(crate) content_type: Cow<'static, str>,
    pub(crate) body: Cow<'static, [u8]>,
    pub(crate) headers: Vec<(String, String)>,
}

pub(crate) struct Statics {
    /// Canonical root folder.
    root: Option<PathBuf>,
    files: BTreeMap<String, BuiltinFile>,
    max_file_size: u64,
}

impl Statics {
    /// `root` must already be canonical (see `WebServer::start`).
    pub(crate) fn new(
        root: Option<PathBuf>,
        files: BTreeMap<String, BuiltinFile>,
        max_file_size: u64,
    ) -> Self {
        Statics {
            root,
            files,
            max_file_size,
        }
    }

    /// The file for the raw request path (undecoded, no query), or `None` (404).
    pub(crate) fn lookup(&self, raw_path: &str) -> Option<Found> {
        let decoded = percent_decode(raw_path)?;
        if let Some(found) = self
            .root
            .as_deref()
            .and_then(|r| self.find_in_root(r, &decoded))
        {
            return Some(found);
        }
        let file = self.files.get(&decoded)?;
        Some(Found {
            content_type: Cow::Owned(file.content_type.clone()),
            body: file.body.clone(),
            headers: file.headers.clone(),
        })
    }

    fn find_in_root(&self, root: &Path, decoded: &str) -> Option<Found> {
        let relative = safe_relative(decoded)?;
        let mut path = root.join(relative);
        // Symlinks may point anywhere: judge the real target, not the name.
        let mut real = fs::canonicalize(&path).ok()?;
        if !real.starts_with(root) {
            return None;
        }
        if real.is_dir() {
            path = real.join("index.html");
            real = fs::canonicalize(&path).ok()?;
            if !real.starts_with(root) {
                return None;
            }
        }
        let file = fs::File::open(&real).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > self.max_file_size {
            return None;
        }
        let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        // The size was checked above, but the file may grow while we read it.
        file.take(self.max_file_size).read_to_end(&mut body).ok()?;
        Some(Found {
            content_type: Cow::Borrowed(content_type(&real)),
            body: Cow::Owned(body),
            headers: Vec::new(),
        })
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
fn percent_decode(raw: &str) -> Option<String> {
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

/// `Content-Type` by file extension; unknown ones are served as bytes.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wss-statics-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).expect("temp dir");
        fs::write(dir.join("index.html"), "<p>home</p>").expect("write");
        fs::write(dir.join("sub/app.js"), "x()").expect("write");
        fs::canonicalize(&dir).expect("canonical")
    }

    #[test]
    fn serves_files_with_their_content_type() {
        let root = temp_root("serve");
        let s = Statics::new(Some(root), BTreeMap::new(), 1 << 20);
        let f = s.lookup("/sub/app.js").expect("found");
        assert_eq!(f.content_type, "text/javascript; charset=utf-8");
        assert_eq!(&*f.body, b"x()");
        let f = s.lookup("/").expect("index");
        assert_eq!(f.content_type, "text/html; charset=utf-8");
        assert!(s.lookup("/missing.txt").is_none());
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
        let s = Statics::new(Some(root.clone()), BTreeMap::new(), 1 << 20);
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
            assert!(s.lookup(&path).is_none(), "{path} must be 404");
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
        let s = Statics::new(Some(root), BTreeMap::new(), 1 << 20);
        assert!(s.lookup("/link.html").is_none());
        assert!(s.lookup("/linkdir/index.html").is_none());
        assert!(s.lookup("/linkdir/").is_none());
        assert!(s.lookup("/inside.html").is_some());
    }

    #[test]
    fn builtin_files_fill_in_for_the_root() {
        let root = temp_root("builtin");
        let mut files = BTreeMap::new();
        files.insert(
            "/chat.js".to_string(),
            BuiltinFile::new("text/javascript", &b"chat"[..]).with_header("X-A", "1"),
        );
        files.insert(
            "/sub/app.js".to_string(),
            BuiltinFile::new("text/javascript", &b"builtin"[..]),
        );
        let s = Statics::new(Some(root), files.clone(), 1 << 20);
        let f = s.lookup("/chat.js").expect("builtin");
        assert_eq!(&*f.body, b"chat");
        assert_eq!(f.headers, vec![("X-A".to_string(), "1".to_string())]);
        assert_eq!(&*s.lookup("/sub/app.js").expect("root wins").body, b"x()");
        let s = Statics::new(None, files, 1 << 20);
        assert_eq!(&*s.lookup("/sub/app.js").expect("no root").body, b"builtin");
    }

    #[test]
    fn files_over_the_size_limit_are_not_served() {
        let root = temp_root("size");
        let s = Statics::new(Some(root), BTreeMap::new(), 3);
        assert!(s.lookup("/index.html").is_none());
        assert!(s.lookup("/sub/app.js").is_some());
    }
}
