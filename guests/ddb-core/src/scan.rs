//! A validating JSON scanner that hands out slices of its input.
//!
//! The decoder never builds a JSON tree: it walks the input once and copies
//! string and number tokens straight into its output. This scanner is the only
//! place that knows JSON's grammar, so everything it returns is known valid.
//!
//! It also checks UTF-8 on the way, rather than in a pass of its own: outside
//! strings only ASCII is valid JSON, and inside them every byte past ASCII
//! starts a sequence [`utf8_width`] checks. A caller that must report invalid
//! UTF-8 before anything else asks [`utf8_first`] once scanning has failed.

use std::borrow::Cow;

use crate::Error;
use crate::distinct::Distinct;

/// A string token as it appears in the input, without its quotes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawStr<'a> {
    /// The text between the quotes, escapes left as they are.
    pub raw: &'a str,
    escapes: Escapes,
}

/// Whether a string token holds a backslash escape. Word-sized, so that a
/// `RawStr` has no padding bytes: moving one (as `Result<Option<RawStr>>`)
/// then copies whole words. Copying a `bool` and its padding made loads
/// wait on unfinished stores, about 5% of the decoding time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Escapes {
    None,
    Some,
}

impl<'a> RawStr<'a> {
    /// Whether `raw` holds a backslash escape.
    #[inline]
    pub fn escaped(&self) -> bool {
        self.escapes == Escapes::Some
    }

    /// The string's value, decoding escapes only when there are any.
    #[inline]
    pub fn unescape(&self) -> Cow<'a, str> {
        if self.escaped() { Cow::Owned(unescape(self.raw)) } else { Cow::Borrowed(self.raw) }
    }
}

#[derive(Clone)]
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Nesting deeper than this is refused rather than risking the guest's stack.
/// DynamoDB itself allows 32 levels; this leaves room for the envelope.
pub(crate) const MAX_DEPTH: u32 = 64;

impl<'a> Scanner<'a> {
    /// A scanner over `input`, which need not be valid UTF-8 (see the module docs).
    pub fn new(input: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Scanner { bytes: input.as_ref(), pos: 0 }
    }

    /// The bytes `start..end` of one token just read, as text.
    ///
    /// Only for a string body, whose bytes [`Scanner::string_body`] checked
    /// one by one (ASCII, or in a sequence [`utf8_width`] accepted), or for
    /// a number or type tag, which are ASCII.
    #[inline(always)]
    fn token(&self, start: usize, end: usize) -> &'a str {
        let bytes = &self.bytes[start..end];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: the bytes are valid UTF-8, as the callers above have checked.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    #[cold]
    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::new(reason, self.pos)
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next significant byte, without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    #[inline(always)]
    pub fn expect(&mut self, want: u8) -> Result<(), Error> {
        // Compact JSON first: no whitespace to skip.
        if self.bytes.get(self.pos) == Some(&want) {
            self.pos += 1;
            return Ok(());
        }
        self.expect_spaced(want)
    }

    /// [`Scanner::expect`] past whitespace, kept out of line.
    #[inline(never)]
    fn expect_spaced(&mut self, want: u8) -> Result<(), Error> {
        match self.peek() {
            Some(b) if b == want => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.error(format!("expected '{}' but found {}", want as char, describe(b)))),
            None => Err(self.error(format!("expected '{}' but the input ended", want as char))),
        }
    }

    /// Only whitespace may follow the top-level value.
    pub fn end(&mut self) -> Result<(), Error> {
        match self.peek() {
            None => Ok(()),
            Some(b) => Err(self.error(format!("unexpected {} after the end of the record", describe(b)))),
        }
    }

    /// Starts an object; pair with [`Scanner::next_member`].
    #[inline]
    pub fn begin_object(&mut self) -> Result<(), Error> {
        self.expect(b'{')
    }

    /// The next member's name (its ':' consumed), or `None` at the closing brace.
    /// `first` tracks whether a comma is due and must start as `true`.
    #[inline(always)]
    pub fn next_member(&mut self, first: &mut bool) -> Result<Option<RawStr<'a>>, Error> {
        // Compact JSON first: `"` for the first member, `,"` for the others.
        let quote = self.pos + usize::from(!*first);
        if self.bytes.get(quote) == Some(&b'"') && (*first || self.bytes[self.pos] == b',') {
            *first = false;
            self.pos = quote + 1;
            let name = self.string_body()?;
            self.expect(b':')?;
            return Ok(Some(name));
        }
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(None);
        }
        self.next_member_spaced(first)
    }

    /// [`Scanner::next_member`] past whitespace, kept out of line.
    #[inline(never)]
    fn next_member_spaced(&mut self, first: &mut bool) -> Result<Option<RawStr<'a>>, Error> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.unexpected("',' or '}'")),
        }
        *first = false;
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a member name"));
        }
        self.pos += 1;
        let name = self.string_body()?;
        self.expect(b':')?;
        Ok(Some(name))
    }

    /// Refuses a member name already in `seen` (then adds it), compared
    /// after unescaping: `"a"` and `"\u0061"` are one name. Call it for each
    /// name [`Scanner::next_member`] gives.
    #[inline(always)]
    pub fn unique(&self, name: RawStr<'a>, seen: &mut Distinct<'a>) -> Result<(), Error> {
        if seen.insert(name.raw, !name.escaped()) { Ok(()) } else { Err(self.duplicate_name(name)) }
    }

    #[cold]
    pub fn duplicate_name(&self, name: RawStr) -> Error {
        // `name.raw` is a slice of `bytes`, just after the opening quote.
        let at = name.raw.as_ptr() as usize - self.bytes.as_ptr() as usize - 1;
        Error::new(format!("duplicate member name {:?}", name.unescape()), at)
    }

    /// Opens an attribute value and reads its type tag: `{"S":` gives `S`.
    /// The compact spelling DynamoDB sends is matched directly; anything
    /// else (whitespace, escapes) takes the general path.
    #[inline]
    pub fn type_tag(&mut self) -> Result<&'a str, Error> {
        let (b, p) = (self.bytes, self.pos);
        if b.get(p) == Some(&b'{') && b.get(p + 1) == Some(&b'"') {
            let len = b[p + 2..].iter().take(4).take_while(|c| c.is_ascii_uppercase()).count();
            if b.get(p + 2 + len) == Some(&b'"') && b.get(p + 3 + len) == Some(&b':') {
                self.pos = p + 4 + len;
                return Ok(self.token(p + 2, p + 2 + len));
            }
        }
        self.begin_object()?;
        let mut first = true;
        match self.next_member(&mut first)? {
            Some(tag) => Ok(tag.raw),
            None => Err(self.error("an attribute value needs a type, e.g. {\"S\": ...}")),
        }
    }

    /// Closes an attribute value after its one typed member.
    #[inline]
    pub fn close_value(&mut self) -> Result<(), Error> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                Ok(())
            }
            Some(b',') => Err(self.error("an attribute value must have exactly one type")),
            _ => Err(self.unexpected("'}'")),
        }
    }

    /// Starts an array; pair with [`Scanner::next_element`].
    #[inline]
    pub fn begin_array(&mut self) -> Result<(), Error> {
        self.expect(b'[')
    }

    /// Whether another element follows (its comma consumed).
    #[inline]
    pub fn next_element(&mut self, first: &mut bool) -> Result<bool, Error> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => Err(self.unexpected("',' or ']'")),
        }
    }

    #[cold]
    fn unexpected(&self, want: &str) -> Error {
        match self.bytes.get(self.pos) {
            Some(&b) => self.error(format!("expected {want} but found {}", describe(b))),
            None => self.error(format!("expected {want} but the input ended")),
        }
    }

    /// A string token. Checks escapes and UTF-8 and rejects raw control
    /// characters.
    #[inline(always)]
    pub fn string(&mut self) -> Result<RawStr<'a>, Error> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// The rest of a string token, after its opening quote.
    #[inline(always)]
    fn string_body(&mut self) -> Result<RawStr<'a>, Error> {
        // Most strings have no escapes: they end at the first byte that
        // needs attention, and the loop below stays out of line.
        let start = self.pos;
        let end = start + skip_plain(&self.bytes[start..]);
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(RawStr { raw: self.token(start, end), escapes: Escapes::None });
        }
        self.pos = end;
        self.string_rest(start)
    }

    /// [`Scanner::string_body`] from the first byte that needs attention.
    #[inline(never)]
    fn string_rest(&mut self, start: usize) -> Result<RawStr<'a>, Error> {
        let mut escapes = Escapes::None;
        loop {
            self.pos += skip_plain(&self.bytes[self.pos..]);
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    let raw = self.token(start, self.pos);
                    self.pos += 1;
                    return Ok(RawStr { raw, escapes });
                }
                Some(b'\\') => {
                    escapes = Escapes::Some;
                    self.escape()?;
                }
                Some(0x80..) => match utf8_width(&self.bytes[self.pos..]) {
                    Some(width) => self.pos += width,
                    None => return Err(self.error("invalid UTF-8")),
                },
                Some(&b) => {
                    return Err(
                        self.error(format!("control character 0x{b:02x} must be escaped inside a string"))
                    );
                }
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// Checks one escape sequence at `pos` (the backslash) and steps over it.
    fn escape(&mut self) -> Result<(), Error> {
        let at = self.pos;
        match self.bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(at + 2)?;
                self.pos = at + 6;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must pair with a low one to be a character.
                    let low = match (self.bytes.get(at + 6), self.bytes.get(at + 7)) {
                        (Some(b'\\'), Some(b'u')) => self.hex4(at + 8)?,
                        _ => return Err(Error::new("unpaired surrogate in \\u escape", at)),
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(Error::new("unpaired surrogate in \\u escape", at));
                    }
                    self.pos = at + 12;
                } else if (0xDC00..0xE000).contains(&unit) {
                    return Err(Error::new("unpaired surrogate in \\u escape", at));
                }
                Ok(())
            }
            _ => Err(Error::new("invalid escape sequence", at)),
        }
    }

    fn hex4(&self, at: usize) -> Result<u32, Error> {
        let digits = self.bytes.get(at..at + 4).ok_or_else(|| Error::new("truncated \\u escape", at))?;
        digits.iter().try_fold(0u32, |acc, &d| {
            let v =
                (d as char).to_digit(16).ok_or_else(|| Error::new("invalid hex digit in \\u escape", at))?;
            Ok(acc * 16 + v)
        })
    }

    /// A JSON number token, returned as written.
    pub fn number(&mut self) -> Result<&'a str, Error> {
        self.skip_ws();
        let start = self.pos;
        let b = self.bytes;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i += digits(&b[i..]),
            _ => return Err(Error::new("invalid number", start)),
        }
        if b.get(i) == Some(&b'.') {
            let n = digits(&b[i + 1..]);
            if n == 0 {
                return Err(Error::new("invalid number: no digits after '.'", start));
            }
            i += 1 + n;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let n = digits(&b[i..]);
            if n == 0 {
                return Err(Error::new("invalid number: no digits in exponent", start));
            }
            i += n;
        }
        self.pos = i;
        Ok(self.token(start, i))
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool, Error> {
        match self.peek() {
            Some(b't') => self.literal("true").map(|_| true),
            Some(b'f') => self.literal("false").map(|_| false),
            _ => Err(self.unexpected("true or false")),
        }
    }

    /// Consumes `null` if it comes next.
    pub fn null(&mut self) -> Result<bool, Error> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), Error> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error(format!("expected {word}")))
        }
    }

    /// Steps over any value, still validating it.
    pub fn skip_value(&mut self, depth: u32) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => {
                self.begin_object()?;
                let mut first = true;
                while self.next_member(&mut first)?.is_some() {
                    self.skip_value(depth + 1)?;
                }
                Ok(())
            }
            Some(b'[') => {
                self.begin_array()?;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip_value(depth + 1)?;
                }
                Ok(())
            }
            Some(b't' | b'f') => self.boolean().map(drop),
            Some(b'n') => self.null().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ => Err(self.unexpected("a value")),
        }
    }
}

fn digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Length of the prefix that needs no attention inside a string: ASCII with
/// no quote, backslash or control character. Eight bytes at a time (SWAR):
/// the lowest flagged byte of a word is always a true hit, so its index is
/// exact.
#[inline]
fn skip_plain(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        // Bytes >= 0x80 have their high bit set in `w`. Below that, a byte
        // borrows in `quote - 1`/`slash - 1` where it matched and in
        // `w - 0x20` where it is a control character; a borrow only reaches
        // the bytes above a true hit.
        let hit =
            (quote.wrapping_sub(ONES) | slash.wrapping_sub(ONES) | w.wrapping_sub(ONES * 0x20) | w) & HIGH;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) {
            break;
        }
        i += 1;
    }
    i
}

/// The length of the UTF-8 sequence at the start of `b` (which starts past
/// ASCII), or `None` if it is not well-formed: the byte ranges of the Unicode
/// Standard's table 3-7, which rule out overlong forms, surrogates and
/// code points past U+10FFFF.
fn utf8_width(b: &[u8]) -> Option<usize> {
    let (width, second) = match *b.first()? {
        0xC2..=0xDF => (2, 0x80..=0xBF),
        0xE0 => (3, 0xA0..=0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80..=0xBF),
        0xED => (3, 0x80..=0x9F),
        0xF0 => (4, 0x90..=0xBF),
        0xF1..=0xF3 => (4, 0x80..=0xBF),
        0xF4 => (4, 0x80..=0x8F),
        _ => return None,
    };
    let sequence = b.get(..width)?;
    let rest_ok = sequence[2..].iter().all(|&c| c & 0xC0 == 0x80);
    (second.contains(&sequence[1]) && rest_ok).then_some(width)
}

/// What to report for `input` when reading it failed with `err`: invalid
/// UTF-8 anywhere comes first, as though the whole input had been checked
/// before reading it. `what` names the input ("record", "line").
#[cold]
pub(crate) fn utf8_first(input: &[u8], what: &str, err: Error) -> Error {
    match std::str::from_utf8(input) {
        Err(e) => invalid_utf8(what, e),
        Ok(_) => err,
    }
}

#[cold]
pub(crate) fn invalid_utf8(what: &str, e: std::str::Utf8Error) -> Error {
    Error::new(format!("the {what} is not valid UTF-8"), e.valid_up_to())
}

/// Decodes the escapes of an already validated string body.
pub(crate) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let (ch, used) = decode_escape(&rest[at..]);
        out.push(ch);
        rest = rest.get(at + used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The characters of an already validated string body, escapes decoded:
/// compares two spellings without building either.
pub(crate) fn unescaped_chars(raw: &str) -> impl Iterator<Item = char> + '_ {
    let mut rest = raw;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let (ch, used) = if c == '\\' { decode_escape(rest) } else { (c, c.len_utf8()) };
        rest = rest.get(used..).unwrap_or("");
        Some(ch)
    })
}

/// The escape at the start of `rest` (checked by [`Scanner::string`]): the
/// character it stands for and its length.
fn decode_escape(rest: &str) -> (char, usize) {
    let hex = |at: usize| rest.get(at..at + 4).and_then(|h| u32::from_str_radix(h, 16).ok());
    let ch = match rest.as_bytes().get(1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        _ => {
            let unit = hex(2).unwrap_or(0xFFFD);
            if let (0xD800..0xDC00, Some(low @ 0xDC00..0xE000)) = (unit, hex(8)) {
                let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
                return (c.unwrap_or('\u{fffd}'), 12);
            }
            return (char::from_u32(unit).unwrap_or('\u{fffd}'), 6);
        }
    };
    (ch, 2)
}

/// Writes `s` as a JSON string in one canonical spelling: only the quote,
/// the backslash and control characters are escaped.
pub(crate) fn write_escaped(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if short.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() { format!("'{}'", b as char) } else { format!("byte 0x{b:02x}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_plain_stops_at_specials_in_every_lane() {
        for lane in 0..17 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut v = vec![b'a'; 20];
                v[lane] = special;
                assert_eq!(skip_plain(&v), lane, "special {special:#x} at {lane}");
            }
        }
        assert_eq!(skip_plain("hello wörld".as_bytes()), 7);
        assert_eq!(skip_plain(&[0x7f, 0x20, 0x21, 0x22]), 3);
        assert_eq!(skip_plain(&[0x7f, 0x20, 0xff, 0x21]), 2);
        for lane in 0..17 {
            let mut v = vec![b'a'; 20];
            v[lane] = 0x80;
            assert_eq!(skip_plain(&v), lane, "0x80 at {lane}");
        }
    }

    #[test]
    fn utf8_sequences_are_checked_as_std_does() {
        let mut bytes = Vec::new();
        for lead in 0x80..=0xFFu8 {
            for second in 0..=0xFFu8 {
                // Past the second byte only continuation bytes or not matter.
                for third in [0x00, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0] {
                    for fourth in [0x7F, 0x80, 0xBF, 0xC0] {
                        for len in 1..=4 {
                            bytes.clear();
                            bytes.extend_from_slice(&[lead, second, third, fourth][..len]);
                            let valid =
                                std::str::from_utf8(&bytes).map_or_else(|e| e.valid_up_to(), str::len);
                            let first = std::str::from_utf8(&bytes[..valid]).unwrap().chars().next();
                            assert_eq!(utf8_width(&bytes), first.map(char::len_utf8), "{bytes:x?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn strings_with_invalid_utf8_are_refused() {
        for bad in [
            &b"\"a\xff\""[..],
            b"\"\xc3\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xe0\x80\xaf\"",
            b"\"abcdefgh\xf4\x90\x80\x80\"",
        ] {
            let err = Scanner::new(bad).string().unwrap_err();
            assert_eq!(err.reason(), "invalid UTF-8");
            assert_eq!(utf8_first(bad, "record", err).reason(), "the record is not valid UTF-8");
        }
        let good = "\"ünïcode ☕ 🚀 and more ascii\"";
        assert_eq!(Scanner::new(good).string().unwrap().raw, &good[1..good.len() - 1]);
    }

    #[test]
    fn strings_are_validated() {
        let ok = |s: &str| Scanner::new(s).string().map(|r| r.raw.to_owned());
        assert_eq!(ok(r#""plain""#).unwrap(), "plain");
        assert_eq!(ok(r#""a\"b\\c\/\n\u00e9\ud83d\ude00""#).unwrap(), r#"a\"b\\c\/\n\u00e9\ud83d\ude00"#);
        assert!(ok("\"tab\there\"").is_err());
        assert!(ok(r#""\x""#).is_err());
        assert!(ok(r#""\u12""#).is_err());
        assert!(ok(r#""\ud83d""#).is_err());
        assert!(ok(r#""\ude00""#).is_err());
        assert!(ok(r#""open"#).is_err());
    }

    #[test]
    fn strings_end_or_escape_in_every_lane() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            let text = format!("\"{plain}\",");
            let mut s = Scanner::new(&text);
            let r = s.string().unwrap();
            assert_eq!((r.raw, r.escaped(), s.pos()), (plain.as_str(), false, len + 2));
            for (escape, rest) in [(r"\n", "b"), (r"\u00e9", ""), (r#"\""#, "xxxxxxxxx")] {
                let raw = format!("{plain}{escape}{rest}");
                let text = format!("\"{raw}\"");
                let r = Scanner::new(&text).string().unwrap();
                assert_eq!((r.raw, r.escaped()), (raw.as_str(), true));
            }
            let err = Scanner::new(&format!("\"{plain}\u{1}\"")).string().unwrap_err();
            assert_eq!(
                (err.reason(), err.offset()),
                ("control character 0x01 must be escaped inside a string", Some(len + 1))
            );
            let err = Scanner::new(&format!("\"{plain}")).string().unwrap_err();
            assert_eq!((err.reason(), err.offset()), ("unterminated string", Some(len + 1)));
        }
    }

    #[test]
    fn unescape_and_escape_round_trip() {
        let raw = r#"q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00c\u0001"#;
        let text = unescape(raw);
        assert_eq!(text, "q\"b\\s/n\nt\tué😀c\u{1}");
        assert_eq!(unescaped_chars(raw).collect::<String>(), text);
        let mut out = String::new();
        write_escaped(&mut out, &text);
        assert_eq!(out, r#""q\"b\\s/n\nt\tué😀c\u0001""#);
    }

    #[test]
    fn numbers_follow_json_grammar() {
        for good in ["0", "-0", "12", "-3.25", "1e5", "1E-130", "2.5e+10"] {
            assert_eq!(Scanner::new(good).number().unwrap(), good);
        }
        for bad in ["+1", ".5", "-", "1.", "1e", "--1"] {
            let mut s = Scanner::new(bad);
            assert!(s.number().is_err() || s.end().is_err(), "{bad}");
        }
    }
}
