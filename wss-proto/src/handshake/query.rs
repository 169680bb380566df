//! The query string of a request target, decoded into key/value pairs.

use std::borrow::Cow;
use std::fmt;

use super::headers::PairList;

/// The decoded query of a request: `?key1=value1&key2=value2`.
///
/// Decoding follows HTML forms (`application/x-www-form-urlencoded`), which is what browsers
/// and most clients produce:
/// - keys and values are percent-decoded, then read as UTF-8 (an invalid sequence becomes
///   U+FFFD rather than failing the request);
/// - `+` is a space;
/// - a `%` not followed by two hex digits stays as it is;
/// - a key without `=` gets the value `""`; empty pieces (`a=1&&b=2`) are skipped;
/// - a repeated key keeps all its values, in order.
///
/// Lookups are exact (case-sensitive), as in URLs.
///
/// ```
/// use wss_proto::handshake::Query;
///
/// let query = Query::parse("name=ryan+o%27neil&tag=a&tag=b&flag");
/// assert_eq!(query.get("name"), Some("ryan o'neil"));
/// assert_eq!(query.get_all("tag").collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(query.get("flag"), Some(""));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Query {
    list: PairList,
}

impl Query {
    /// Decodes a raw query string (the part after `?`, without any `#fragment`).
    pub fn parse(raw: &str) -> Query {
        let mut list = PairList::with_capacity(raw.len(), 0);
        for piece in raw.split('&').filter(|piece| !piece.is_empty()) {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            list.push(&decode(key), &decode(value));
        }
        Query { list }
    }

    /// The first value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.list.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every value of `key`, in the order they appear.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.list
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// All decoded `(key, value)` pairs in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + '_ {
        self.list.iter()
    }

    /// Number of pairs (a repeated key counts once per occurrence).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the query has no pairs (no `?`, or only `&` separators after it).
    pub fn is_empty(&self) -> bool {
        self.list.len() == 0
    }
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Percent-decodes one key or value, `+` meaning space. Borrows when there is nothing to do,
/// which is the common case for short ASCII parameters.
fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(err) => Cow::Owned(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(decode("abc"), Cow::Borrowed("abc")));
    }

    #[test]
    fn escape_cut_short_at_the_end_stays_literal() {
        assert_eq!(decode("a%4"), "a%4");
        assert_eq!(decode("a%"), "a%");
        assert_eq!(decode("%%41"), "%A");
    }
}
