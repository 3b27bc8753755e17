//! A line of a DynamoDB export's data file (DYNAMODB_JSON format).
//!
//! ```json
//! {"Item": {"id": {"S": "a"}, "qty": {"N": "2"}}}
//! {"Metadata": {"WriteTimestampMicros": {"N": "1684189640771000"}},
//!  "Keys": {"id": {"S": "a"}}, "NewImage": {...}, "OldImage": {...}}
//! ```
//! The first is a full export: the item as of `exportTime`, keyed by the
//! table's key attributes (a full export does not say which they are). The
//! second is an incremental export: the item's last write in the export's
//! window, deleted when there is no `NewImage`.

use crate::attr::write_map;
use crate::distinct::Members;
use crate::key::{item_key, read_keys};
use crate::scan::{Scanner, utf8_first};
use crate::{Change, ChangeKind, Error};

/// Where a line comes from: what a line alone does not say.
#[derive(Debug, Clone, Copy)]
pub struct ExportLine<'a> {
    /// The exported DynamoDB table.
    pub table: &'a str,
    /// The table's key attribute names, in any order; full exports need them.
    pub keys: &'a [String],
    /// The export's `exportTime`, in microseconds: the order of full-export items.
    pub export_micros: u64,
    /// An incremental export (`Metadata`/`Keys`/`NewImage` lines).
    pub incremental: bool,
}

/// Decodes one export line into a [`Change`] with no event id: full-export
/// items are upserts named `BULK_LOAD` at `exportTime`; incremental lines are
/// `INSERT`, `MODIFY` or `REMOVE` at their `WriteTimestampMicros`.
pub fn decode_export_line(payload: &[u8], line: ExportLine) -> Result<Change, Error> {
    read_line(payload, line).map_err(|e| utf8_first(payload, "line", e))
}

/// [`decode_export_line`], with UTF-8 checked along the way.
fn read_line(payload: &[u8], line: ExportLine) -> Result<Change, Error> {
    let mut s = Scanner::new(payload);
    let mut item = None;
    let mut written = None;
    let (mut key, mut new_image, mut old_image) = (None, None, None);
    s.begin_object()?;
    let mut first = true;
    let mut seen = Members::default();
    while let Some(name) = s.next_member(&mut first)? {
        let field = &*name.unescape();
        let slot = match field {
            "Item" => 1,
            "Metadata" => 2,
            "Keys" => 3,
            "NewImage" => 4,
            "OldImage" => 5,
            _ => 0,
        };
        seen.add(&s, name, slot)?;
        let within = |e: Error| e.within(field);
        match field {
            "Item" if !line.incremental => {
                if line.keys.is_empty() {
                    return Err(Error::record(format!(
                        "a full export's items carry no key: list the key attributes of table {:?} in the manifest's `keys`",
                        line.table
                    )));
                }
                key = Some(item_key(&mut s.clone(), line.keys).map_err(within)?);
                item = Some(image(&mut s).map_err(within)?);
            }
            "Metadata" if line.incremental => written = Some(read_metadata(&mut s).map_err(within)?),
            "Keys" if line.incremental => key = Some(read_keys(&mut s).map_err(within)?),
            "NewImage" if line.incremental => new_image = Some(image(&mut s).map_err(within)?),
            "OldImage" if line.incremental => old_image = Some(image(&mut s).map_err(within)?),
            _ => s.skip_value(1)?,
        }
    }
    s.end()?;

    let table = line.table.to_owned();
    if !line.incremental {
        let item =
            item.ok_or_else(|| Error::record("the line has no Item (is this a full export's data file?)"))?;
        return Ok(Change {
            table,
            key: key.expect("read with the item"),
            kind: ChangeKind::Upsert,
            micros: line.export_micros,
            event_id: String::new(),
            event_name: "BULK_LOAD".into(),
            new_image: Some(item),
            old_image: None,
        });
    }
    let micros = written.ok_or_else(|| {
        Error::record(
            "the line has no Metadata.WriteTimestampMicros (is this an incremental export's data file?)",
        )
    })?;
    let (kind, event_name) = match (&new_image, &old_image) {
        (Some(_), None) => (ChangeKind::Upsert, "INSERT"),
        (Some(_), Some(_)) => (ChangeKind::Upsert, "MODIFY"),
        (None, _) => (ChangeKind::Delete, "REMOVE"),
    };
    Ok(Change {
        table,
        key: key.ok_or_else(|| Error::record("the line has no Keys"))?,
        kind,
        micros,
        event_id: String::new(),
        event_name: event_name.into(),
        new_image,
        old_image,
    })
}

fn image(s: &mut Scanner) -> Result<String, Error> {
    let mut out = String::with_capacity(s.remaining());
    write_map(s, &mut out, 1)?;
    Ok(out)
}

/// `{"WriteTimestampMicros": {"N": "..."}}`; a bare string or number is accepted too.
fn read_metadata(s: &mut Scanner) -> Result<u64, Error> {
    let mut micros = None;
    s.begin_object()?;
    let mut first = true;
    let mut seen = Members::default();
    while let Some(name) = s.next_member(&mut first)? {
        let known = name.unescape() == "WriteTimestampMicros";
        seen.add(s, name, u32::from(known))?;
        if !known {
            s.skip_value(2)?;
            continue;
        }
        let at = s.pos();
        let text = match s.peek() {
            Some(b'{') => {
                let tag = s.type_tag()?;
                if tag != "N" {
                    return Err(s.error(format!("WriteTimestampMicros must be N, not {tag:?}")));
                }
                let text = s.string()?.raw;
                s.close_value()?;
                text
            }
            Some(b'"') => s.string()?.raw,
            _ => s.number()?,
        };
        let parsed = text.parse::<u64>().map_err(|_| {
            Error::new(format!("WriteTimestampMicros {text:?} is not a whole number of microseconds"), at)
        })?;
        micros = Some(parsed);
    }
    micros.ok_or_else(|| Error::record("Metadata has no WriteTimestampMicros"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["sk", "pk"];

    fn full(line: &str) -> Result<Change, String> {
        let keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        let line_info = ExportLine { table: "t", keys: &keys, export_micros: 7, incremental: false };
        decode_export_line(line.as_bytes(), line_info).map_err(|e| e.to_string())
    }

    fn incremental(line: &str) -> Result<Change, String> {
        decode_export_line(
            line.as_bytes(),
            ExportLine { table: "t", keys: &[], export_micros: 7, incremental: true },
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn full_export_items_are_bulk_loads_at_export_time() {
        let c = full(r#"{"Item":{"qty":{"N":"2.50"},"pk":{"S":"a"},"sk":{"N":"1"},"tags":{"SS":["x"]}}}"#)
            .unwrap();
        assert_eq!(c.key, r#"{"pk":"a","sk":1}"#);
        assert_eq!(c.new_image.as_deref(), Some(r#"{"qty":2.50,"pk":"a","sk":1,"tags":["x"]}"#));
        assert_eq!(
            (c.kind, c.micros, c.event_name.as_str(), c.table.as_str()),
            (ChangeKind::Upsert, 7, "BULK_LOAD", "t")
        );
    }

    #[test]
    fn the_key_matches_the_stream_records_key() {
        let stream = crate::decode_stream_record(
            br#"{"eventID":"e","eventName":"INSERT","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1,
            "Keys":{"sk":{"N":"1"},"pk":{"S":"caf\u00e9"}},"NewImage":{"pk":{"S":"caf\u00e9"},"sk":{"N":"1"}}}}"#,
        )
        .unwrap();
        let export = full(r#"{"Item":{"pk":{"S":"café"},"sk":{"N":"1"}}}"#).unwrap();
        assert_eq!(stream.key, export.key);
    }

    #[test]
    fn full_export_errors_name_the_problem() {
        assert!(full(r#"{"Item":{"pk":{"S":"a"}}}"#).unwrap_err().contains("no key attribute \"sk\""));
        assert!(
            full(r#"{"Item":{"pk":{"M":{}},"sk":{"N":"1"}}}"#).unwrap_err().contains("must be S, N or B")
        );
        assert!(full(r#"{"Keys":{"pk":{"S":"a"}}}"#).unwrap_err().contains("no Item"));
        assert!(full(r#"{"Item":{"pk":{"S":"a"},"sk":{"N":"1x"}}}"#).is_err());
        let none = decode_export_line(
            br#"{"Item":{"pk":{"S":"a"}}}"#,
            ExportLine { table: "t", keys: &[], export_micros: 0, incremental: false },
        );
        assert!(none.unwrap_err().to_string().contains("`keys`"));
    }

    #[test]
    fn number_keys_match_the_stream_records_key_whatever_the_spelling() {
        let stream = crate::decode_stream_record(
            br#"{"eventID":"e","eventName":"INSERT","tableName":"t","dynamodb":{"ApproximateCreationDateTime":1,
            "Keys":{"sk":{"N":"1.50E1"},"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"sk":{"N":"1.50E1"}}}}"#,
        )
        .unwrap();
        assert_eq!(stream.key, r#"{"pk":"a","sk":15}"#);
        for sk in ["15", "15.0", "1.5E1", "150e-1", "+015"] {
            let line = format!(r#"{{"Item":{{"pk":{{"S":"a"}},"sk":{{"N":"{sk}"}}}}}}"#);
            let export = full(&line).unwrap();
            assert_eq!(export.key, stream.key, "{sk}");
            // The image keeps the number as written.
            assert!(export.new_image.unwrap().contains(&format!(":{}", sk.trim_start_matches(['+', '0']))));
        }
        let incremental_line = incremental(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"},"sk":{"N":"150E-1"}}}"#,
        )
        .unwrap();
        assert_eq!(incremental_line.key, stream.key);
    }

    #[test]
    fn a_name_twice_is_refused_in_every_part_of_a_line() {
        for (line, why) in [
            (
                r#"{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"pk":{"S":"b"}}}"#,
                r#"Item: duplicate member name "pk""#,
            ),
            (
                r#"{"Item":{"pk":{"S":"a"},"x":{"N":"1"},"sk":{"N":"1"},"x":{"N":"1"}}}"#,
                r#"Item: duplicate member name "x""#,
            ),
            (r#"{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}},"Item":{}}"#, r#"duplicate member name "Item""#),
            (r#"{"Item":{"pk":{"S":""},"sk":{"N":"1"}}}"#, "Item.pk: an empty string cannot be a key value"),
            (r#"{"Item":{"pk":{"S":"a"},"sk":{"B":""}}}"#, "Item.sk: an empty binary cannot be a key value"),
        ] {
            let err = full(line).unwrap_err();
            assert!(err.starts_with(why), "{line}: {err}");
        }
        let meta = r#""Metadata":{"WriteTimestampMicros":{"N":"1"}}"#;
        let keys = r#""Keys":{"pk":{"S":"a"}}"#;
        for (line, why) in [
            (format!(r#"{{{meta},{keys},{keys}}}"#), r#"duplicate member name "Keys""#),
            (format!(r#"{{{meta},{meta},{keys}}}"#), r#"duplicate member name "Metadata""#),
            (
                format!(r#"{{"Metadata":{{"WriteTimestampMicros":"1","WriteTimestampMicros":"2"}},{keys}}}"#),
                r#"Metadata: duplicate member name "WriteTimestampMicros""#,
            ),
            (
                format!(r#"{{{meta},"Keys":{{"pk":{{"S":"a"}},"pk":{{"S":"a"}}}}}}"#),
                r#"Keys: duplicate member name "pk""#,
            ),
            (
                format!(r#"{{{meta},{keys},"NewImage":{{"pk":{{"S":"a"}},"pk":{{"S":"a"}}}}}}"#),
                r#"NewImage: duplicate member name "pk""#,
            ),
            (
                format!(r#"{{{meta},{keys},"OldImage":{{"pk":{{"S":"a"}},"p\u006b":{{"S":"a"}}}}}}"#),
                r#"OldImage: duplicate member name "pk""#,
            ),
            (
                format!(r#"{{{meta},"Keys":{{"pk":{{"S":""}}}}}}"#),
                "Keys.pk: an empty string cannot be a key value",
            ),
        ] {
            let err = incremental(&line).unwrap_err();
            assert!(err.starts_with(why), "{line}: {err}");
        }
    }

    #[test]
    fn incremental_lines_are_writes_and_deletes_at_their_timestamp() {
        let new = incremental(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1680109764000000"}},"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (new.kind, new.micros, new.event_name.as_str()),
            (ChangeKind::Upsert, 1_680_109_764_000_000, "INSERT")
        );
        let modified = incremental(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"5"}},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"}}}"#,
        )
        .unwrap();
        assert_eq!(modified.event_name, "MODIFY");
        let deleted =
            incremental(r#"{"Metadata":{"WriteTimestampMicros":"6"},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}}}"#)
                .unwrap();
        assert_eq!(
            (deleted.kind, deleted.new_image, deleted.event_name.as_str()),
            (ChangeKind::Delete, None, "REMOVE")
        );
        assert_eq!(deleted.key, r#"{"pk":"a"}"#);
    }

    #[test]
    fn incremental_errors_name_the_problem() {
        assert!(incremental(r#"{"Keys":{"pk":{"S":"a"}}}"#).unwrap_err().contains("WriteTimestampMicros"));
        assert!(
            incremental(r#"{"Metadata":{"WriteTimestampMicros":{"N":"-1"}},"Keys":{"pk":{"S":"a"}}}"#)
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            incremental(r#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}}}"#)
                .unwrap_err()
                .contains("no Keys")
        );
        assert!(incremental(r#"{"Item":{"pk":{"S":"a"}}}"#).is_err());
        assert!(
            incremental(r#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"}}"#).is_err()
        );
    }
}
