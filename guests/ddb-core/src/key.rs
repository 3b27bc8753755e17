//! The canonical key: one spelling per item, wherever the item came from.
//!
//! A key is a compact JSON object of the key attributes sorted by name, with
//! strings spelled canonically (see [`write_escaped`]). The same item gives
//! the same text from a stream record's `Keys` and from an export line, so
//! the key can be compared as text in any database.

use std::borrow::Cow;

use crate::Error;
use crate::attr::{write_base64, write_n, write_raw_string};
use crate::scan::{Scanner, write_escaped};

/// Reads a `Keys` object (`{"pk": {"S": "a"}, ...}`) into its canonical JSON.
pub(crate) fn read_keys(s: &mut Scanner) -> Result<String, Error> {
    s.begin_object()?;
    let mut parts: Vec<(Cow<str>, String)> = Vec::with_capacity(2);
    let mut first = true;
    while let Some(name) = s.next_member(&mut first)? {
        let mut value = String::new();
        key_value(s, &mut value).map_err(|e| e.within(name.raw))?;
        parts.push((name.unescape()?, value));
    }
    if parts.is_empty() {
        return Err(s.error("Keys has no attributes"));
    }
    canonical(parts).map_err(|reason| s.error(reason))
}

/// The canonical key of an item (`{"pk": {"S": "a"}, "qty": ...}`), made of
/// the attributes `names`, in whatever order they are listed.
pub(crate) fn item_key(s: &mut Scanner, names: &[String]) -> Result<String, Error> {
    s.begin_object()?;
    let mut parts: Vec<(Cow<str>, String)> = Vec::with_capacity(names.len());
    let mut first = true;
    while let Some(name) = s.next_member(&mut first)? {
        let name_text = name.unescape()?;
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
    canonical(parts).map_err(Error::record)
}

/// Sorts the attributes by name and writes them as compact JSON.
fn canonical(mut parts: Vec<(Cow<str>, String)>) -> Result<String, String> {
    parts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = parts.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("key attribute {:?} appears twice", w[0].0));
    }
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
    Ok(out)
}

/// A key attribute: only S, N and B may be keys.
fn key_value(s: &mut Scanner, out: &mut String) -> Result<(), Error> {
    match s.type_tag()? {
        "S" => {
            let r = s.string()?;
            if r.escaped {
                write_escaped(out, &r.unescape()?);
            } else {
                write_raw_string(r, out);
            }
        }
        "N" => write_n(s, out)?,
        "B" => write_base64(s, out)?,
        other => return Err(s.error(format!("a key attribute must be S, N or B, not {other:?}"))),
    }
    s.close_value()
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
    fn binary_keys_stay_base64() {
        assert_eq!(key(r#"{"b":{"B":"AAE="}}"#).unwrap(), r#"{"b":"AAE="}"#);
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(key("{}").unwrap_err().contains("no attributes"));
        assert!(key(r#"{"a":{"M":{}}}"#).unwrap_err().contains("must be S, N or B"));
        assert!(key(r#"{"a":{"S":"x"},"a":{"S":"y"}}"#).unwrap_err().contains("twice"));
    }
}
