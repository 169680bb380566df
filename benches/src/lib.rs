//! Benchmarks for wss: the `wsbench` load generator, peer servers to measure against
//! (`tt-echo` on tokio-tungstenite, `fws-echo` on fastwebsockets), and the pieces they share.
//!
//! The load generator is a plain client built for speed: frames are masked once at start-up and
//! written with `writev` straight from that template, every connection of a thread lives in one
//! mio loop, and the steady state allocates nothing per message. It talks only to loopback
//! addresses (see [`target`]) and every run is bounded in time and count.
//!
//! See `benches/README.md` for how to run each tool.
#![warn(missing_docs)]

pub mod broadcast;
pub mod client;
pub mod connect;
pub mod deflate;
pub mod echo;
pub mod error;
pub mod histogram;
pub mod idle;
pub mod pattern;
pub mod peers;
pub mod reader;
pub mod sys;
pub mod target;
pub mod tls;
pub mod window;
pub mod writer;

pub use error::BenchError;
pub use target::Target;
