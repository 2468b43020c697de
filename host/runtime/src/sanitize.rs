//! Making plugin-supplied text safe to put in a log line or an error.

/// Escapes control characters (so a plugin cannot forge log lines) and cuts
/// the text to at most `max` bytes, marking the cut.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let piece: String = if c.is_control() { c.escape_debug().collect() } else { c.to_string() };
        if out.len() + piece.len() > max {
            out.push_str(" [cut]");
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_cuts() {
        assert_eq!(sanitize("a\nINFO forged\r\x1b[0m", 100), "a\\nINFO forged\\r\\u{1b}[0m");
        assert_eq!(sanitize("héllo wörld", 6), "héllo [cut]");
        assert_eq!(sanitize("short", 100), "short");
    }
}
