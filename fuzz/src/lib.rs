//! The fuzz targets' drivers; see `drivers.rs`. The replay test in wss-proto includes that
//! file by path, so it must depend on nothing but `wss_proto` and std.
#![warn(missing_docs)]

pub mod drivers;
