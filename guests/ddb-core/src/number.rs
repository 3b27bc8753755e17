//! DynamoDB numbers (`{"N": "..."}`) as JSON number tokens.
//!
//! DynamoDB sends numbers as decimal text with up to 38 significant digits and
//! a magnitude from 1E-130 to 9.99...E+125, beyond what `f64` holds. Images
//! keep the digits exactly as written and only fix the spelling where JSON's
//! grammar is stricter than DynamoDB's (a leading `+`, leading zeros, `.5`,
//! `5.`). Keys and set elements need one spelling per value instead: that is
//! [`Number::write_canonical`].

use crate::Error;

/// Most significant digits DynamoDB stores.
const MAX_DIGITS: usize = 38;
/// Largest decimal exponent of the leading digit (9.99...E+125).
const MAX_EXP: i64 = 125;
/// Smallest decimal exponent of the leading digit (1E-130).
const MIN_EXP: i64 = -130;

/// A checked DynamoDB number, as the parts of its text.
pub(crate) struct Number<'a> {
    text: &'a str,
    negative: bool,
    /// Digits before the point (may be empty, as in `.5`).
    int: &'a str,
    /// Digits after the point (may be empty).
    frac: &'a str,
    /// The exponent as written, `e` included, or empty.
    exp_text: &'a str,
    /// Where the significant digits start and end in `int` followed by `frac`;
    /// `None` for zero.
    significant: Option<(usize, usize)>,
    /// Decimal exponent of the leading significant digit.
    magnitude: i64,
}

/// Whether `text` is a number DynamoDB accepts that [`Number::write_json`]
/// writes as it is, the usual case: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, not zero,
/// with at most 38 digits, so that no limit can be exceeded. One pass instead
/// of taking it apart.
#[inline]
pub(crate) fn is_plain(text: &str) -> bool {
    let b = text.as_bytes();
    let unsigned = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match unsigned.iter().position(|&c| c == b'.') {
        Some(dot) if dot + 1 < unsigned.len() => (&unsigned[..dot], &unsigned[dot + 1..]),
        Some(_) => return false,
        None => (unsigned, &[][..]),
    };
    let non_zero = match int {
        [b'1'..=b'9', ..] => true,
        [b'0'] => frac.iter().any(|&c| c != b'0'),
        _ => return false,
    };
    non_zero
        && int.len() + frac.len() <= MAX_DIGITS
        && int.iter().all(u8::is_ascii_digit)
        && frac.iter().all(u8::is_ascii_digit)
}

impl<'a> Number<'a> {
    /// Checks `text` as a DynamoDB number; `at` is the input offset used in errors.
    #[inline(always)]
    pub fn parse(text: &'a str, at: usize) -> Result<Self, Error> {
        let b = text.as_bytes();
        let mut i = 0;
        let negative = b.first() == Some(&b'-');
        if negative || b.first() == Some(&b'+') {
            i += 1;
        }
        let int_start = i;
        i += digits(&b[i..]);
        let int = &text[int_start..i];
        let mut frac = "";
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start + digits(&b[start..]);
            frac = &text[start..i];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(invalid(text, "no digits", at));
        }
        let mut exp_text = "";
        let mut exp: i64 = 0;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let start = i;
            i += 1;
            let exp_negative = b.get(i) == Some(&b'-');
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let digits_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                // Saturate: anything this large is out of range anyway.
                exp = (exp * 10 + i64::from(b[i] - b'0')).min(1 << 40);
                i += 1;
            }
            if i == digits_start {
                return Err(invalid(text, "no digits in exponent", at));
            }
            if exp_negative {
                exp = -exp;
            }
            exp_text = &text[start..i];
        }
        if i != b.len() {
            return Err(invalid(text, "unexpected character", at));
        }

        // Significant digits run from the first to the last non-zero digit.
        let non_zero = |d: &u8| *d != b'0';
        let (ib, fb) = (int.as_bytes(), frac.as_bytes());
        let first = ib.iter().position(non_zero).or_else(|| Some(ib.len() + fb.iter().position(non_zero)?));
        let Some(first) = first else {
            return Ok(Number { text, negative, int, frac, exp_text, significant: None, magnitude: 0 });
        };
        let last = match fb.iter().rposition(non_zero) {
            Some(p) => ib.len() + p,
            None => ib.iter().rposition(non_zero).unwrap_or(first),
        };
        if last - first + 1 > MAX_DIGITS {
            return Err(invalid(text, "more than 38 significant digits", at));
        }
        // Exponent of the leading digit: its place relative to the decimal point.
        let magnitude = int.len() as i64 - 1 - first as i64 + exp;
        if magnitude > MAX_EXP {
            return Err(invalid(text, "larger than 9.9999999999999999999999999999999999999E+125", at));
        }
        if magnitude < MIN_EXP {
            return Err(invalid(text, "smaller than 1E-130", at));
        }
        Ok(Number { text, negative, int, frac, exp_text, significant: Some((first, last)), magnitude })
    }

    /// Whether the text is already in [`Number::write_canonical`]'s spelling.
    pub fn is_canonical(&self) -> bool {
        if self.significant.is_none() {
            return self.text == "0";
        }
        !self.text.starts_with('+')
            && self.exp_text.is_empty()
            && (self.int == "0" || (!self.int.is_empty() && !self.int.starts_with('0')))
            && !self.text.ends_with('.')
            && !self.frac.ends_with('0')
    }

    /// Appends the number as a JSON number token with the digits as written.
    #[inline]
    pub fn write_json(&self, out: &mut String) {
        if self.significant.is_none() {
            // Zero: spelled as written, with no sign or exponent games.
            out.push_str(if self.negative { "-0" } else { "0" });
            return;
        }
        if self.negative {
            out.push('-');
        }
        let int = self.int.trim_start_matches('0');
        out.push_str(if int.is_empty() { "0" } else { int });
        if !self.frac.is_empty() {
            out.push('.');
            out.push_str(self.frac);
        }
        out.push_str(self.exp_text);
    }

    /// Whether `other` is the same number, however either is spelled.
    pub fn same_value(&self, other: &Number) -> bool {
        match (self.significant, other.significant) {
            (None, None) => true,
            (Some(_), Some(_)) => {
                self.negative == other.negative
                    && self.magnitude == other.magnitude
                    && self.digits().eq(other.digits())
            }
            _ => false,
        }
    }

    /// The significant digits (none for zero).
    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        let (first, count) = match self.significant {
            Some((first, last)) => (first, last + 1 - first),
            None => (0, 0),
        };
        self.int.bytes().chain(self.frac.bytes()).skip(first).take(count)
    }

    /// The first byte, last byte and length of [`Number::canonical`],
    /// without writing it out.
    pub fn canonical_shape(&self) -> (u8, u8, usize) {
        let Some((first, last)) = self.significant else { return (b'0', b'0', 1) };
        let (int, frac) = (self.int.as_bytes(), self.frac.as_bytes());
        let digit = |at: usize| if at < int.len() { int[at] } else { frac[at - int.len()] };
        let count = last + 1 - first;
        let (lead, end, len) = match usize::try_from(self.magnitude) {
            // `m + 1` integer digits, zero padded, then the fraction if any is left.
            Ok(m) if count > m + 1 => (digit(first), digit(last), count + 1),
            Ok(m) => (digit(first), if count == m + 1 { digit(last) } else { b'0' }, m + 1),
            Err(_) => (b'0', digit(last), 1 + (-self.magnitude) as usize + count),
        };
        if self.negative { (b'-', end, len + 1) } else { (lead, end, len) }
    }

    /// [`Number::write_canonical`] into a new string.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    /// Appends the number in DynamoDB's own spelling, the same for every
    /// spelling of the same value: plain decimal notation with no exponent,
    /// no `+`, no leading zeros before the first digit of the integer part,
    /// no trailing zeros after the point, and zero as `0` (never `-0`).
    /// DynamoDB documents that "leading and trailing zeroes are trimmed"
    /// (Developer Guide, HowItWorks.NamingRulesDataTypes, Number), and
    /// returns `1.5E2` as `150`, `1.0` as `1`, `-0` as `0`, `1e100` as 1
    /// followed by 100 zeros and `1e-7` as `0.0000001` (boto/boto3#2500,
    /// boto/boto3#4636, aws/aws-sdk-js-v3#1983, ExtendDB/extenddb#7), so a
    /// record from DynamoDB is already spelled this way.
    pub fn write_canonical(&self, out: &mut String) {
        if self.is_canonical() {
            out.push_str(self.text);
            return;
        }
        if self.significant.is_none() {
            out.push('0');
            return;
        }
        if self.negative {
            out.push('-');
        }
        let mut digits = self.digits().map(char::from);
        match usize::try_from(self.magnitude) {
            // The leading digit is in the units place or above: zeros pad the
            // integer part, the digits left over are the fraction.
            Ok(m) => {
                out.extend((0..=m).map(|_| digits.next().unwrap_or('0')));
                let mut fraction = digits.peekable();
                if fraction.peek().is_some() {
                    out.push('.');
                    out.extend(fraction);
                }
            }
            Err(_) => {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', (-self.magnitude - 1) as usize));
                out.extend(digits);
            }
        }
    }
}

#[cold]
fn invalid(text: &str, why: &str, at: usize) -> Error {
    Error::new(format!("invalid number {text:?}: {why}"), at)
}

fn digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Number<'_>, String> {
        Number::parse(text, 0).map_err(|e| e.to_string())
    }

    fn json(text: &str) -> Result<String, String> {
        let mut out = String::new();
        parsed(text)?.write_json(&mut out);
        Ok(out)
    }

    fn canonical(text: &str) -> String {
        let mut out = String::new();
        parsed(text).unwrap().write_canonical(&mut out);
        out
    }

    #[test]
    fn keeps_digits_and_fixes_spelling() {
        for (input, want) in [
            ("4395", "4395"),
            ("-12.50", "-12.50"),
            ("+7", "7"),
            ("007", "7"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1E-130", "1E-130"),
            ("9.9999999999999999999999999999999999999E+125", "9.9999999999999999999999999999999999999E+125"),
            ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
            (
                "0.00000000000000000000000000000000000012345678901234567890123456789012345678",
                "0.00000000000000000000000000000000000012345678901234567890123456789012345678",
            ),
            ("1000000000000000000000000000000000000000000", "1000000000000000000000000000000000000000000"),
            ("0", "0"),
            ("-0.000", "-0"),
            ("00.0e5", "0"),
        ] {
            assert_eq!(json(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn plain_numbers_are_written_as_they_are() {
        let plain = [
            "1",
            "-1",
            "4395",
            "291.76",
            "-12.50",
            "0.5",
            "-0.05",
            "0.001",
            "10",
            "100.0",
            "12345678901234567890123456789012345678",
            "1234567890123456789.0123456789012345678",
            "0.0000000000000000000000000000000000001",
        ];
        let not_plain = [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "00",
            "007",
            "01.5",
            "+1",
            "1.",
            ".5",
            "-.5",
            "1e5",
            "1E-130",
            "",
            "-",
            ".",
            "1.2.3",
            "1,5",
            " 1",
            "1 ",
            "abc",
            "0x10",
            "-a",
            "1-",
            "123456789012345678901234567890123456789",
            "1234567890123456789.01234567890123456789",
            "0.00000000000000000000000000000000000001",
        ];
        for text in plain {
            assert!(is_plain(text), "{text}");
            assert_eq!(json(text).unwrap(), text);
        }
        for text in not_plain {
            assert!(!is_plain(text), "{text}");
        }
    }

    #[test]
    fn rejects_what_dynamodb_rejects() {
        for bad in [
            "",
            "-",
            ".",
            "1e",
            "1e+",
            "abc",
            "1.2.3",
            "1,5",
            " 1",
            "0x10",
            "NaN",
            "Infinity",
            "123456789012345678901234567890123456789",
            "1E+126",
            "10E+125",
            "1E-131",
            "0.1E-130",
            "1e99999999999999999999",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn one_canonical_spelling_per_value() {
        for (spellings, want) in [
            (&["1", "1.0", "1E0", "10E-1", "+1", "001", "1.", "0.1e1", "100e-2"][..], "1"),
            (&["0", "-0", "0.0", "-0.000", "0E5", ".0", "00"][..], "0"),
            (&["150", "1.5E2", "1.5e+2", "15E1", "150.00"][..], "150"),
            (&["-0.5", "-.5", "-5E-1", "-0.50"][..], "-0.5"),
            (&["0.05", "5e-2", "0.050"][..], "0.05"),
            (&["123.456", "1.23456E2", "123456e-3"][..], "123.456"),
            (&["1E+125", "10E124"][..], &format!("1{}", "0".repeat(125))),
            (&["1E-130", "0.1E-129"][..], &format!("0.{}1", "0".repeat(129))),
            (
                &["-9.9999999999999999999999999999999999999E+125"][..],
                &format!("-{}{}", "9".repeat(38), "0".repeat(88)),
            ),
            (
                &["1.2345678901234567890123456789012345678E-100"][..],
                &format!("0.{}12345678901234567890123456789012345678", "0".repeat(99)),
            ),
        ] {
            for text in spellings {
                assert_eq!(canonical(text), want, "{text}");
            }
        }
    }

    #[test]
    fn canonical_shape_is_that_of_the_canonical_text() {
        for text in [
            "0",
            "-0",
            "0.000",
            "1",
            "-1",
            "10",
            "1E2",
            "1.5E2",
            "-1.5e+2",
            "150.00",
            "0.5",
            "-.5",
            "5e-2",
            "123.456",
            "1E+125",
            "-9.9999999999999999999999999999999999999E+125",
            "1E-130",
            "-1E-130",
            "1.2345678901234567890123456789012345678E-100",
            "007",
            "1.",
            "291.76",
            "1E0",
            "9.90E1",
            "99.9E1",
        ] {
            let canonical = canonical(text);
            let b = canonical.as_bytes();
            assert_eq!(parsed(text).unwrap().canonical_shape(), (b[0], b[b.len() - 1], b.len()), "{text}");
        }
    }

    #[test]
    fn knows_when_a_text_is_already_canonical() {
        for text in [
            "0",
            "-0",
            "1",
            "1.0",
            "10",
            "100",
            "-7",
            "0.5",
            ".5",
            "5.",
            "00",
            "007",
            "0.50",
            "1E2",
            "+1",
            "-0.05",
            "1.5",
            "12345678901234567890123456789012345678",
            "0.0",
            "1e0",
        ] {
            let n = parsed(text).unwrap();
            assert_eq!(n.is_canonical(), canonical(text) == text, "{text}");
        }
    }
}
