//! DynamoDB numbers (`{"N": "..."}`) as JSON number tokens.
//!
//! DynamoDB sends numbers as decimal text with up to 38 significant digits and
//! a magnitude from 1E-130 to 9.99...E+125, beyond what `f64` holds. We keep
//! the digits exactly and only fix the spelling where JSON's grammar is
//! stricter than DynamoDB's (a leading `+`, leading zeros, `.5`, `5.`).

use crate::Error;

/// Most significant digits DynamoDB stores.
const MAX_DIGITS: usize = 38;
/// Largest decimal exponent of the leading digit (9.99...E+125).
const MAX_EXP: i64 = 125;
/// Smallest decimal exponent of the leading digit (1E-130).
const MIN_EXP: i64 = -130;

/// Checks `text` as a DynamoDB number and appends its JSON spelling to `out`.
/// `at` is the input offset used in errors.
pub(crate) fn write_number(out: &mut String, text: &str, at: usize) -> Result<(), Error> {
    let invalid = |why: &str| Error::new(format!("invalid number {text:?}: {why}"), at);
    let b = text.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int = &text[int_start..i];
    let mut frac = "";
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac = &text[start..i];
    }
    if int.is_empty() && frac.is_empty() {
        return Err(invalid("no digits"));
    }
    let mut exp_text = "";
    let mut exp: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let start = i;
        i += 1;
        let sign_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let digits_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Saturate: anything this large is out of range anyway.
            exp = (exp * 10 + i64::from(b[i] - b'0')).min(1 << 40);
            i += 1;
        }
        if i == digits_start {
            return Err(invalid("no digits in exponent"));
        }
        if sign_neg {
            exp = -exp;
        }
        exp_text = &text[start..i];
    }
    if i != b.len() {
        return Err(invalid("unexpected character"));
    }

    // Significant digits run from the first to the last non-zero digit.
    let all = || int.bytes().chain(frac.bytes());
    let Some(first_nz) = all().position(|d| d != b'0') else {
        // Zero: spelled as written, with no sign or exponent games.
        out.push_str(if negative { "-0" } else { "0" });
        return Ok(());
    };
    let trailing_zeros = all().rev().position(|d| d != b'0').expect("a non-zero digit exists");
    let last_nz = int.len() + frac.len() - 1 - trailing_zeros;
    if last_nz - first_nz + 1 > MAX_DIGITS {
        return Err(invalid("more than 38 significant digits"));
    }
    // Exponent of the leading digit: its place relative to the decimal point.
    let magnitude = int.len() as i64 - 1 - first_nz as i64 + exp;
    if magnitude > MAX_EXP {
        return Err(invalid("larger than 9.9999999999999999999999999999999999999E+125"));
    }
    if magnitude < MIN_EXP {
        return Err(invalid("smaller than 1E-130"));
    }

    if negative {
        out.push('-');
    }
    let int = int.trim_start_matches('0');
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out.push_str(exp_text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> Result<String, String> {
        let mut out = String::new();
        write_number(&mut out, text, 0).map(|_| out).map_err(|e| e.to_string())
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
            assert_eq!(norm(input).unwrap(), want, "{input}");
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
            assert!(norm(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
