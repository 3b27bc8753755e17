//! DynamoDB JSON attribute values to plain JSON, streamed token by token.
//!
//! | DynamoDB              | plain JSON                          |
//! |-----------------------|-------------------------------------|
//! | `{"S": "x"}`          | `"x"` (escapes kept as written)     |
//! | `{"N": "1.50"}`       | `1.50` (digits kept, see [`number`])|
//! | `{"B": "AAE="}`       | `"AAE="` (base64 kept)              |
//! | `{"BOOL": true}`      | `true`                              |
//! | `{"NULL": true}`      | `null`                              |
//! | `{"M": {...}}`        | `{...}`                             |
//! | `{"L": [...]}`        | `[...]`                             |
//! | `{"SS"/"NS"/"BS": []}`| arrays of the above                 |
//!
//! What DynamoDB never writes is refused rather than guessed at: a name twice
//! in one map, an empty set, a value twice in one set.
//!
//! [`number`]: crate::number

use crate::Error;
use crate::distinct::Distinct;
use crate::number::{Number, is_plain};
use crate::scan::{MAX_DEPTH, RawStr, Scanner};

/// Transcodes one attribute value at the scanner into `out`.
pub(crate) fn write_value(s: &mut Scanner, out: &mut String, depth: u32) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(s.error(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match s.type_tag()? {
        "S" => write_raw_string(s.string()?, out),
        "N" => write_n(s, out)?,
        "B" => write_base64(s, out).map(drop)?,
        "BOOL" => out.push_str(if s.boolean()? { "true" } else { "false" }),
        "NULL" => {
            if !s.boolean()? {
                return Err(s.error("NULL must be true"));
            }
            out.push_str("null");
        }
        "M" => write_map(s, out, depth + 1)?,
        "L" => write_list(s, out, |s, out| write_value(s, out, depth + 1)).map(drop)?,
        "SS" => write_set(s, out, Distinct::strings(), "SS", |s, out| {
            let r = s.string()?;
            write_raw_string(r, out);
            Ok((r.raw, !r.escaped()))
        })?,
        "NS" => write_set(s, out, Distinct::numbers(), "NS", write_ns_element)?,
        // Base64 has no escapes (they fail its alphabet) and is canonical
        // (see `check_base64`), so equal text is equal bytes.
        "BS" => write_set(s, out, Distinct::strings(), "BS", |s, out| Ok((write_base64(s, out)?.raw, true)))?,
        other => {
            return Err(s.error(format!(
                "unknown attribute type {other:?} (expected S, N, B, BOOL, NULL, M, L, SS, NS or BS)"
            )));
        }
    }
    s.close_value()
}

/// Transcodes a map body (`{"name": value, ...}`), as in `M`, `NewImage` or `Item`.
pub(crate) fn write_map(s: &mut Scanner, out: &mut String, depth: u32) -> Result<(), Error> {
    s.begin_object()?;
    out.push('{');
    let mut first = true;
    let mut seen = Distinct::strings();
    let mut members = 0usize;
    while let Some(name) = s.next_member(&mut first)? {
        s.unique(name, &mut seen)?;
        if members > 0 {
            out.push(',');
        }
        members += 1;
        write_raw_string(name, out);
        out.push(':');
        write_value(s, out, depth).map_err(|e| e.within(name.raw))?;
    }
    out.push('}');
    Ok(())
}

/// Transcodes a list with `item`; returns how many items it had.
fn write_list<'a>(
    s: &mut Scanner<'a>,
    out: &mut String,
    mut item: impl FnMut(&mut Scanner<'a>, &mut String) -> Result<(), Error>,
) -> Result<usize, Error> {
    s.begin_array()?;
    out.push('[');
    let mut first = true;
    let mut index = 0usize;
    while s.next_element(&mut first)? {
        if index > 0 {
            out.push(',');
        }
        item(s, out).map_err(|e| e.within(format!("[{index}]")))?;
        index += 1;
    }
    out.push(']');
    Ok(index)
}

/// Transcodes a set: a list DynamoDB keeps non-empty and free of repeats.
/// `element` transcodes one element and returns it as written and whether
/// that is its usual spelling (see [`Distinct::insert`]).
fn write_set<'a>(
    s: &mut Scanner<'a>,
    out: &mut String,
    mut seen: Distinct<'a>,
    tag: &str,
    mut element: impl FnMut(&mut Scanner<'a>, &mut String) -> Result<(&'a str, bool), Error>,
) -> Result<(), Error> {
    let at = s.pos();
    let count = write_list(s, out, |s, out| {
        let start = s.pos();
        let (raw, usual) = element(s, out)?;
        if seen.insert(raw, usual) { Ok(()) } else { Err(duplicate_element(tag, raw, start)) }
    })?;
    if count == 0 {
        return Err(empty_set(tag, at));
    }
    Ok(())
}

#[cold]
fn empty_set(tag: &str, at: usize) -> Error {
    Error::new(format!("empty {tag} set (DynamoDB sets are non-empty)"), at)
}

#[cold]
fn duplicate_element(tag: &str, raw: &str, at: usize) -> Error {
    let how = if tag == "NS" { " (numbers are compared by value)" } else { "" };
    Error::new(format!("duplicate {tag} element \"{raw}\"{how}"), at)
}

pub(crate) fn write_raw_string(r: RawStr, out: &mut String) {
    out.push('"');
    out.push_str(r.raw);
    out.push('"');
}

/// Transcodes an `N` string with its digits as written.
fn write_n(s: &mut Scanner, out: &mut String) -> Result<(), Error> {
    let at = s.pos();
    let text = s.string()?.unescape();
    if is_plain(&text) {
        out.push_str(&text);
    } else {
        Number::parse(&text, at)?.write_json(out);
    }
    Ok(())
}

/// [`write_n`] for a set element: returns it as written and whether that is
/// DynamoDB's spelling of it.
fn write_ns_element<'a>(s: &mut Scanner<'a>, out: &mut String) -> Result<(&'a str, bool), Error> {
    let at = s.pos();
    let r = s.string()?;
    let text = r.unescape();
    let n = Number::parse(&text, at)?;
    n.write_json(out);
    Ok((r.raw, !r.escaped() && n.is_canonical()))
}

/// Checks a `B` string and copies it to `out`.
pub(crate) fn write_base64<'a>(s: &mut Scanner<'a>, out: &mut String) -> Result<RawStr<'a>, Error> {
    let at = s.pos();
    let r = s.string()?;
    check_base64(r.raw).map_err(|why| Error::new(format!("invalid base64 in binary value: {why}"), at))?;
    write_raw_string(r, out);
    Ok(r)
}

/// Which bytes are base64 digits: one load a byte instead of range checks
/// made the whole decoder 3-4% faster (`--example bench`, runs interleaved).
const ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = matches!(c as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/');
        c += 1;
    }
    table
};

/// Standard base64 with padding, as DynamoDB sends binary values, and in its
/// canonical form: the bits that padding leaves over in the last character
/// are zero, as every encoder writes them. Then one byte string has exactly
/// one spelling, so binary keys and set elements can be compared as text.
pub(crate) fn check_base64(text: &str) -> Result<(), &'static str> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err("length is not a multiple of 4");
    }
    let body = b.strip_suffix(b"==").or_else(|| b.strip_suffix(b"=")).unwrap_or(b);
    if !body.iter().all(|&c| ALPHABET[usize::from(c)]) {
        return Err("character outside the base64 alphabet");
    }
    // "xx==" keeps 4 of the last character's 6 bits unused, "xxx=" keeps 2.
    let unused = match b.len() - body.len() {
        2 => 0b1111,
        1 => 0b11,
        _ => return Ok(()),
    };
    let last = body[body.len() - 1];
    let value = match last {
        b'A'..=b'Z' => last - b'A',
        b'a'..=b'z' => last - b'a' + 26,
        b'0'..=b'9' => last - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    if value & unused != 0 {
        return Err("non-zero padding bits (not canonical base64)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(ddb: &str) -> Result<String, String> {
        let mut s = Scanner::new(ddb);
        let mut out = String::new();
        write_value(&mut s, &mut out, 0).map_err(|e| e.to_string())?;
        s.end().map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn every_type() {
        for (ddb, want) in [
            (r#"{"S":"hi \"there\""}"#, r#""hi \"there\"""#),
            (r#"{"S":""}"#, r#""""#),
            (r#"{"N":"-1.50"}"#, "-1.50"),
            (r#"{"B":"AAEC/w=="}"#, r#""AAEC/w==""#),
            (r#"{"BOOL":false}"#, "false"),
            (r#"{"NULL":true}"#, "null"),
            (r#"{"M":{}}"#, "{}"),
            (r#"{"M":{"a":{"N":"1"},"b":{"L":[]}}}"#, r#"{"a":1,"b":[]}"#),
            (r#"{"L":[{"S":"x"},{"N":"2"},{"NULL":true}]}"#, r#"["x",2,null]"#),
            (r#"{"SS":["a","b"]}"#, r#"["a","b"]"#),
            (r#"{"NS":["1","2.5","1E-130"]}"#, "[1,2.5,1E-130]"),
            (r#"{"BS":["AA==","AQ=="]}"#, r#"["AA==","AQ=="]"#),
            (" { \"S\" : \"spaced\" } ", r#""spaced""#),
        ] {
            assert_eq!(plain(ddb).unwrap(), want, "{ddb}");
        }
    }

    #[test]
    fn rejects_malformed_values_with_a_path() {
        for (ddb, why) in [
            (r#"{"X":"1"}"#, "unknown attribute type"),
            (r#"{}"#, "needs a type"),
            (r#"{"S":"a","N":"1"}"#, "exactly one type"),
            (r#"{"N":"one"}"#, "invalid number"),
            (r#"{"NULL":false}"#, "NULL must be true"),
            (r#"{"B":"abc"}"#, "invalid base64"),
            (r#"{"S":1}"#, "expected '\"'"),
            (r#"{"M":{"a":{"L":[{"N":"x"}]}}}"#, "a[0]: invalid number"),
        ] {
            let err = plain(ddb).unwrap_err();
            assert!(err.contains(why), "{ddb}: {err}");
        }
    }

    #[test]
    fn a_map_names_each_attribute_once() {
        let err = plain(r#"{"M":{"a":{"N":"1"},"b":{"N":"2"},"a":{"N":"3"}}}"#).unwrap_err();
        assert_eq!(err, r#"duplicate member name "a" (at byte 34)"#);
        // Compared after unescaping, also deep inside and in bigger maps.
        let err = plain(r#"{"L":[{"M":{"x":{"M":{"a\u00e9":{"N":"1"},"aé":{"N":"2"}}}}}]}"#).unwrap_err();
        assert_eq!(err, r#"[0].x: duplicate member name "aé" (at byte 42)"#);
        let many = |repeat: usize| {
            let names: Vec<String> = (0..40).map(|i| format!(r#""n{i}":{{"NULL":true}}"#)).collect();
            format!(r#"{{"M":{{{},"n{repeat}":{{"S":"again"}}}}}}"#, names.join(","))
        };
        for repeat in [0, 15, 16, 39] {
            assert!(
                plain(&many(repeat)).unwrap_err().contains(&format!("duplicate member name \"n{repeat}\""))
            );
        }
        assert!(plain(&many(40)).is_ok());
        assert_eq!(plain(r#"{"M":{"a":{"S":"x"},"A":{"S":"y"}}}"#).unwrap(), r#"{"a":"x","A":"y"}"#);
        assert!(plain(r#"{"S":"a","S":"b"}"#).unwrap_err().contains("exactly one type"));
    }

    #[test]
    fn sets_are_non_empty() {
        for tag in ["SS", "NS", "BS"] {
            let err = plain(&format!(r#"{{"{tag}":[]}}"#)).unwrap_err();
            assert_eq!(
                err,
                format!("empty {tag} set (DynamoDB sets are non-empty) (at byte {})", tag.len() + 4)
            );
        }
        assert!(plain(r#"{"SS":[ ]}"#).unwrap_err().contains("empty SS set"));
    }

    #[test]
    fn set_elements_are_distinct_values() {
        for (ddb, why) in [
            (r#"{"SS":["a","b","a"]}"#, r#"[2]: duplicate SS element "a" (at byte 15)"#),
            (r#"{"SS":["é","\u00e9"]}"#, r#"[1]: duplicate SS element "\u00e9""#),
            (r#"{"NS":["1","1.0"]}"#, r#"[1]: duplicate NS element "1.0" (numbers are compared by value)"#),
            (r#"{"NS":["1E0","10E-1"]}"#, r#"[1]: duplicate NS element "10E-1""#),
            (r#"{"NS":["-0","0"]}"#, r#"[1]: duplicate NS element "0""#),
            (r#"{"NS":["0.5",".50"]}"#, r#"[1]: duplicate NS element ".50""#),
            (r#"{"NS":["7","\u0037"]}"#, r#"[1]: duplicate NS element "\u0037""#),
            (r#"{"BS":["AAE=","AQI=","AAE="]}"#, r#"[2]: duplicate BS element "AAE=""#),
        ] {
            let err = plain(ddb).unwrap_err();
            assert!(err.starts_with(why), "{ddb}: {err}");
        }
        for ddb in [
            r#"{"SS":["a","A","a "]}"#,
            r#"{"NS":["1","-1","10","0.1","1E-130","1E+125"]}"#,
            r#"{"BS":["AA==","AAA=","AAAA"]}"#,
        ] {
            assert!(plain(ddb).is_ok(), "{ddb}");
        }
        let numbers: Vec<String> = (0..30).map(|i| format!(r#""{i}""#)).collect();
        let big = |extra: &str| format!(r#"{{"NS":[{},{extra}]}}"#, numbers.join(","));
        assert!(plain(&big(r#""30""#)).is_ok());
        assert!(plain(&big(r#""2.90E1""#)).unwrap_err().starts_with("[30]: duplicate NS element \"2.90E1\""));
    }

    #[test]
    fn base64_is_canonical() {
        for good in ["", "AA==", "AQ==", "AAE=", "AAEC", "/w==", "+/8="] {
            assert_eq!(check_base64(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("AB==", "padding bits"),
            ("A/==", "padding bits"),
            ("AAF=", "padding bits"),
            ("AA/=", "padding bits"),
            ("A===", "alphabet"),
            ("AA=A", "alphabet"),
            ("AAA", "multiple of 4"),
        ] {
            assert!(check_base64(bad).unwrap_err().contains(why), "{bad}");
        }
        assert!(plain(r#"{"B":"AB=="}"#).unwrap_err().contains("not canonical base64"));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = |n: usize| format!("{}{{\"NULL\":true}}{}", r#"{"L":["#.repeat(n), "]}".repeat(n));
        assert!(plain(&deep(40)).is_ok());
        assert!(plain(&deep(100)).unwrap_err().contains("nested deeper"));
    }
}
