//! The types every room shares: records as sources read them, changes as
//! guests produce them, rows and dead letters as sinks store them.
//! Depends on nothing else in the crate.

use std::cmp::Ordering;
use std::sync::Arc;

/// One record as a source read it.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub payload: Vec<u8>,
    /// The DynamoDB table, as the source found it: the one an export is of,
    /// or the `tableName` a stream change names.
    pub table: Result<Arc<str>, UnreadableTable>,
    /// The partition of the source it was read from: a file, a shard, an
    /// export's data file. Checkpoints keep a position per partition.
    pub partition: Arc<str>,
    /// The record's place in its partition, a decimal string growing in arrival
    /// order (a line number, a Kinesis sequence number).
    pub sequence: String,
    pub format: Format,
}

/// A record whose DynamoDB table cannot be read; it becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the record's tableName: {0}")]
pub struct UnreadableTable(pub String);

/// What a record's payload is: it decides how a guest decodes the record.
#[derive(Debug, Clone)]
pub enum Format {
    /// A "Kinesis Data Streams for DynamoDB" change record.
    StreamChange,
    /// A line of an export's data file.
    ExportLine(Arc<ExportInfo>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// `exportTime`, microseconds since the Unix epoch.
    pub export_micros: u64,
    pub incremental: bool,
}

/// Whether `name` could name a DynamoDB table: 3 to 255 letters, digits,
/// `_`, `-` and `.` (the DynamoDB Developer Guide, "Naming rules"). A
/// junk record can name anything; what is kept per table (stamps, totals)
/// is kept only for names DynamoDB allows.
pub fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl SourceRecord {
    /// Where the record came from, for people: `data/stream.jsonl:42`.
    pub fn origin(&self) -> String {
        format!("{}:{}", self.partition, self.sequence)
    }
}

/// How far a source has been read in one partition. Committed with the rows the
/// records produced, and handed back to the source on the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The partition; the sinks' `stream` column, named so before sluice
    /// read more than one kind of source.
    pub partition: String,
    /// Source-specific and opaque to sinks.
    pub position: String,
    /// The lease counter under which a worker of a coordinated pipeline
    /// read the partition: a fencing token, which the sink refuses once a
    /// newer one claimed the partition. `None` outside coordination.
    pub lease: Option<i64>,
}

/// Records cut into one unit of work, with the positions reached after them.
#[derive(Debug, Default)]
pub struct Batch {
    /// Counts from 1 within a run; used in logs.
    pub number: u64,
    pub records: Vec<SourceRecord>,
    pub checkpoints: Vec<Checkpoint>,
    pub bytes: usize,
}

/// Where a batch is cut: at whichever limit comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_wait: std::time::Duration,
    /// How long a batch that has records waits for more when none are
    /// ready (a stream's); at most `max_wait`.
    pub linger: std::time::Duration,
    /// The most records one transaction may hold when batches read while
    /// the sink is busy are merged into the next (group commit); 0: never.
    pub max_coalesce: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_records: 500,
            max_bytes: 4 << 20,
            max_wait: std::time::Duration::from_secs(1),
            linger: std::time::Duration::ZERO,
            max_coalesce: 10_000,
        }
    }
}

/// What a delete does to a sink table's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Keep the row with `is_deleted` set and `new_image` cleared (as the seed did).
    Soft,
    /// Remove the row, keeping a tombstone so an older change cannot bring it back.
    Hard,
}

/// What a sink table's `raw_payload` column keeps of a row's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawPayload {
    /// The record as the source delivered it.
    Keep,
    /// Nothing (NULL); `raw_payload_size_bytes` still says how large it was.
    /// For a transform that removes private data from the images.
    Drop,
}

/// When a change happened: of two changes to one item the greater order wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// `ApproximateCreationDateTime` in microseconds.
    pub micros: u64,
    /// A decimal string (a sequence number) compared by length, then text.
    pub tiebreak: String,
}

impl Ord for Order {
    fn cmp(&self, other: &Self) -> Ordering {
        self.micros
            .cmp(&other.micros)
            .then(self.tiebreak.len().cmp(&other.tiebreak.len()))
            .then_with(|| self.tiebreak.cmp(&other.tiebreak))
    }
}

impl PartialOrd for Order {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Upsert,
    Delete,
    TtlDelete,
}

impl Operation {
    pub fn is_delete(self) -> bool {
        self != Operation::Upsert
    }
}

/// The value of an extra column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    Text(String),
    Json(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub value: Value,
}

/// One change to one item, as a guest made it from a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The DynamoDB table.
    pub table: String,
    /// The canonical key (compact JSON, attributes sorted).
    pub key: String,
    pub operation: Operation,
    pub order: Order,
    pub event_name: String,
    pub event_id: String,
    pub new_image: Option<String>,
    pub old_image: Option<String>,
    /// A problem that still leaves a usable row.
    pub error: Option<String>,
    pub extra: Vec<Column>,
}

/// What a guest made of one record.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every outcome is a row; boxing would cost an allocation each"
)]
pub enum Outcome {
    Row(Change),
    /// The transform chose to make no row (a table it does not serve).
    Skip(String),
    /// The transform refused the record, saying why.
    Error(String),
    /// The transform failed on this very record: it trapped, or ran out of
    /// memory or time. Told apart from `Error` for `sluice guest test`.
    Fault(String),
}

/// A change on its way to a sink table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The sink table.
    pub target: Arc<str>,
    pub change: Change,
    /// The record as the source delivered it (`raw_payload`), unless dropped.
    pub raw: Raw,
    /// Where the record came from (`source_position`).
    pub origin: String,
}

/// A row's record: kept whole, or dropped with its size (`raw_payload = "drop"`).
#[derive(Debug, Clone)]
pub enum Raw {
    Kept(Vec<u8>),
    Dropped { bytes: usize },
}

impl Raw {
    pub fn len(&self) -> usize {
        match self {
            Raw::Kept(bytes) => bytes.len(),
            Raw::Dropped { bytes } => *bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kept(&self) -> Option<&[u8]> {
        match self {
            Raw::Kept(bytes) => Some(bytes),
            Raw::Dropped { .. } => None,
        }
    }
}

/// A record that could not become a row, kept with its bytes and the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The DynamoDB table, when it could be read.
    pub table: Option<String>,
    pub origin: String,
    pub reason: String,
    pub raw: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter whose texts every sink can store (see [`message`]): a
    /// junk record must not stop a pipeline by the dead letter it leaves.
    /// The raw bytes are kept whole.
    pub fn new(table: Option<&str>, origin: String, reason: &str, raw: Vec<u8>) -> Self {
        DeadLetter {
            table: table.map(|t| message(t, MAX_TABLE_NAME_BYTES)),
            origin,
            reason: message(reason, MAX_MESSAGE_BYTES),
            raw,
        }
    }
}

/// The longest reason or message kept (a dead letter's reason, a row's
/// `error`): past this it is noise, and Redshift's VARCHAR stops at 64 KB.
pub const MAX_MESSAGE_BYTES: usize = 8 << 10;
/// The longest table name a dead letter keeps (DynamoDB's names are at most
/// 255 bytes; a record may claim any).
const MAX_TABLE_NAME_BYTES: usize = 255;

/// Text meant for people, made storable everywhere: NUL characters (which
/// PostgreSQL's text and Redshift's VARCHAR cannot hold) become the six
/// characters `\u0000`, and text over `max` bytes is cut at a character
/// boundary, with a marker that says how long it was.
pub fn message(text: &str, max: usize) -> String {
    let text = text.replace('\0', "\\u0000");
    if text.len() <= max {
        return text;
    }
    let marker = format!("… [{} bytes in all]", text.len());
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// Everything one batch leaves in the sink, written in one transaction.
#[derive(Debug, Default)]
pub struct SinkBatch {
    pub number: u64,
    /// Records the batch was made from, for progress reports.
    pub records: u64,
    /// At most one row per (target, table, key): the latest of the batch.
    pub rows: Vec<Row>,
    pub dead_letters: Vec<DeadLetter>,
    pub checkpoints: Vec<Checkpoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_dynamodb_allows_are_table_names() {
        for ok in ["orders", "a.b-c_d", &"x".repeat(255)] {
            assert!(is_table_name(ok), "{ok}");
        }
        for bad in ["ab", "", "with space", "nul\0", "ünï", &"x".repeat(256)] {
            assert!(!is_table_name(bad), "{bad:?}");
        }
    }

    fn order(micros: u64, tiebreak: &str) -> Order {
        Order { micros, tiebreak: tiebreak.into() }
    }

    #[test]
    fn messages_lose_their_nuls_and_their_excess_not_their_meaning() {
        assert_eq!(message("a\0b", 100), "a\\u0000b");
        let long = message(&"é".repeat(100), 50);
        assert!(long.len() <= 50 && long.ends_with("… [200 bytes in all]"), "{long}");
        assert_eq!(message("short", 50), "short");
    }

    #[test]
    fn orders_compare_time_then_sequence_as_numbers() {
        assert!(order(2, "1") > order(1, "999"));
        assert!(order(1, "10") > order(1, "9"));
        assert!(order(1, "49590338271490256608559692538361571095921575989136588898") > order(1, "9"));
        assert!(order(1, "20") > order(1, "19"));
        assert_eq!(order(1, "7").cmp(&order(1, "7")), Ordering::Equal);
        assert!(order(1, "1") > order(1, ""));
    }
}
