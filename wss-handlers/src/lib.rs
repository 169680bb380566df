#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address_filter;
mod assets;
mod broadcast;
pub mod chat;
mod cidr;
mod echo;
mod log_file;
mod log_sink;
mod uppercase;

pub use address_filter::AddressFilter;
pub use assets::{Asset, ChatPage, CHAT_CSP};
pub use broadcast::{Broadcast, BroadcastConnection};
pub use chat::{Chat, ChatConnection};
pub use cidr::{CidrError, IpNet};
pub use echo::{Echo, EchoConnection};
pub use log_file::{LogFile, LogReopener, LoggedConnection};
pub use uppercase::{uppercase_data, Uppercase, UppercaseConnection};
