//! The canonical key: one spelling per item, wherever the item came from.
//!
//! A key is a compact JSON object of the key attributes sorted by name, with
//! strings spelled canonically (see [`write_escaped`]) and numbers in
//! DynamoDB's own spelling (see [`Number::write_canonical`]): `1`, `1.0` and
//! `1E0` are one item to DynamoDB, so they are one key here. The same item
//! gives the same text from a stream record's `Keys` and from an export
//! line, so the key can be compared as text in any database.

use std::borrow::Cow;

use crate::Error;
use crate::attr::{write_base64, write_raw_string};
use crate::distinct::Distinct;
use crate::number::Number;
use crate::scan::{Scanner, write_escaped};

/// Reads a `Keys` object (`{"pk": {"S": "a"}, ...}`) into its canonical JSON.
pub(crate) fn read_keys(s: &mut Scanner) -> Result<String, Error> {
    // DynamoDB lists the key attributes sorted, with plain names: then the
    // key is written as it is read. Otherwise it is read again and sorted.
    let start = s.clone();
    s.begin_object()?;
    let mut out = String::with_capacity(64);
    out.push('{');
    let mut first = true;
    let mut seen = Distinct::strings();
    let mut previous: Option<&str> = None;
    while let Some(name) = s.next_member(&mut first)? {
        s.unique(name, &mut seen)?;
        if name.escaped() || previous.is_some_and(|p| p >= name.raw) {
            *s = start;
            return read_unsorted_keys(s);
        }
        if previous.is_some() {
            out.push(',');
        }
        previous = Some(name.raw);
        // A name without escapes has nothing `write_escaped` would escape.
        write_raw_string(name, &mut out);
        out.push(':');
        key_value(s, &mut out).map_err(|e| e.within(name.raw))?;
    }
    if previous.is_none() {
        return Err(s.error("Keys has no attributes"));
    }
    out.push('}');
    Ok(out)
}

/// [`read_keys`] for attributes in any order.
fn read_unsorted_keys(s: &mut Scanner) -> Result<String, Error> {
    s.begin_object()?;
    let mut parts: Vec<(Cow<str>, String)> = Vec::with_capacity(2);
    let mut first = true;
    let mut seen = Distinct::strings();
    while let Some(name) = s.next_member(&mut first)? {
        s.unique(name, &mut seen)?;
        let mut value = String::new();
        key_value(s, &mut value).map_err(|e| e.within(name.raw))?;
        parts.push((name.unescape(), value));
    }
    if parts.is_empty() {
        return Err(s.error("Keys has no attributes"));
    }
    Ok(canonical(parts))
}

/// The canonical key of an item (`{"pk": {"S": "a"}, "qty": ...}`), made of
/// the attributes `names`, in whatever order they are listed. Every name of
/// the item is checked for repeats, as [`crate::attr::write_map`] does.
pub(crate) fn item_key(s: &mut Scanner, names: &[String]) -> Result<String, Error> {
    s.begin_object()?;
    let mut parts: Vec<(Cow<str>, String)> = Vec::with_capacity(names.len());
    let mut first = true;
    let mut seen = Distinct::strings();
    while let Some(name) = s.next_member(&mut first)? {
        s.unique(name, &mut seen)?;
        let name_text = name.unescape();
        if names.iter().any(|n| *n == name_text) {
            let mut value = String::new();
            key_value(s, &mut value).map_err(|e| e.within(name.raw))?;
            parts.push((name_text, value));
        } else {
            s.skip_value(1)?;
        }
    }
    if let Some(missing) = names.iter().find(|n| !parts.iter().any(|(p, _)| p == *n)) {
        return Err(Error::record(format!("the item has no key attribute {missing:?}")));
    }
    Ok(canonical(parts))
}

/// Sorts the attributes (already known distinct) by name and writes them as
/// compact JSON.
fn canonical(mut parts: Vec<(Cow<str>, String)>) -> String {
    parts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(parts.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>() + 2);
    out.push('{');
    for (i, (name, value)) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_escaped(&mut out, name);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// A key attribute: only S, N and B may be keys, and DynamoDB refuses empty
/// strings and binaries in keys.
fn key_value(s: &mut Scanner, out: &mut String) -> Result<(), Error> {
    let tag = s.type_tag()?;
    let at = s.pos();
    match tag {
        "S" => {
            let r = s.string()?;
            if r.raw.is_empty() {
                return Err(empty_key("string", at));
            }
            if r.escaped() {
                write_escaped(out, &r.unescape());
            } else {
                write_raw_string(r, out);
            }
        }
        "N" => Number::parse(&s.string()?.unescape(), at)?.write_canonical(out),
        "B" => {
            if write_base64(s, out)?.raw.is_empty() {
                return Err(empty_key("binary", at));
            }
        }
        other => return Err(s.error(format!("a key attribute must be S, N or B, not {other:?}"))),
    }
    s.close_value()
}

#[cold]
fn empty_key(what: &str, at: usize) -> Error {
    Error::new(format!("an empty {what} cannot be a key value"), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(keys: &str) -> Result<String, String> {
        read_keys(&mut Scanner::new(keys)).map_err(|e| e.to_string())
    }

    #[test]
    fn sorted_compact_and_order_independent() {
        let a = key(r#"{"sk":{"N":"10"},"pk":{"S":"user#1"}}"#).unwrap();
        let b = key(r#"{ "pk" : {"S":"user#1"}, "sk" : {"N":"10"} }"#).unwrap();
        assert_eq!(a, r#"{"pk":"user#1","sk":10}"#);
        assert_eq!(a, b);
    }

    #[test]
    fn strings_are_spelled_one_way() {
        let escaped = key(r#"{"id":{"S":"caf\u00e9 \/ \"q\""}}"#).unwrap();
        let literal = key(r#"{"id":{"S":"café / \"q\""}}"#).unwrap();
        assert_eq!(escaped, literal);
        assert_eq!(literal, r#"{"id":"café / \"q\""}"#);
    }

    #[test]
    fn any_order_and_spelling_of_names_gives_one_key() {
        let want = r#"{"a":"x","b":1,"c":"AA=="}"#;
        for keys in [
            r#"{"a":{"S":"x"},"b":{"N":"1"},"c":{"B":"AA=="}}"#,
            r#"{"c":{"B":"AA=="},"b":{"N":"1.0"},"a":{"S":"x"}}"#,
            r#"{"a":{"S":"x"},"c":{"B":"AA=="},"b":{"N":"1"}}"#,
            r#"{"b":{"N":"1"},"\u0061":{"S":"x"},"c":{"B":"AA=="}}"#,
            r#"{"a":{"S":"x"},"\u0062":{"N":"1"},"c":{"B":"AA=="}}"#,
        ] {
            assert_eq!(key(keys).unwrap(), want, "{keys}");
        }
        assert_eq!(key(r#"{"":{"S":"x"},"a":{"S":"y"}}"#).unwrap(), r#"{"":"x","a":"y"}"#);
        assert_eq!(key(r#"{"a":{"S":"y"},"":{"S":"x"}}"#).unwrap(), r#"{"":"x","a":"y"}"#);
        assert_eq!(
            key(r#"{"b":{"S":"x"},"a":{"S":""}}"#).unwrap_err(),
            "a: an empty string cannot be a key value (at byte 24)"
        );
        assert_eq!(
            key(r#"{"a":{"S":"x"},"b":{"S":"y"},"a":{"S":"z"}}"#).unwrap_err(),
            r#"duplicate member name "a" (at byte 29)"#
        );
    }

    #[test]
    fn binary_keys_stay_base64() {
        assert_eq!(key(r#"{"b":{"B":"AAE="}}"#).unwrap(), r#"{"b":"AAE="}"#);
    }

    #[test]
    fn numbers_are_spelled_as_dynamodb_spells_them() {
        for (spellings, want) in [
            (&["1", "1.0", "1E0", "10E-1", "+1", "01", "1.", "\\u0031"][..], r#"{"n":1}"#),
            (&["0", "-0", "0.00", "0E+7"][..], r#"{"n":0}"#),
            (&["-150", "-1.5E2", "-150.0"][..], r#"{"n":-150}"#),
            (&["0.25", ".25", "25E-2", "0.250"][..], r#"{"n":0.25}"#),
        ] {
            for n in spellings {
                assert_eq!(key(&format!(r#"{{"n":{{"N":"{n}"}}}}"#)).unwrap(), want, "{n}");
            }
        }
        assert_eq!(key(r#"{"n":{"N":"1E+3"}}"#).unwrap(), r#"{"n":1000}"#);
        assert_eq!(key(r#"{"n":{"N":"1E-3"}}"#).unwrap(), r#"{"n":0.001}"#);
        assert!(key(r#"{"n":{"N":"1E+126"}}"#).unwrap_err().contains("invalid number"));
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(key("{}").unwrap_err().contains("no attributes"));
        assert!(key(r#"{"a":{"M":{}}}"#).unwrap_err().contains("must be S, N or B"));
        assert_eq!(
            key(r#"{"a":{"S":"x"},"\u0061":{"S":"y"}}"#).unwrap_err(),
            r#"duplicate member name "a" (at byte 15)"#
        );
        assert_eq!(
            key(r#"{"a":{"S":""}}"#).unwrap_err(),
            "a: an empty string cannot be a key value (at byte 10)"
        );
        assert_eq!(
            key(r#"{"a":{"B":""}}"#).unwrap_err(),
            "a: an empty binary cannot be a key value (at byte 10)"
        );
        assert!(key(r#"{"a":{"B":"AB=="}}"#).unwrap_err().contains("not canonical base64"));
    }
}
