//! Header fields as the peer sent them, with case-insensitive lookup.

use std::fmt;
use std::ops::Range;

/// An ordered list of `(name, value)` string pairs kept in one text buffer.
///
/// A request carries a dozen short headers; two allocations for all of them (the text and the
/// index) instead of two per field keep the handshake cheap.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct PairList {
    text: String,
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl PairList {
    pub(crate) fn with_capacity(text: usize, pairs: usize) -> Self {
        PairList {
            text: String::with_capacity(text),
            spans: Vec::with_capacity(pairs),
        }
    }

    pub(crate) fn push(&mut self, name: &str, value: &str) {
        let name_start = self.text.len();
        self.text.push_str(name);
        let value_start = self.text.len();
        self.text.push_str(value);
        self.spans
            .push((name_start..value_start, value_start..self.text.len()));
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the name at `span` is `name` (ASCII case ignored). A name of another length is
    /// told apart on its span alone: a lookup walks a dozen fields, most differ in length.
    fn name_is(&self, span: &Range<usize>, name: &str) -> bool {
        span.len() == name.len()
            && self
                .text
                .as_bytes()
                .get(span.clone())
                .is_some_and(|b| b.eq_ignore_ascii_case(name.as_bytes()))
    }

    fn text_at(&self, span: &Range<usize>) -> &str {
        self.text.get(span.clone()).unwrap_or_default()
    }

    /// The first value named `name` (ASCII case ignored).
    pub(crate) fn first_named(&self, name: &str) -> Option<&str> {
        self.spans
            .iter()
            .find(|(n, _)| self.name_is(n, name))
            .map(|(_, v)| self.text_at(v))
    }

    /// Every value named `name` (ASCII case ignored), in order.
    pub(crate) fn values_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans
            .iter()
            .filter(move |(n, _)| self.name_is(n, name))
            .map(move |(_, v)| self.text_at(v))
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + '_ {
        self.spans.iter().map(move |(name, value)| {
            (
                self.text.get(name.clone()).unwrap_or_default(),
                self.text.get(value.clone()).unwrap_or_default(),
            )
        })
    }
}

/// The header fields of a request or response, in arrival order, with their names as sent.
///
/// Names keep the case the peer used (`headers.iter()` shows `Sec-WebSocket-Key` or
/// `sec-websocket-key`, whichever arrived), while every lookup ignores ASCII case, as HTTP
/// requires. A name that appears several times keeps all its values, in order.
///
/// ```
/// use wss_proto::handshake::Headers;
///
/// let mut headers = Headers::new();
/// headers.append("Connection", "keep-alive, Upgrade");
/// headers.append("X-Tag", "a");
/// headers.append("x-tag", "b");
/// assert!(headers.contains_token("connection", "upgrade"));
/// assert_eq!(headers.get("X-TAG"), Some("a"));
/// assert_eq!(headers.get_all("x-tag").collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: PairList,
}

impl Headers {
    /// An empty header list (to build a request by hand, in tests or in a client).
    pub fn new() -> Self {
        Headers::default()
    }

    pub(crate) fn with_capacity(text: usize, fields: usize) -> Self {
        Headers {
            list: PairList::with_capacity(text, fields),
        }
    }

    /// Adds a field at the end, after any field of the same name.
    pub fn append(&mut self, name: &str, value: &str) {
        self.list.push(name, value);
    }

    /// The first value of the field `name` (ASCII case ignored), if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list.first_named(name)
    }

    /// Every value of the field `name` (ASCII case ignored), in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.list.values_named(name)
    }

    /// How many fields named `name` (ASCII case ignored) arrived.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// Whether any field named `name` carries `token` in its comma-separated list, ASCII case
    /// ignored: `Connection: keep-alive, Upgrade` contains the token `upgrade`.
    ///
    /// Lists split over repeated fields count too, since HTTP treats them as one list.
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(split_list)
            .any(|item| item.eq_ignore_ascii_case(token))
    }

    /// All `(name, value)` pairs in arrival order, names as sent.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + '_ {
        self.list.iter()
    }

    /// Number of fields (a repeated name counts once per occurrence).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no fields at all.
    pub fn is_empty(&self) -> bool {
        self.list.len() == 0
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.append(name, value);
        }
        headers
    }
}

/// Splits a `#list` field value on commas, trimming optional whitespace and skipping the empty
/// elements that the list grammar allows (`a, , b`).
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|item| item.trim_matches([' ', '\t']))
        .filter(|item| !item.is_empty())
}

/// Like [`split_list`], but commas inside a quoted string do not split: extension parameters
/// may be quoted (RFC 6455 §9.1), so a comma there belongs to the value.
pub(crate) fn split_quoted_list(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                items.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value.get(start..).unwrap_or_default());
    items
        .into_iter()
        .map(|item| item.trim_matches([' ', '\t']))
        .filter(|item| !item.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_list_skips_empty_elements_and_whitespace() {
        assert_eq!(split_list(" a ,\t, b,").collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn split_quoted_list_keeps_commas_inside_quotes() {
        assert_eq!(
            split_quoted_list(r#"x; p="a,b", y; q="c\",d", z"#),
            vec![r#"x; p="a,b""#, r#"y; q="c\",d""#, "z"]
        );
    }

    #[test]
    fn token_lookup_spans_repeated_fields() {
        let headers: Headers = [("Connection", "keep-alive"), ("connection", "Upgrade")]
            .into_iter()
            .collect();
        assert!(headers.contains_token("CONNECTION", "upgrade"));
        assert!(!headers.contains_token("Connection", "close"));
    }
}
