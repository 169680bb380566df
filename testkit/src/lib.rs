//! Test support shared by the wss crates' integration tests (dev-only, never published).
//!
//! - [`pki`]: one test CA and its certificates ([`TestPki`]), made at test time with rcgen.
//! - [`redis`]: a private `redis-server` on a free loopback port ([`RedisServer`]), skipped
//!   loudly when it is not installed unless `WSS_REQUIRE_REDIS=1`.
//! - [`raw`]: a raw WebSocket client over a `std::net::TcpStream`, for tests that must see or
//!   write the exact bytes on the wire.
//! - [`peers`]: where the Python `websockets` and Node `ws` interop peers are, skipped loudly
//!   when missing unless `WSS_REQUIRE_INTEROP=1`.
//!
//! It depends on no crate of the workspace, so any of them can use it without a cycle; what
//! needs a workspace type (a wss-net server config, a tungstenite client) stays in the tests
//! of the crate that has it.
#![forbid(unsafe_code)]

pub mod peers;
pub mod pki;
pub mod raw;
pub mod redis;

pub use pki::TestPki;
pub use redis::RedisServer;
