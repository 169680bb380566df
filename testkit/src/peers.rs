//! The interop peers the tests drive (Python `websockets` in the repository's `.venv`, Node
//! `ws` under `interop/node_modules`), found where `scripts/setup-test-peers` installs them.
//!
//! A missing peer skips its test loudly, or fails it when `WSS_REQUIRE_INTEROP=1` (CI), so a
//! run that skipped cannot pass for one that ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (testkit sits in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace root")
        .to_path_buf()
}

/// The venv's Python when it can `import websockets`, or why not.
pub fn python_websockets() -> Result<PathBuf, String> {
    let python = repo_root().join(".venv/bin/python");
    if !python.exists() {
        return Err(format!("no venv python at {}", python.display()));
    }
    let probe = Command::new(&python)
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => Ok(python),
        _ => Err("the venv has no `websockets` package".to_string()),
    }
}

/// The `interop` folder when Node and its `ws` package are there, or why not.
pub fn node_ws() -> Result<PathBuf, String> {
    let interop = repo_root().join("interop");
    if !interop.join("node_modules/ws/package.json").exists() {
        return Err("interop/node_modules/ws is not installed".to_string());
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(interop),
        _ => Err("`node` is not on PATH".to_string()),
    }
}

/// `Some(peer)` when it is installed; otherwise says so on the process's stderr (the test
/// harness captures `eprintln!`, and a skip nobody sees would pass for a run) and returns
/// `None`, or panics when `WSS_REQUIRE_INTEROP=1`.
pub fn require<T>(name: &str, peer: Result<T, String>) -> Option<T> {
    let why = match peer {
        Ok(found) => return Some(found),
        Err(why) => why,
    };
    let message = format!("{name}: {why}; run scripts/setup-test-peers");
    if std::env::var("WSS_REQUIRE_INTEROP").is_ok_and(|v| v == "1") {
        panic!("{message} (WSS_REQUIRE_INTEROP=1 makes this a failure)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n"
    );
    None
}
