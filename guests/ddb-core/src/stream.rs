//! The "Kinesis Data Streams for DynamoDB" change record.
//!
//! ```json
//! {"eventID": "...", "eventName": "INSERT|MODIFY|REMOVE", "tableName": "orders",
//!  "userIdentity": null, "eventSource": "aws:dynamodb",
//!  "dynamodb": {"ApproximateCreationDateTime": 1684189640771,
//!               "ApproximateCreationDateTimePrecision": "MILLISECOND",
//!               "Keys": {...}, "NewImage": {...}, "OldImage": {...}, "SizeBytes": 163}}
//! ```
//! Members may come in any order; unknown members are checked and ignored.
//! Member names are compared after unescaping, and a name twice in one
//! object is an error: JSON readers disagree on which of the two counts.

use crate::attr::write_map;
use crate::distinct::Members;
use crate::key::read_keys;
use crate::scan::{Scanner, utf8_first};
use crate::{Change, ChangeKind, Error};

#[derive(Default)]
struct Fields {
    event_id: Option<String>,
    event_name: Option<String>,
    table: Option<String>,
    by_ttl: bool,
    created: Option<u64>,
    micro_precision: bool,
    key: Option<String>,
    new_image: Option<String>,
    old_image: Option<String>,
}

/// Decodes one stream record. Anything DynamoDB would not have written is an
/// [`Error`] naming the field; nothing panics.
pub fn decode_stream_record(payload: &[u8]) -> Result<Change, Error> {
    let f = fields(payload)?;
    let missing = |what: &str| Error::record(format!("the record has no {what}"));
    let event_name = f.event_name.ok_or_else(|| missing("eventName"))?;
    let kind = match event_name.as_str() {
        "INSERT" | "MODIFY" => ChangeKind::Upsert,
        "REMOVE" if f.by_ttl => ChangeKind::TtlDelete,
        "REMOVE" => ChangeKind::Delete,
        other => {
            return Err(Error::record(format!("eventName {other:?} is not INSERT, MODIFY or REMOVE")));
        }
    };
    if kind == ChangeKind::Upsert && f.new_image.is_none() {
        return Err(missing(&format!("dynamodb.NewImage, which an {event_name} needs")));
    }
    let created = f.created.ok_or_else(|| missing("dynamodb.ApproximateCreationDateTime"))?;
    let micros = if f.micro_precision {
        created
    } else {
        created
            .checked_mul(1000)
            .ok_or_else(|| Error::record("ApproximateCreationDateTime is out of range"))?
    };
    Ok(Change {
        table: f.table.ok_or_else(|| missing("tableName"))?,
        key: f.key.ok_or_else(|| missing("dynamodb.Keys"))?,
        kind,
        micros,
        event_id: f.event_id.ok_or_else(|| missing("eventID"))?,
        event_name,
        new_image: f.new_image,
        old_image: f.old_image,
    })
}

/// Whether a stream record's time is in microseconds
/// (`ApproximateCreationDateTimePrecision` is `MICROSECOND`); otherwise it is
/// in milliseconds, DynamoDB's default.
pub fn micro_precision(payload: &[u8]) -> Result<bool, Error> {
    fields(payload).map(|f| f.micro_precision)
}

/// Reads a stream record's members.
fn fields(payload: &[u8]) -> Result<Fields, Error> {
    read_fields(payload).map_err(|e| utf8_first(payload, "record", e))
}

/// [`fields`], with UTF-8 checked along the way.
fn read_fields(payload: &[u8]) -> Result<Fields, Error> {
    let mut s = Scanner::new(payload);
    let mut f = Fields::default();
    s.begin_object()?;
    let mut first = true;
    let mut seen = Members::default();
    while let Some(name) = s.next_member(&mut first)? {
        let field = &*name.unescape();
        let member = RecordMember::of(field);
        seen.add(&s, name, member as u32)?;
        let read = |s: &mut Scanner| s.string().map(|r| r.unescape().into_owned());
        match member {
            RecordMember::EventId => f.event_id = Some(read(&mut s).map_err(|e| e.within(field))?),
            RecordMember::EventName => f.event_name = Some(read(&mut s).map_err(|e| e.within(field))?),
            RecordMember::TableName => f.table = Some(read(&mut s).map_err(|e| e.within(field))?),
            RecordMember::EventSource => {
                let source = s.string().map_err(|e| e.within(field))?.unescape();
                if source != "aws:dynamodb" {
                    return Err(s.error(format!("eventSource is {source:?}, not \"aws:dynamodb\"")));
                }
            }
            RecordMember::UserIdentity => {
                f.by_ttl = read_user_identity(&mut s).map_err(|e| e.within(field))?;
            }
            RecordMember::Dynamodb => read_dynamodb(&mut s, &mut f).map_err(|e| e.within(field))?,
            RecordMember::Other | RecordMember::AwsRegion | RecordMember::RecordFormat => s.skip_value(1)?,
        }
    }
    s.end()?;
    Ok(f)
}

/// Only the `tableName` of a stream record, without decoding the rest: the
/// host routes records to per-table transforms with it. Members before
/// `tableName` are skipped (and checked); the ones after are not read, so a
/// record with two `tableName` members gets the first one here: it is routed
/// by it and then refused by [`decode_stream_record`], which sees both.
/// Likewise, invalid UTF-8 after `tableName` is left for the decoder to
/// refuse: the scan checks only the bytes it reads.
pub fn table_name(payload: &[u8]) -> Result<String, Error> {
    let scan = || {
        let mut s = Scanner::new(payload);
        s.begin_object()?;
        let mut first = true;
        while let Some(name) = s.next_member(&mut first)? {
            if name.unescape() == "tableName" {
                return Ok(s.string()?.unescape().into_owned());
            }
            s.skip_value(1)?;
        }
        Err(Error::record("the record has no tableName"))
    };
    scan().map_err(|e| utf8_first(payload, "record", e))
}

/// The members DynamoDB writes in a stream record, numbered as slots in
/// [`Members`]: a name is matched once, then dispatched by its number.
#[derive(Clone, Copy)]
enum RecordMember {
    Other,
    AwsRegion,
    EventId,
    EventName,
    UserIdentity,
    RecordFormat,
    TableName,
    Dynamodb,
    EventSource,
}

impl RecordMember {
    fn of(field: &str) -> Self {
        match field {
            "awsRegion" => Self::AwsRegion,
            "eventID" => Self::EventId,
            "eventName" => Self::EventName,
            "userIdentity" => Self::UserIdentity,
            "recordFormat" => Self::RecordFormat,
            "tableName" => Self::TableName,
            "dynamodb" => Self::Dynamodb,
            "eventSource" => Self::EventSource,
            _ => Self::Other,
        }
    }
}

/// The members DynamoDB writes in `dynamodb`, as [`RecordMember`].
#[derive(Clone, Copy)]
enum DynamodbMember {
    Other,
    Created,
    Precision,
    Keys,
    NewImage,
    OldImage,
    SizeBytes,
}

impl DynamodbMember {
    fn of(field: &str) -> Self {
        match field {
            "ApproximateCreationDateTime" => Self::Created,
            "ApproximateCreationDateTimePrecision" => Self::Precision,
            "Keys" => Self::Keys,
            "NewImage" => Self::NewImage,
            "OldImage" => Self::OldImage,
            "SizeBytes" => Self::SizeBytes,
            _ => Self::Other,
        }
    }
}

fn read_dynamodb(s: &mut Scanner, f: &mut Fields) -> Result<(), Error> {
    s.begin_object()?;
    let mut first = true;
    let mut seen = Members::default();
    while let Some(name) = s.next_member(&mut first)? {
        let field = &*name.unescape();
        let member = DynamodbMember::of(field);
        seen.add(s, name, member as u32)?;
        let within = |e: Error| e.within(field);
        match member {
            DynamodbMember::Created => f.created = Some(read_timestamp(s).map_err(within)?),
            DynamodbMember::Precision => {
                f.micro_precision = match s.string().map_err(within)?.raw {
                    "MICROSECOND" => true,
                    "MILLISECOND" => false,
                    other => {
                        return Err(s
                            .error(format!("{other:?} is not MILLISECOND or MICROSECOND"))
                            .within(field));
                    }
                }
            }
            DynamodbMember::Keys => f.key = Some(read_keys(s).map_err(within)?),
            DynamodbMember::NewImage => f.new_image = Some(read_image(s).map_err(within)?),
            DynamodbMember::OldImage => f.old_image = Some(read_image(s).map_err(within)?),
            DynamodbMember::Other | DynamodbMember::SizeBytes => s.skip_value(2)?,
        }
    }
    Ok(())
}

fn read_image(s: &mut Scanner) -> Result<String, Error> {
    // Plain JSON is never longer than its DynamoDB JSON, so this never grows.
    let mut out = String::with_capacity(s.remaining());
    write_map(s, &mut out, 2)?;
    Ok(out)
}

fn read_timestamp(s: &mut Scanner) -> Result<u64, Error> {
    let at = s.pos();
    let text = s.number()?;
    text.parse::<u64>().map_err(|_| {
        Error::new(format!("{text} is not a whole, non-negative number of milliseconds or microseconds"), at)
    })
}

/// Whether the change was made by DynamoDB's TTL process.
fn read_user_identity(s: &mut Scanner) -> Result<bool, Error> {
    if s.null()? {
        return Ok(false);
    }
    let (mut service, mut dynamodb) = (false, false);
    s.begin_object()?;
    let mut first = true;
    let mut seen = Members::default();
    while let Some(name) = s.next_member(&mut first)? {
        let field = &*name.unescape();
        let slot = match field {
            "type" => 1,
            "principalId" => 2,
            _ => 0,
        };
        seen.add(s, name, slot)?;
        match field {
            "type" => service = s.string()?.unescape() == "Service",
            "principalId" => dynamodb = s.string()?.unescape() == "dynamodb.amazonaws.com",
            _ => s.skip_value(2)?,
        }
    }
    Ok(service && dynamodb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with `members` inserted at the top level and `inside` in `dynamodb`.
    fn record(members: &str, inside: &str) -> String {
        format!(
            r#"{{"eventID":"e","eventName":"INSERT",{members}"dynamodb":{{"ApproximateCreationDateTime":1,{inside}"Keys":{{"id":{{"S":"a"}}}},"NewImage":{{"id":{{"S":"a"}}}}}}}}"#
        )
    }

    fn decode(text: &str) -> Result<Change, String> {
        decode_stream_record(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn precision_is_milliseconds_unless_the_record_says_microseconds() {
        let milli = record(r#""tableName":"t","#, "");
        let said = record(r#""tableName":"t","#, r#""ApproximateCreationDateTimePrecision":"MILLISECOND","#);
        let micro = record(r#""tableName":"t","#, r#""ApproximateCreationDateTimePrecision":"MICROSECOND","#);
        assert_eq!(micro_precision(milli.as_bytes()), Ok(false));
        assert_eq!(micro_precision(said.as_bytes()), Ok(false));
        assert_eq!(micro_precision(micro.as_bytes()), Ok(true));
    }

    #[test]
    fn a_member_twice_is_refused_at_every_level() {
        for (members, inside, why) in [
            (r#""tableName":"a","tableName":"b","#, "", r#"duplicate member name "tableName""#),
            (r#""tableName":"a","table\u004eame":"a","#, "", r#"duplicate member name "tableName""#),
            (
                r#""tableName":"a","awsRegion":"x","awsRegion":"x","#,
                "",
                r#"duplicate member name "awsRegion""#,
            ),
            (r#""tableName":"a","eventID":"e","#, "", r#"duplicate member name "eventID""#),
            (r#""tableName":"a","dynamodb":{},"#, "", r#"duplicate member name "dynamodb""#),
            (
                r#""tableName":"a","userIdentity":null,"userIdentity":null,"#,
                "",
                r#"duplicate member name "userIdentity""#,
            ),
            (
                r#""tableName":"a","userIdentity":{"type":"Service","type":"User"},"#,
                "",
                r#"userIdentity: duplicate member name "type""#,
            ),
            (
                r#""tableName":"a","#,
                r#""Keys":{"id":{"S":"a"}},"#,
                r#"dynamodb: duplicate member name "Keys""#,
            ),
            (
                r#""tableName":"a","#,
                r#""SizeBytes":1,"SizeBytes":1,"#,
                r#"dynamodb: duplicate member name "SizeBytes""#,
            ),
            (
                r#""tableName":"a","#,
                r#""ApproximateCreationDateTime":2,"#,
                r#"dynamodb: duplicate member name "ApproximateCreationDateTime""#,
            ),
            (
                r#""tableName":"a","#,
                r#""OldImage":{"id":{"S":"a"},"id":{"S":"b"}},"#,
                r#"dynamodb.OldImage: duplicate member name "id""#,
            ),
        ] {
            let err = decode(&record(members, inside)).unwrap_err();
            assert!(err.starts_with(why), "{members} {inside}: {err}");
        }
    }

    #[test]
    fn table_name_takes_the_first_and_decoding_refuses_both() {
        let twice = record(r#""tableName":"a","tableName":"b","#, "");
        assert_eq!(table_name(twice.as_bytes()).unwrap(), "a");
        assert!(decode(&twice).is_err());
    }

    #[test]
    fn table_name_checks_only_what_it_reads_and_decoding_refuses_the_rest() {
        // The last item value, `"S":"a"`, after tableName; then eventID's "e", before it.
        let mut late = record(r#""tableName":"a","#, "").into_bytes();
        let at = late.len() - 6;
        assert_eq!(late[at], b'a');
        late[at] = 0xff;
        assert_eq!(table_name(&late).unwrap(), "a");
        assert!(decode_stream_record(&late).unwrap_err().reason().contains("not valid UTF-8"));
        let mut early = record(r#""awsRegion":"x","tableName":"a","#, "").into_bytes();
        assert_eq!(early[12], b'e');
        early[12] = 0xff;
        assert!(table_name(&early).unwrap_err().reason().contains("not valid UTF-8"));
    }

    #[test]
    fn member_names_are_read_unescaped() {
        let escaped = record(r#""table\u004eame":"orders","user\u0049dentity":null,"#, "");
        assert_eq!(table_name(escaped.as_bytes()).unwrap(), "orders");
        let change = decode(&escaped.replace("NewImage", "New\\u0049mage")).unwrap();
        assert_eq!((change.table.as_str(), change.new_image.as_deref()), ("orders", Some(r#"{"id":"a"}"#)));
    }
}
