//! Spotting a repeated member name or set element without allocating.
//!
//! JSON parsers disagree on which of two same-named members wins, and
//! DynamoDB never writes one, so a repeat makes a record ambiguous and is
//! refused; so is a set with a value twice. Entries are compared by value:
//! `"a"` and `"\u0061"` are one name, `1` and `1.0` one number. Objects and
//! sets in change records are small and spelled plainly, so that is the
//! fast case: up to 16 entries kept in a fixed array and compared as text,
//! mostly skipped by a 64-bit Bloom filter. An entry spelled otherwise is
//! hashed into the filter by its one spelling, so the others still skip the
//! comparisons. Larger ones move to a hash set.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::Error;
use crate::number::Number;
use crate::scan::{RawStr, Scanner, unescape, unescaped_chars};

/// Entries compared one by one before switching to a hash set.
const INLINE: usize = 16;

/// The entries seen so far in one object or set.
pub(crate) struct Distinct<'a> {
    /// A bit per entry of `inline`, chosen by [`bloom_bit`] from its one
    /// spelling: while a new entry's bit is clear it equals none of them.
    bloom: u64,
    len: usize,
    /// The entries as written: JSON string bodies, slices of the input.
    inline: [&'a str; INLINE],
    /// A bit per entry of `inline` that is not in its usual spelling (see
    /// [`Distinct::insert`]): those are compared by value, the rest as text.
    unusual: u32,
    values: Values,
    /// Every entry in its one spelling, once there are more than `INLINE`.
    spilled: Option<HashSet<Cow<'a, str>>>,
}

/// What the entries are, which says when two spellings are equal.
#[derive(Clone, Copy)]
enum Values {
    /// Strings (member names, `SS` and `BS` elements): equal once unescaped.
    Strings,
    /// `NS` elements: equal in numeric value.
    Numbers,
}

impl<'a> Distinct<'a> {
    /// For member names and `SS` or `BS` elements.
    #[inline]
    pub fn strings() -> Self {
        Self::new(Values::Strings)
    }

    /// For `NS` elements, already checked as numbers.
    #[inline]
    pub fn numbers() -> Self {
        Self::new(Values::Numbers)
    }

    #[inline(always)]
    fn new(values: Values) -> Self {
        Distinct { bloom: 0, len: 0, inline: [""; INLINE], unusual: 0, values, spilled: None }
    }

    /// Adds `entry`, a string body as written in the input; `false` if it
    /// equals one already there. `usual` says it is in its one spelling: no
    /// escapes and, for a number, DynamoDB's spelling. DynamoDB's own records
    /// are, and then this is a few instructions.
    #[inline(always)]
    pub fn insert(&mut self, entry: &'a str, usual: bool) -> bool {
        if self.len == INLINE {
            return self.insert_spilled(entry, usual);
        }
        // The filter hashes the one spelling, so it holds for unusual
        // entries too: only a hit needs comparing.
        let bit = if usual { bloom_bit(entry) } else { self.values.unusual_bloom_bit(entry) };
        if self.bloom & bit != 0 && self.repeats(entry, usual) {
            return false;
        }
        self.bloom |= bit;
        if !usual {
            self.unusual |= 1 << self.len;
        }
        self.inline[self.len] = entry;
        self.len += 1;
        true
    }

    /// Whether `entry` equals one of the `inline` entries.
    #[inline(never)]
    fn repeats(&self, entry: &str, usual: bool) -> bool {
        self.inline[..self.len].iter().enumerate().any(|(i, &earlier)| {
            if usual && self.unusual & 1 << i == 0 {
                earlier == entry
            } else {
                self.values.same(earlier, entry)
            }
        })
    }

    /// [`Distinct::insert`] once `INLINE` entries are there: they move to a
    /// hash set of their one spellings, and so does every later entry.
    #[cold]
    fn insert_spilled(&mut self, entry: &'a str, usual: bool) -> bool {
        let values = self.values;
        let unusual = self.unusual;
        let inline = &self.inline;
        let all = self.spilled.get_or_insert_with(|| {
            inline
                .iter()
                .enumerate()
                .map(|(i, &earlier)| values.spelling(earlier, unusual & 1 << i == 0))
                .collect()
        });
        all.insert(values.spelling(entry, usual))
    }
}

impl Values {
    /// [`bloom_bit`] of an unusual entry's one spelling, without building it.
    #[cold]
    fn unusual_bloom_bit(self, entry: &str) -> u64 {
        match self {
            Values::Strings => {
                let (mut first, mut last, mut len) = (0, 0, 0);
                let mut utf8 = [0; 4];
                for c in unescaped_chars(entry) {
                    let bytes = c.encode_utf8(&mut utf8).as_bytes();
                    if len == 0 {
                        first = bytes[0];
                    }
                    last = bytes[bytes.len() - 1];
                    len += bytes.len();
                }
                bloom_bit_of(first, last, len)
            }
            Values::Numbers => {
                let text = plain(entry);
                match Number::parse(&text, 0) {
                    Ok(n) => {
                        let (first, last, len) = n.canonical_shape();
                        bloom_bit_of(first, last, len)
                    }
                    Err(_) => bloom_bit(&text),
                }
            }
        }
    }

    /// Whether two entries as written are equal in value.
    fn same(self, a: &str, b: &str) -> bool {
        match self {
            Values::Strings => unescaped_chars(a).eq(unescaped_chars(b)),
            Values::Numbers => {
                let (a, b) = (plain(a), plain(b));
                match (Number::parse(&a, 0), Number::parse(&b, 0)) {
                    (Ok(a), Ok(b)) => a.same_value(&b),
                    _ => a == b,
                }
            }
        }
    }

    /// An entry in its one spelling, for hashing.
    fn spelling<'a>(self, entry: &'a str, usual: bool) -> Cow<'a, str> {
        match self {
            _ if usual => Cow::Borrowed(entry),
            Values::Strings => Cow::Owned(unescape(entry)),
            Values::Numbers => {
                let text = plain(entry);
                Cow::Owned(Number::parse(&text, 0).map_or_else(|_| text.to_string(), |n| n.canonical()))
            }
        }
    }
}

/// A string body without its escapes.
fn plain(raw: &str) -> Cow<'_, str> {
    if raw.contains('\\') { Cow::Owned(unescape(raw)) } else { Cow::Borrowed(raw) }
}

/// The members of one envelope object (a stream record, its `dynamodb`, an
/// export line...), whose names the decoder knows: it tells those apart by a
/// slot number from a `match`, so they cost a bit test, and only other names
/// go to a [`Distinct`], made when the first one turns up.
#[derive(Default)]
pub(crate) struct Members<'a> {
    known: u32,
    others: Option<Distinct<'a>>,
}

impl<'a> Members<'a> {
    /// Refuses a name already seen in this object (then adds it). `slot` is
    /// 1 to 31 for a name the caller knows, the same for every spelling of
    /// it, and 0 for any other.
    #[inline(always)]
    pub fn add(&mut self, s: &Scanner<'a>, name: RawStr<'a>, slot: u32) -> Result<(), Error> {
        let bit = 1 << slot;
        if slot == 0 || self.known & bit != 0 {
            return self.add_rare(s, name, slot);
        }
        self.known |= bit;
        Ok(())
    }

    #[inline(never)]
    fn add_rare(&mut self, s: &Scanner<'a>, name: RawStr<'a>, slot: u32) -> Result<(), Error> {
        if slot == 0 {
            return s.unique(name, self.others.get_or_insert_with(Distinct::strings));
        }
        Err(s.duplicate_name(name))
    }
}

/// One of 64 bits, from a hash of the length and the first and last bytes:
/// names in one object rarely agree on all three (`f0` and `f1`, `created`
/// and `updated`, `lat` and `lon` do not).
#[inline(always)]
fn bloom_bit(text: &str) -> u64 {
    match text.as_bytes() {
        [] => bloom_bit_of(0, 0, 0),
        b => bloom_bit_of(b[0], b[b.len() - 1], b.len()),
    }
}

/// [`bloom_bit`] of a text known by its first and last bytes and length.
#[inline(always)]
fn bloom_bit_of(first: u8, last: u8, len: usize) -> u64 {
    let ends = u32::from(first) << 8 | u32::from(last);
    let hash = (ends ^ (len as u32) << 16).wrapping_mul(0x9E37_79B9);
    1 << (hash >> 26)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_repeats_inline_and_after_spilling() {
        let names: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
        let mut seen = Distinct::strings();
        for name in &names {
            assert!(seen.insert(name, true), "{name}");
        }
        assert!(seen.spilled.is_some());
        for name in &names {
            assert!(!seen.insert(name, true), "{name}");
        }
        assert!(!seen.insert(r"n\u0031", false));
        assert!(seen.insert(r"n\u0031\u0030\u0030", false));
    }

    #[test]
    fn spellings_of_one_string_are_one_entry() {
        let mut seen = Distinct::strings();
        assert!(seen.insert("a", true));
        assert!(seen.insert("", true));
        assert!(!seen.insert(r"\u0061", false));
        assert!(seen.insert(r"\u0062", false));
        assert!(!seen.insert("b", true));
        assert!(!seen.insert(r"\u0062", false));
        assert!(!seen.insert("", true));
        assert!(seen.insert(r"\\", false));
        assert!(!seen.insert(r"\u005c", false));
        for i in 0..12 {
            assert!(seen.insert(["x", "y", "z"][i % 3].repeat(i + 1).leak(), true));
        }
        assert!(seen.spilled.is_none());
        assert!(seen.insert("c", true));
        assert!(seen.spilled.is_some());
        for again in ["a", "b", "", "c", "xxxx"] {
            assert!(!seen.insert(again, true), "{again}");
        }
        assert!(!seen.insert(r"\u0061", false));
    }

    #[test]
    fn an_escaped_entry_leaves_the_others_on_the_fast_path() {
        let mut seen = Distinct::strings();
        assert!(seen.insert(r#"extra \"name\""#, false));
        let names: Vec<String> = (0..14).map(|i| format!("n{i}")).collect();
        for name in &names {
            assert!(seen.insert(name, true), "{name}");
        }
        assert!(!seen.insert(r"extra \u0022name\u0022", false));
        assert!(!seen.insert(r"n1", false));
        for name in &names {
            assert!(!seen.insert(name, true), "{name}");
        }
        assert!(seen.spilled.is_none());
    }

    #[test]
    fn unusual_entries_are_hashed_by_their_one_spelling() {
        for (values, entry) in [
            (Values::Strings, r"\u0061"),
            (Values::Strings, r#"extra \u00e9 \ud83d\ude00 \"q\""#),
            (Values::Strings, r"\n"),
            (Values::Numbers, "1.0"),
            (Values::Numbers, "-1.5E+2"),
            (Values::Numbers, "9.9999999999999999999999999999999999999E+125"),
            (Values::Numbers, "1E-130"),
            (Values::Numbers, r"\u0031e1"),
            (Values::Numbers, "-0"),
        ] {
            assert_eq!(values.unusual_bloom_bit(entry), bloom_bit(&values.spelling(entry, false)), "{entry}");
        }
    }

    #[test]
    fn numbers_are_compared_by_value() {
        let mut seen = Distinct::numbers();
        assert!(seen.insert("1", true));
        assert!(seen.insert("0", true));
        assert!(seen.insert("0.5", true));
        for twin in ["1.0", "1E0", "10E-1", "-0", "0.0", ".5", "5E-1", r"\u0031"] {
            assert!(!seen.insert(twin, false), "{twin}");
        }
        assert!(seen.insert("1E1", false));
        assert!(!seen.insert("10", true));
        for i in (2..10).chain(11..15) {
            assert!(seen.insert(i.to_string().leak(), true), "{i}");
        }
        assert!(seen.insert("100E0", false));
        assert!(seen.spilled.is_some());
        assert!(!seen.insert("100", true));
        assert!(!seen.insert("1.00", false));
    }
}
