//! Cleaning of what chat users type, done on the server so that no client (ours or a hostile
//! one) can push invisible, layout-breaking or oversized names and texts to the others.

/// Longest user name, in characters, after cleaning.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest chat message, in characters, after cleaning; longer ones are cut.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Characters that change how the text around them is shown without being visible themselves:
/// bidirectional overrides and isolates (they can make a name read backwards), zero-width
/// characters and the byte-order mark (they make two names look the same).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A user name fit to show to others: control and invisible formatting characters removed,
/// runs of white space folded to one space, trimmed, and cut to [`MAX_NAME_CHARS`] characters.
/// The result may be empty; the caller then picks a default name.
///
/// ```
/// use wss_handlers::chat::clean_name;
/// assert_eq!(clean_name("  Ada\u{0007}  Lovelace\n"), "Ada Lovelace");
/// assert_eq!(clean_name("\u{202E}evil"), "evil");
/// ```
pub fn clean_name(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if c.is_control() || is_invisible_format(c) {
            continue;
        }
        let needed = if pending_space { 2 } else { 1 };
        if chars + needed > MAX_NAME_CHARS {
            break;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// A chat message fit to relay: control characters removed except line breaks and tabs,
/// invisible formatting characters removed, surrounding white space trimmed, cut to
/// [`MAX_TEXT_CHARS`] characters. The result may be empty; the caller then drops the message.
///
/// ```
/// use wss_handlers::chat::clean_text;
/// assert_eq!(clean_text(" two\nlines\u{0000} "), "two\nlines");
/// ```
pub fn clean_text(raw: &str) -> String {
    let kept = raw
        .trim()
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !(c.is_control() || is_invisible_format(c)));
    let mut out: String = kept.take(MAX_TEXT_CHARS).collect();
    // Removing characters can expose new outer white space ("\u{0}  x").
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    let start = out.len() - out.trim_start().len();
    out.drain(..start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_control_and_invisible_characters() {
        assert_eq!(clean_name("a\u{0}b\u{1b}[31mc"), "ab[31mc");
        assert_eq!(clean_name("x\u{200B}y\u{FEFF}z\u{2066}"), "xyz");
        assert_eq!(clean_name("\u{85}name\u{9f}"), "name");
    }

    #[test]
    fn names_fold_white_space() {
        assert_eq!(clean_name("\t a \r\n  b\u{3000}c "), "a b c");
        assert_eq!(clean_name("   "), "");
    }

    #[test]
    fn names_are_cut_by_characters_not_bytes() {
        let long = "é".repeat(100);
        let cleaned = clean_name(&long);
        assert_eq!(cleaned.chars().count(), MAX_NAME_CHARS);
        // A space that would be the 32nd character is not kept dangling.
        let spaced = format!("{} tail", "a".repeat(31));
        assert_eq!(clean_name(&spaced), "a".repeat(31));
    }

    #[test]
    fn names_keep_ordinary_unicode() {
        assert_eq!(clean_name("Zoë 山田 🙂"), "Zoë 山田 🙂");
    }

    #[test]
    fn texts_keep_line_breaks_and_drop_other_controls() {
        assert_eq!(clean_text("a\r\nb\tc\u{7}"), "a\nb\tc");
        assert_eq!(clean_text("\u{0}  \u{0}"), "");
        assert_eq!(clean_text("\u{202E}  hi"), "hi");
    }

    #[test]
    fn texts_are_cut_to_the_limit() {
        let long = "ü".repeat(MAX_TEXT_CHARS + 50);
        assert_eq!(clean_text(&long).chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn markup_is_left_as_text() {
        // Escaping is the page's job (it uses textContent); the server keeps the text intact.
        let xss = "<img src=x onerror=alert(1)>";
        assert_eq!(clean_text(xss), xss);
    }
}
