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
//! [`number`]: crate::number

use crate::Error;
use crate::number::write_number;
use crate::scan::{MAX_DEPTH, RawStr, Scanner};

/// Transcodes one attribute value at the scanner into `out`.
pub(crate) fn write_value(s: &mut Scanner, out: &mut String, depth: u32) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(s.error(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match s.type_tag()? {
        "S" => write_raw_string(s.string()?, out),
        "N" => write_n(s, out)?,
        "B" => write_base64(s, out)?,
        "BOOL" => out.push_str(if s.boolean()? { "true" } else { "false" }),
        "NULL" => {
            if !s.boolean()? {
                return Err(s.error("NULL must be true"));
            }
            out.push_str("null");
        }
        "M" => write_map(s, out, depth + 1)?,
        "L" => write_list(s, out, |s, out| write_value(s, out, depth + 1))?,
        "SS" => write_list(s, out, |s, out| {
            write_raw_string(s.string()?, out);
            Ok(())
        })?,
        "NS" => write_list(s, out, write_n)?,
        "BS" => write_list(s, out, write_base64)?,
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
    let mut members = 0usize;
    while let Some(name) = s.next_member(&mut first)? {
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

fn write_list(
    s: &mut Scanner,
    out: &mut String,
    mut item: impl FnMut(&mut Scanner, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
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
    Ok(())
}

pub(crate) fn write_raw_string(r: RawStr, out: &mut String) {
    out.push('"');
    out.push_str(r.raw);
    out.push('"');
}

pub(crate) fn write_n(s: &mut Scanner, out: &mut String) -> Result<(), Error> {
    let at = s.pos();
    let text = s.string()?.unescape()?;
    write_number(out, &text, at)
}

pub(crate) fn write_base64(s: &mut Scanner, out: &mut String) -> Result<(), Error> {
    let at = s.pos();
    let r = s.string()?;
    check_base64(r.raw).map_err(|why| Error::new(format!("invalid base64 in binary value: {why}"), at))?;
    write_raw_string(r, out);
    Ok(())
}

/// Standard base64 with padding, as DynamoDB sends binary values.
pub(crate) fn check_base64(text: &str) -> Result<(), &'static str> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err("length is not a multiple of 4");
    }
    let body = b.strip_suffix(b"==").or_else(|| b.strip_suffix(b"=")).unwrap_or(b);
    if body.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/') {
        Ok(())
    } else {
        Err("character outside the base64 alphabet")
    }
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
    fn depth_is_bounded() {
        let deep = |n: usize| format!("{}{{\"NULL\":true}}{}", r#"{"L":["#.repeat(n), "]}".repeat(n));
        assert!(plain(&deep(40)).is_ok());
        assert!(plain(&deep(100)).unwrap_err().contains("nested deeper"));
    }
}
