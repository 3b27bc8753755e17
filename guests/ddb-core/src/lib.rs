//! Decoding DynamoDB change data into plain JSON, for sluice's transform guests.
//!
//! This crate is plain Rust with no dependencies, so the logic that runs inside
//! the `ddb-json` WebAssembly component is tested natively with `cargo test`.
//!
//! * [`decode_stream_record`] reads one "Kinesis Data Streams for DynamoDB"
//!   record into a [`Change`]: the table, the canonical key, what happened
//!   and when, and the images as plain JSON text.
//! * [`decode_export_line`] reads one line of a DynamoDB export (full or
//!   incremental) into the same [`Change`], with the same key spelling.
//! * The input is walked once and copied token by token into the output; no
//!   JSON tree is built (see `scan.rs`), which is what makes it fast.
//! * Numbers keep DynamoDB's digits (`number.rs`), sets become arrays and
//!   binaries stay base64 (`attr.rs`), keys have one spelling (`key.rs`).
//! * What DynamoDB never writes is an error, not a guess: a name twice in one
//!   object (JSON readers disagree on which counts), a value twice in one
//!   set or an empty set, an empty string or binary as a key value.
//!
//! ```
//! let record = br#"{"eventID":"e1","eventName":"INSERT","tableName":"orders",
//!   "dynamodb":{"ApproximateCreationDateTime":1684189640771,
//!   "Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"},"qty":{"N":"2"}}}}"#;
//! let change = ddb_core::decode_stream_record(record).unwrap();
//! assert_eq!(change.key, r#"{"id":"a"}"#);
//! assert_eq!(change.new_image.as_deref(), Some(r#"{"id":"a","qty":2}"#));
//! assert_eq!(change.micros, 1_684_189_640_771_000);
//! ```

mod attr;
mod distinct;
mod export;
mod key;
mod number;
mod scan;
mod stream;

pub use export::{ExportLine, decode_export_line};
pub use stream::{decode_stream_record, micro_precision, table_name};

/// One change to one item, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The DynamoDB table (`tableName`).
    pub table: String,
    /// The canonical key: compact JSON, attributes sorted by name.
    pub key: String,
    pub kind: ChangeKind,
    /// `ApproximateCreationDateTime` in microseconds since the Unix epoch.
    pub micros: u64,
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`, as written.
    pub event_name: String,
    /// The item after the change, as plain JSON.
    pub new_image: Option<String>,
    /// The item before the change, as plain JSON.
    pub old_image: Option<String>,
}

/// What a change does to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `INSERT` or `MODIFY`: the item now holds `new_image`.
    Upsert,
    /// `REMOVE` by a user.
    Delete,
    /// `REMOVE` by DynamoDB's time-to-live process.
    TtlDelete,
}

/// Why a record could not be decoded: a reason, where in the record, and the
/// byte offset.
///
/// Boxed, so that every `Result` on the hot path stays one word wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<ErrorInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorInner {
    reason: String,
    /// `None` when the problem is the record as a whole (a missing field).
    offset: Option<usize>,
    /// Field names from the innermost outwards.
    path: Vec<String>,
}

impl Error {
    #[cold]
    pub(crate) fn new(reason: impl Into<String>, offset: usize) -> Self {
        Error(Box::new(ErrorInner { reason: reason.into(), offset: Some(offset), path: Vec::new() }))
    }

    /// A problem with the record as a whole, at no particular byte.
    #[cold]
    pub(crate) fn record(reason: impl Into<String>) -> Self {
        Error(Box::new(ErrorInner { reason: reason.into(), offset: None, path: Vec::new() }))
    }

    /// Adds the enclosing field's name; called while the error travels outwards.
    #[cold]
    pub(crate) fn within(mut self, segment: impl Into<String>) -> Self {
        self.0.path.push(segment.into());
        self
    }

    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    pub fn offset(&self) -> Option<usize> {
        self.0.offset
    }

    /// Where the error is, e.g. `dynamodb.NewImage.items[2].price`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.0.path.iter().rev() {
            if !out.is_empty() && !segment.starts_with('[') {
                out.push('.');
            }
            out.push_str(segment);
        }
        out
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.0.path.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        match self.0.offset {
            Some(at) => write!(f, "{} (at byte {at})", self.0.reason),
            None => f.write_str(&self.0.reason),
        }
    }
}

impl std::error::Error for Error {}
