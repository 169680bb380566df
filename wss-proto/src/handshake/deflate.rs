//! Negotiation of `permessage-deflate` (RFC 7692 §5, §7.1): which offer a server accepts,
//! what its `101` says, and what a client makes of that answer.
//!
//! # Server
//!
//! ```
//! use wss_proto::handshake::deflate::{negotiate, DeflateConfig};
//!
//! // What a browser sends (UpgradeRequest::extensions holds these, one offer each).
//! let offers = ["permessage-deflate; client_max_window_bits", "x-webkit-deflate-frame"];
//! let accepted = negotiate(&offers, &DeflateConfig::default());
//! # #[cfg(feature = "deflate")] {
//! let accepted = accepted.expect("acceptable");
//! assert_eq!(accepted.response, "permessage-deflate");
//! // accepted.header() goes into the 101's extra headers, accepted.params into
//! // Config::deflate of the server's Connection.
//! # }
//! ```
//!
//! # Window bits: what this implementation can honour
//!
//! Compression goes through zlib (the `zlib-rs` backend of flate2), whose raw deflate works
//! with windows of 2^9 to 2^15 bytes, not 2^8. Every valid offer is still accepted:
//!
//! - `server_max_window_bits=N` offered: answered with `min(N, config.server_max_window_bits)`.
//!   When that is 8, this end never compresses (every message goes out with RSV1 clear, which
//!   RFC 7692 always allows) rather than use a window larger than agreed.
//! - not offered: the server still compresses with `config.server_max_window_bits` but does
//!   not announce it (a client inflates any window up to 2^15; some clients refuse an
//!   unsolicited `server_max_window_bits`).
//! - `client_max_window_bits` offered: answered with `config.client_max_window_bits` when that
//!   is below 15 (or below the offered value), omitted otherwise. Not offered: never sent, as
//!   §7.1.2.2 requires. Received messages are inflated with the agreed window (at least 2^9,
//!   which decodes 2^8 streams as well).
//!
//! Offers are declined, never answered with an error status: a declined offer only means the
//! connection runs without compression (§7.1: unknown, duplicate or invalid parameters).

use std::fmt;

use super::extensions::{Extension, ExtensionSyntax};
use crate::connection::Role;

/// The registered name of the extension.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The header field carrying offers and the answer.
pub const HEADER_NAME: &str = "Sec-WebSocket-Extensions";

/// What one end is willing to do; on a server, what it accepts from offers, on a client, what
/// it offers ([`client_offer`]). `Default` gives the documented values.
///
/// Fields named `server_*` are about what the server sends, `client_*` about what the client
/// sends, whichever end holds the config.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeflateConfig {
    /// Whether to negotiate at all. Default `true`.
    pub enabled: bool,
    /// Largest LZ77 window (log2 bytes) for what the server sends, 8..=15. Default 15; the
    /// server compresses with it even when the client's offer does not ask for less. With
    /// context takeover it sets what a quiet connection keeps of the server's stream once its
    /// deflate state hibernated (at the idle ping, or on `Connection::hibernate`): 2^N bytes,
    /// at most 8 KiB (8 KiB at 15, 4 KiB at 12, 1 KiB at 10); awake, zlib-rs's compressor takes about 370 KiB
    /// at 15 and 245 KiB at 10. A smaller window compresses chat traffic slightly less (measured
    /// in the README); 8 means the server sends everything uncompressed.
    ///
    /// zlib's `memLevel` is not offered: with the zlib-rs backend it only sizes the symbol
    /// buffers, while the hash table stays 128 KiB, so no setting brings an awake compressor
    /// under that; hibernation is what makes a quiet connection small.
    pub server_max_window_bits: u8,
    /// Largest window asked of the client, 8..=15, when its offer lets us ask. Default 15.
    pub client_max_window_bits: u8,
    /// The server resets its compressor after every message. Default `false`. `true` frees
    /// the per-connection compressor (a shared one is used per thread) and lets a broadcast
    /// be compressed once for all receivers, at the cost of ratio on small messages.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message. Default `false`.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed. Default 64: below it,
    /// deflate's block framing eats most of the gain and the CPU is wasted.
    pub threshold: usize,
    /// zlib compression level, 0..=9, for what this end sends. Default 1: measured on JSON
    /// chat messages with context takeover, level 1 compresses about ten times faster than
    /// level 6 for a ratio of 0.28 instead of 0.20.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            threshold: 64,
            level: 1,
        }
    }
}

/// The agreed parameters of a connection (RFC 7692 "agreed parameters"), plus this end's
/// local knobs (level, threshold). Goes into [`Config::deflate`](crate::Config::deflate).
///
/// Both ends hold the same negotiated values; each picks its own direction by its role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// Largest window the server compresses with, 8..=15.
    pub server_max_window_bits: u8,
    /// Largest window the client compresses with, 8..=15.
    pub client_max_window_bits: u8,
    /// zlib level (0..=9) for what this end sends. Not negotiated.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed. Not negotiated.
    pub threshold: usize,
}

impl Default for DeflateParams {
    /// No parameter negotiated: context takeover both ways, 2^15 windows, the default level
    /// and threshold of [`DeflateConfig`].
    fn default() -> Self {
        let config = DeflateConfig::default();
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: config.level,
            threshold: config.threshold,
        }
    }
}

impl DeflateParams {
    /// `(no_context_takeover, max_window_bits)` of what `role` sends.
    pub fn sender(&self, role: Role) -> (bool, u8) {
        match role {
            Role::Server => (self.server_no_context_takeover, self.server_max_window_bits),
            Role::Client => (self.client_no_context_takeover, self.client_max_window_bits),
        }
    }

    /// Whether a message the server compressed with a fresh compressor and these params
    /// (as [`encode_message_deflated`](crate::frame::encode_message_deflated) does) can be
    /// sent to a receiver that agreed on `receiver`: its server window must be at least as
    /// large. See that function for context-takeover receivers.
    pub fn shares_server_encoding_with(&self, receiver: &DeflateParams) -> bool {
        self.server_max_window_bits <= receiver.server_max_window_bits
    }
}

/// A server's acceptance of one offer: the agreed params and the response value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// What both ends agreed on; pass to [`Config::deflate`](crate::Config::deflate).
    pub params: DeflateParams,
    /// The `Sec-WebSocket-Extensions` value of the `101` (`permessage-deflate; ...`).
    pub response: String,
}

impl Accepted {
    /// The response as a `(name, value)` header pair, for the `101`'s extra headers.
    pub fn header(&self) -> (String, String) {
        (HEADER_NAME.to_owned(), self.response.clone())
    }
}

/// Why an offer was declined, or why a client refuses the server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiationError {
    /// A valid offer, but negotiation is disabled ([`DeflateConfig::enabled`]) or this build
    /// has no compressor (the `deflate` cargo feature is off).
    Disabled,
    /// The item names another extension.
    OtherExtension(String),
    /// The item breaks the header grammar.
    Syntax(ExtensionSyntax),
    /// A parameter RFC 7692 does not define (holds its name).
    UnknownParameter(String),
    /// A parameter given twice (holds its name).
    DuplicateParameter(String),
    /// A parameter whose value is missing, present where none is allowed, or not an integer
    /// 8..=15 without leading zeros (holds its name).
    InvalidValue(String),
    /// Client side: the server answered with a parameter or window size the offer did not
    /// allow (holds the parameter name).
    NotOffered(String),
    /// Client side: the server left out a parameter it must echo to accept the offer.
    Missing(String),
    /// Client side: the server accepted `permessage-deflate` more than once.
    Repeated,
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiationError::Disabled => f.write_str("permessage-deflate is disabled"),
            NegotiationError::OtherExtension(name) => {
                write!(f, "extension {name:?} is not {EXTENSION_NAME}")
            }
            NegotiationError::Syntax(syntax) => write!(f, "malformed extension: {syntax}"),
            NegotiationError::UnknownParameter(p) => write!(f, "unknown parameter {p:?}"),
            NegotiationError::DuplicateParameter(p) => write!(f, "parameter {p:?} given twice"),
            NegotiationError::InvalidValue(p) => write!(f, "invalid value for {p:?}"),
            NegotiationError::NotOffered(p) => write!(f, "answer has {p:?} beyond the offer"),
            NegotiationError::Missing(p) => write!(f, "answer lacks {p:?}"),
            NegotiationError::Repeated => f.write_str("permessage-deflate accepted twice"),
        }
    }
}

impl std::error::Error for NegotiationError {}

/// The parameters of one `permessage-deflate` item, checked against RFC 7692 §7.1 but not yet
/// against what either end wants. A window parameter holds `Some(bits)`, or `Some(None)` for
/// a `client_max_window_bits` without value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeflateOffer {
    /// `server_no_context_takeover` is present.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover` is present.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N`.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits[=N]`.
    pub client_max_window_bits: Option<Option<u8>>,
}

impl DeflateOffer {
    /// Parses one item (`permessage-deflate; ...`), as an offer or an answer: names and
    /// duplicates are checked, values must be what §7.1 allows. Whether a value is required
    /// (`client_max_window_bits` in an answer) is left to the caller.
    ///
    /// # Errors
    /// The first broken rule; the item must then be declined (server) or refused (client).
    pub fn parse(item: &str) -> Result<DeflateOffer, NegotiationError> {
        let ext = Extension::parse(item).map_err(NegotiationError::Syntax)?;
        if !ext.name().eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(NegotiationError::OtherExtension(ext.name().to_owned()));
        }
        let mut offer = DeflateOffer::default();
        let mut seen = [false; 4];
        for param in ext.params() {
            let name = param.name.to_ascii_lowercase();
            let slot = match name.as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(NegotiationError::UnknownParameter(param.name.clone())),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(NegotiationError::DuplicateParameter(param.name.clone()));
            }
            let invalid = || NegotiationError::InvalidValue(param.name.clone());
            let value = param.value.as_deref();
            match slot {
                0 | 1 if value.is_some() => return Err(invalid()),
                0 => offer.server_no_context_takeover = true,
                1 => offer.client_no_context_takeover = true,
                2 => {
                    offer.server_max_window_bits =
                        Some(value.and_then(window_bits).ok_or_else(invalid)?)
                }
                _ => {
                    offer.client_max_window_bits = Some(match value {
                        None => None,
                        Some(v) => Some(window_bits(v).ok_or_else(invalid)?),
                    })
                }
            }
        }
        Ok(offer)
    }
}

/// `8`..=`15`, decimal, no leading zero, no sign (§7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    match value {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

impl DeflateConfig {
    /// The server's answer to one offer item: the agreed params and the response value.
    ///
    /// # Errors
    /// The reason to decline it.
    pub fn accept(&self, item: &str) -> Result<Accepted, NegotiationError> {
        let offer = DeflateOffer::parse(item)?;
        if !self.enabled || !cfg!(feature = "deflate") {
            return Err(NegotiationError::Disabled);
        }
        let server_nct = offer.server_no_context_takeover || self.server_no_context_takeover;
        let client_nct = offer.client_no_context_takeover || self.client_no_context_takeover;
        let ours = self.server_max_window_bits.clamp(8, 15);
        let server_bits = offer.server_max_window_bits.map_or(ours, |n| n.min(ours));
        let client_bits = match offer.client_max_window_bits {
            // Without the parameter in the offer the client may not be able to limit itself,
            // and §7.1.2.2 forbids asking.
            None => 15,
            Some(offered) => offered
                .unwrap_or(15)
                .min(self.client_max_window_bits.clamp(8, 15)),
        };
        let mut response = String::from(EXTENSION_NAME);
        if server_nct {
            response.push_str("; server_no_context_takeover");
        }
        if client_nct {
            response.push_str("; client_no_context_takeover");
        }
        if offer.server_max_window_bits.is_some() {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if offer.client_max_window_bits.is_some() && client_bits < 15 {
            response.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        Ok(Accepted {
            params: DeflateParams {
                server_no_context_takeover: server_nct,
                client_no_context_takeover: client_nct,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits,
                level: self.level.min(9),
                threshold: self.threshold,
            },
            response,
        })
    }
}

/// The server side: accepts the first acceptable `permessage-deflate` offer among `offers`
/// (the items of every `Sec-WebSocket-Extensions` field, in order, as in
/// [`UpgradeRequest::extensions`](super::UpgradeRequest::extensions)). `None`: no offer, all
/// declined, or negotiation disabled; answer without the header and run uncompressed.
pub fn negotiate<S: AsRef<str>>(offers: &[S], config: &DeflateConfig) -> Option<Accepted> {
    offers
        .iter()
        .find_map(|offer| config.accept(offer.as_ref()).ok())
}

/// The client side: the offer value for `Sec-WebSocket-Extensions` built from what this
/// client wants (`client_*` about itself, `server_*` asked of the server). It always carries
/// `client_max_window_bits`, since this end can limit its window when asked.
///
/// ```
/// use wss_proto::handshake::deflate::{client_offer, DeflateConfig};
///
/// assert_eq!(client_offer(&DeflateConfig::default()), "permessage-deflate; client_max_window_bits");
/// ```
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION_NAME);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < 15 {
        let bits = config.server_max_window_bits.max(8);
        offer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    if config.client_max_window_bits < 15 {
        let bits = config.client_max_window_bits.max(8);
        offer.push_str(&format!("; client_max_window_bits={bits}"));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    offer
}

/// The client side: checks the server's answer (one `permessage-deflate` item) against the
/// offer made from `config` with [`client_offer`], and gives the agreed params.
///
/// # Errors
/// An answer the offer did not allow (§7.1): the client must fail the connection.
pub fn accept_response(
    item: &str,
    config: &DeflateConfig,
) -> Result<DeflateParams, NegotiationError> {
    let answer = DeflateOffer::parse(item)?;
    if config.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err(NegotiationError::Missing(
            "server_no_context_takeover".into(),
        ));
    }
    let asked_server =
        (config.server_max_window_bits < 15).then(|| config.server_max_window_bits.max(8));
    let server_bits = match (answer.server_max_window_bits, asked_server) {
        (Some(n), Some(max)) if n > max => {
            return Err(NegotiationError::NotOffered(
                "server_max_window_bits".into(),
            ))
        }
        (None, Some(_)) => return Err(NegotiationError::Missing("server_max_window_bits".into())),
        (Some(n), _) => n,
        (None, None) => 15,
    };
    let our_max = config.client_max_window_bits.clamp(8, 15);
    let client_bits = match answer.client_max_window_bits {
        None => our_max,
        // In an answer the value is required (§7.1.2.2).
        Some(None) => {
            return Err(NegotiationError::InvalidValue(
                "client_max_window_bits".into(),
            ))
        }
        Some(Some(n)) if n > our_max => {
            return Err(NegotiationError::NotOffered(
                "client_max_window_bits".into(),
            ))
        }
        Some(Some(n)) => n,
    };
    Ok(DeflateParams {
        server_no_context_takeover: answer.server_no_context_takeover,
        client_no_context_takeover: answer.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        level: config.level.min(9),
        threshold: config.threshold,
    })
}
