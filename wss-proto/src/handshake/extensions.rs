//! The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1): a comma list of extensions, each a
//! name and `;`-separated parameters, a parameter being a token with an optional value that is
//! a token or a quoted string.
//!
//! This module knows no extension in particular; [`deflate`](super::deflate) gives meaning to
//! the parameters of `permessage-deflate`.

use std::fmt;

use super::headers::split_quoted_list;

/// One extension of a `Sec-WebSocket-Extensions` list, as sent: its name and its parameters
/// in order (repeated names kept, so that a caller can refuse duplicates).
///
/// ```
/// use wss_proto::handshake::extensions::Extension;
///
/// let ext = Extension::parse(r#"permessage-deflate; client_max_window_bits; server_max_window_bits="10""#)?;
/// assert_eq!(ext.name(), "permessage-deflate");
/// assert_eq!(ext.params()[0].name, "client_max_window_bits");
/// assert_eq!(ext.params()[0].value, None);
/// assert_eq!(ext.params()[1].value.as_deref(), Some("10")); // quotes removed
/// # Ok::<(), wss_proto::handshake::extensions::ExtensionSyntax>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    name: String,
    params: Vec<ExtensionParam>,
}

/// A parameter of an extension: `name` or `name=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionParam {
    /// The parameter name, as sent.
    pub name: String,
    /// The value with any quoting removed; `None` when the parameter had no `=`.
    pub value: Option<String>,
}

/// How an extension item breaks the RFC 6455 §9.1 grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExtensionSyntax {
    /// A name (of the extension or of a parameter) or an unquoted value is missing or holds a
    /// character that a token may not hold.
    ExpectedToken,
    /// Something other than `;` follows a parameter.
    ExpectedSemicolon,
    /// A quoted value has no closing quote.
    UnterminatedQuote,
    /// A quoted value is not a token once unquoted (§9.1 requires it to be one).
    QuotedValueNotToken,
}

impl fmt::Display for ExtensionSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtensionSyntax::ExpectedToken => "expected a token",
            ExtensionSyntax::ExpectedSemicolon => "expected ';' between parameters",
            ExtensionSyntax::UnterminatedQuote => "quoted value without its closing quote",
            ExtensionSyntax::QuotedValueNotToken => "quoted value is not a token",
        })
    }
}

impl std::error::Error for ExtensionSyntax {}

impl Extension {
    /// Parses one item of the list (no top-level comma): `name *( ";" param )`.
    ///
    /// # Errors
    /// The first grammar rule the item breaks.
    pub fn parse(item: &str) -> Result<Extension, ExtensionSyntax> {
        let mut cursor = Cursor { rest: item };
        cursor.skip_space();
        let name = cursor.token()?;
        let mut params = Vec::new();
        loop {
            cursor.skip_space();
            if cursor.rest.is_empty() {
                break;
            }
            if !cursor.eat(';') {
                return Err(ExtensionSyntax::ExpectedSemicolon);
            }
            cursor.skip_space();
            let param = cursor.token()?;
            cursor.skip_space();
            let value = if cursor.eat('=') {
                cursor.skip_space();
                Some(if cursor.rest.starts_with('"') {
                    cursor.quoted()?
                } else {
                    cursor.token()?.to_owned()
                })
            } else {
                None
            };
            params.push(ExtensionParam {
                name: param.to_owned(),
                value,
            });
        }
        Ok(Extension {
            name: name.to_owned(),
            params,
        })
    }

    /// Parses a whole header value: items separated by commas outside quoted strings, each
    /// parsed on its own so that one bad item spoils only itself. Empty items are skipped.
    pub fn parse_list(value: &str) -> Vec<Result<Extension, ExtensionSyntax>> {
        split_quoted_list(value)
            .into_iter()
            .map(Extension::parse)
            .collect()
    }

    /// The extension name, as sent (compare it ignoring ASCII case).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameters in the order sent.
    pub fn params(&self) -> &[ExtensionParam] {
        &self.params
    }
}

impl fmt::Display for Extension {
    /// Writes the item back in canonical form: `name; p; q=v`, values quoted only when needed
    /// (they never are: a value is always a token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for param in &self.params {
            write!(f, "; {}", param.name)?;
            if let Some(value) = &param.value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn token(&mut self) -> Result<&'a str, ExtensionSyntax> {
        let end = self.rest.find(|c| !is_tchar(c)).unwrap_or(self.rest.len());
        if end == 0 {
            return Err(ExtensionSyntax::ExpectedToken);
        }
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Ok(token)
    }

    /// A quoted string starting at the opening quote; returns it unescaped.
    fn quoted(&mut self) -> Result<String, ExtensionSyntax> {
        let mut value = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            let c = match c {
                '"' => {
                    self.rest = self.rest.get(i + 1..).unwrap_or_default();
                    if value.is_empty() || !value.chars().all(is_tchar) {
                        return Err(ExtensionSyntax::QuotedValueNotToken);
                    }
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => escaped,
                    None => break,
                },
                c => c,
            };
            value.push(c);
        }
        Err(ExtensionSyntax::UnterminatedQuote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, value: Option<&str>) -> ExtensionParam {
        ExtensionParam {
            name: name.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn parameters_with_and_without_values() {
        let ext = Extension::parse("x ;a; b = 1 ;c=\"t\\ok\"").unwrap();
        assert_eq!(ext.name(), "x");
        assert_eq!(
            ext.params(),
            [
                param("a", None),
                param("b", Some("1")),
                param("c", Some("tok"))
            ]
        );
        assert_eq!(ext.to_string(), "x; a; b=1; c=tok");
    }

    #[test]
    fn grammar_errors() {
        for (item, err) in [
            ("", ExtensionSyntax::ExpectedToken),
            ("x;", ExtensionSyntax::ExpectedToken),
            ("x; =1", ExtensionSyntax::ExpectedToken),
            ("x; a=", ExtensionSyntax::ExpectedToken),
            ("x a", ExtensionSyntax::ExpectedSemicolon),
            ("x; a=1 2", ExtensionSyntax::ExpectedSemicolon),
            ("x; a=\"1", ExtensionSyntax::UnterminatedQuote),
            ("x; a=\"1\\", ExtensionSyntax::UnterminatedQuote),
            ("x; a=\"1 2\"", ExtensionSyntax::QuotedValueNotToken),
            ("x; a=\"\"", ExtensionSyntax::QuotedValueNotToken),
            ("x; a=\"é\"", ExtensionSyntax::QuotedValueNotToken),
        ] {
            assert_eq!(Extension::parse(item), Err(err), "{item:?}");
        }
    }

    #[test]
    fn list_items_fail_alone() {
        let list = Extension::parse_list("a; p=\"x,y\", b c, d");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0], Err(ExtensionSyntax::QuotedValueNotToken));
        assert_eq!(list[1], Err(ExtensionSyntax::ExpectedSemicolon));
        assert_eq!(list[2].as_ref().map(Extension::name), Ok("d"));
    }
}
