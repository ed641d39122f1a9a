//! A strict RFC 9110 §8.3.1 media type parser.
//!
//! Browsers treat a `Content-Type` holding a comma as a list and use its last entry, so
//! `image/png;,text/html` is HTML to them while a lax parser sees `image/png`. The grammar
//! here is the RFC's, narrowed to what no browser can read two ways: ASCII only, no
//! commas anywhere (not even inside a quoted string), no empty parameters (`;;`, a
//! trailing `;`), and a length bound.

/// Longest accepted media type, in bytes.
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;

/// Why a media type was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTypeError {
    /// Nothing but whitespace.
    Empty,
    /// Longer than [`MAX_MEDIA_TYPE_BYTES`].
    TooLong,
    /// Not `type/subtype` with well-formed parameters, or ambiguous (a comma, a repeated
    /// or empty parameter, non-ASCII).
    Malformed,
}

/// A parsed media type in normalised form: `type/subtype` in lower case, then
/// `; name=value` for each parameter with the name in lower case and the value as given
/// (a token, or a quoted string kept with its quotes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType {
    normalised: String,
    /// Byte length of `type/subtype` in `normalised`.
    essence_len: usize,
}

impl MediaType {
    /// Parses `raw` strictly.
    ///
    /// # Errors
    /// [`MediaTypeError`] when `raw` is empty, too long or not a media type.
    pub fn parse(raw: &str) -> Result<Self, MediaTypeError> {
        if raw.trim_matches(is_ows).is_empty() {
            return Err(MediaTypeError::Empty);
        }
        if raw.len() > MAX_MEDIA_TYPE_BYTES {
            return Err(MediaTypeError::TooLong);
        }
        if !raw.is_ascii() || raw.contains(',') {
            return Err(MediaTypeError::Malformed);
        }
        let mut cur = Cursor {
            s: raw.as_bytes(),
            i: 0,
        };
        cur.skip_ows();
        let kind = cur.token().ok_or(MediaTypeError::Malformed)?;
        cur.expect(b'/')?;
        let sub = cur.token().ok_or(MediaTypeError::Malformed)?;
        let mut normalised = format!("{}/{}", kind.to_ascii_lowercase(), sub.to_ascii_lowercase());
        let essence_len = normalised.len();
        loop {
            cur.skip_ows();
            if cur.done() {
                break;
            }
            cur.expect(b';')?;
            cur.skip_ows();
            let name = cur.token().ok_or(MediaTypeError::Malformed)?;
            cur.expect(b'=')?;
            let value = match cur.peek() {
                Some(b'"') => cur.quoted()?,
                _ => cur.token().ok_or(MediaTypeError::Malformed)?,
            };
            normalised.push_str("; ");
            normalised.push_str(&name.to_ascii_lowercase());
            normalised.push('=');
            normalised.push_str(value);
        }
        if normalised.len() > MAX_MEDIA_TYPE_BYTES {
            return Err(MediaTypeError::TooLong);
        }
        Ok(Self {
            normalised,
            essence_len,
        })
    }

    /// The normalised form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    /// `type/subtype`, lower case.
    #[must_use]
    pub fn essence(&self) -> &str {
        &self.normalised[..self.essence_len]
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), MediaTypeError> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(MediaTypeError::Malformed)
        }
    }

    fn slice(&self, from: usize) -> &'a str {
        // The input was checked to be ASCII, so every index is a char boundary.
        std::str::from_utf8(&self.s[from..self.i]).unwrap_or_default()
    }

    fn token(&mut self) -> Option<&'a str> {
        let from = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > from).then(|| self.slice(from))
    }

    /// A quoted string, returned with its quotes. Escapes are kept as written.
    fn quoted(&mut self) -> Result<&'a str, MediaTypeError> {
        let from = self.i;
        self.expect(b'"')?;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(self.slice(from));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || (b' '..=b'~').contains(&b) => self.i += 1,
                        _ => return Err(MediaTypeError::Malformed),
                    }
                }
                Some(b) if b == b'\t' || (b' '..=b'~').contains(&b) => self.i += 1,
                _ => return Err(MediaTypeError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(raw: &str) -> Option<String> {
        MediaType::parse(raw).ok().map(|m| m.as_str().to_owned())
    }

    #[test]
    fn ordinary_types_are_normalised() {
        assert_eq!(norm("application/pdf").as_deref(), Some("application/pdf"));
        assert_eq!(norm("Application/PDF").as_deref(), Some("application/pdf"));
        assert_eq!(
            norm("text/plain;charset=UTF-8").as_deref(),
            Some("text/plain; charset=UTF-8")
        );
        assert_eq!(
            norm(" Text/Plain ;  Charset=utf-8 ; format=flowed ").as_deref(),
            Some("text/plain; charset=utf-8; format=flowed")
        );
        assert_eq!(
            norm("multipart/mixed; boundary=\"a b\\\"c\"").as_deref(),
            Some("multipart/mixed; boundary=\"a b\\\"c\"")
        );
        assert_eq!(norm("image/svg+xml").as_deref(), Some("image/svg+xml"));
    }

    #[test]
    fn list_and_smuggling_tricks_are_refused() {
        for bad in [
            "image/png;,text/html",
            "image/png; x=1, text/html",
            "image/png,text/html",
            "text/plain; x=\"a,text/html\"",
            "image/png;",
            "image/png;;x=1",
            "image/png; ;x=1",
            "image/png; x",
            "image/png; x=",
            "image/png; x=\"unterminated",
            "image/png; =1",
            "image/png x",
            "image/png\r\nx-evil: 1",
            "image/png\0",
            "image/pngé",
            "image/png; x=é",
            "/png",
            "image/",
            "image",
            "",
            "   ",
            "text/plain; x=\"\\é\"",
        ] {
            assert!(MediaType::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            MediaType::parse(&format!("a/{}", "b".repeat(254))),
            Err(MediaTypeError::TooLong)
        );
    }

    #[test]
    fn essence_is_the_lower_case_type_and_subtype() {
        let m = MediaType::parse("IMAGE/PNG; q=1").unwrap();
        assert_eq!(m.essence(), "image/png");
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_accepted_types_are_fixed_points(raw in "\\PC{0,64}|[ -~]{0,64}|[a-z/;= ,\"]{0,24}") {
            if let Ok(m) = MediaType::parse(&raw) {
                // Normalising twice changes nothing, and nothing a browser splits on survives.
                let again = MediaType::parse(m.as_str()).expect("normalised form parses");
                prop_assert_eq!(again.as_str(), m.as_str());
                prop_assert!(!m.as_str().contains(','));
                prop_assert!(m.as_str().is_ascii());
                prop_assert!(!m.as_str().bytes().any(|b| b.is_ascii_control() && b != b'\t'));
                prop_assert!(m.as_str().starts_with(m.essence()));
            }
        }
    }
}
