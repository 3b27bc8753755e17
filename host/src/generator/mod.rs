//! `sluice gen`: a realistic "Kinesis Data Streams for DynamoDB" change stream.
//!
//! Items of every DynamoDB type change over time (inserts, updates, user
//! deletes, TTL deletes, re-inserts); the stream then gets what Kinesis does
//! to it: duplicated records and bounded reordering. Alongside, the latest
//! state of every item is worked out from the changes in their true order,
//! so a test can check a pipeline's result against it.

mod item;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value as Json, json};

use item::{Attr, Item};

/// Timestamp precision of the generated stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    Millisecond,
    Microsecond,
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub tables: Vec<String>,
    /// Distinct items per table.
    pub items: usize,
    /// Changes in the stream, before duplicates.
    pub changes: usize,
    pub seed: u64,
    pub precision: Precision,
    /// Share of records sent twice.
    pub duplicates: f64,
    /// Farthest a record may move from its place, in records.
    pub reorder: usize,
    /// Share of changes that are user deletes.
    pub deletes: f64,
    /// Share of changes that are TTL deletes.
    pub ttl_deletes: f64,
    /// When the first change happens, in microseconds since the epoch.
    pub start_micros: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            tables: vec!["orders".into(), "customers".into(), "devices".into()],
            items: 200,
            changes: 5000,
            seed: 1,
            precision: Precision::Millisecond,
            duplicates: 0.05,
            reorder: 20,
            deletes: 0.08,
            ttl_deletes: 0.03,
            start_micros: 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
        }
    }
}

/// The latest state of one item, as a correct pipeline must leave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub table: String,
    /// The canonical key: sorted, compact JSON.
    pub key: String,
    pub deleted: bool,
    pub by_ttl: bool,
    pub new_image: Option<Json>,
    pub event_id: String,
}

#[derive(Debug, Default, Clone)]
pub struct Generated {
    /// Stream records, one JSON document each, in delivery order.
    pub records: Vec<String>,
    /// Final state per item, sorted by table and key.
    pub expected: Vec<Expected>,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub changes: usize,
    pub inserts: usize,
    pub deletes: usize,
    pub ttl_deletes: usize,
    pub duplicates: usize,
    /// How many changes, at most, a record arrives behind the newest one
    /// delivered before it.
    pub max_displacement: usize,
}

struct Change {
    table: usize,
    key: Item,
    event: &'static str,
    by_ttl: bool,
    micros: u64,
    event_id: String,
    new: Option<Item>,
    old: Option<Item>,
}

pub fn generate(opts: &GenOptions) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let unit = match opts.precision {
        Precision::Millisecond => 1000,
        Precision::Microsecond => 1,
    };
    let mut state: HashMap<(usize, usize), (Item, u64)> = HashMap::new();
    let mut last_unit: HashMap<(usize, usize), u64> = HashMap::new();
    let mut clock = opts.start_micros;
    let mut stats = Stats { changes: opts.changes, ..Default::default() };
    let mut changes = Vec::with_capacity(opts.changes);
    let mut latest: BTreeMap<(String, String), Expected> = BTreeMap::new();

    for _ in 0..opts.changes {
        let table = rng.random_range(0..opts.tables.len().max(1));
        // A few hot items take most changes, as in real tables.
        let hot = opts.items.div_ceil(10).max(1);
        let index = if rng.random_bool(0.6) {
            rng.random_range(0..hot)
        } else {
            rng.random_range(0..opts.items.max(1))
        };
        clock += rng.random_range(0..3000);
        // Changes to one item are at least one precision unit apart, so their
        // true order survives any reordering.
        let at = (clock / unit).max(last_unit.get(&(table, index)).map_or(0, |u| u + 1));
        last_unit.insert((table, index), at);
        clock = clock.max(at * unit);
        let micros = at * unit + if unit == 1 { 0 } else { rng.random_range(0..unit) };
        let key = key_of(table, index);
        let event_id = uuid(&mut rng);
        let roll: f64 = rng.random();
        let current = state.get(&(table, index)).cloned();
        let change = match current {
            Some((old, _)) if roll < opts.deletes + opts.ttl_deletes => {
                let by_ttl = roll >= opts.deletes;
                if by_ttl {
                    stats.ttl_deletes += 1;
                } else {
                    stats.deletes += 1;
                }
                state.remove(&(table, index));
                Change { table, key, event: "REMOVE", by_ttl, micros, event_id, new: None, old: Some(old) }
            }
            Some((old, version)) => {
                let new = item::item(&mut rng, &key, version + 1);
                state.insert((table, index), (new.clone(), version + 1));
                Change {
                    table,
                    key,
                    event: "MODIFY",
                    by_ttl: false,
                    micros,
                    event_id,
                    new: Some(new),
                    old: Some(old),
                }
            }
            None => {
                stats.inserts += 1;
                let new = item::item(&mut rng, &key, 1);
                state.insert((table, index), (new.clone(), 1));
                Change {
                    table,
                    key,
                    event: "INSERT",
                    by_ttl: false,
                    micros,
                    event_id,
                    new: Some(new),
                    old: None,
                }
            }
        };
        let canonical = canonical_key(&change.key);
        latest.insert(
            (opts.tables[table].clone(), canonical.clone()),
            Expected {
                table: opts.tables[table].clone(),
                key: canonical,
                deleted: change.new.is_none(),
                by_ttl: change.by_ttl,
                new_image: change.new.as_ref().map(item::plain_map),
                event_id: change.event_id.clone(),
            },
        );
        changes.push(change);
    }

    // What Kinesis does: duplicates, then bounded reordering. Each record gets
    // a sort key of its place plus a random lag; duplicates start a little later.
    let mut placed: Vec<(f64, usize)> = Vec::new(); // (sort key, change)
    for i in 0..changes.len() {
        let lag = opts.reorder as f64;
        placed.push((i as f64 + rng.random::<f64>() * lag, i));
        if rng.random_bool(opts.duplicates.clamp(0.0, 1.0)) {
            stats.duplicates += 1;
            placed.push((i as f64 + rng.random::<f64>() * (lag + 2.0), i));
        }
    }
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut records = Vec::with_capacity(placed.len());
    let mut rendered: HashMap<usize, String> = HashMap::new();
    let mut newest_delivered = 0usize;
    for &(_, change) in &placed {
        let line = rendered
            .entry(change)
            .or_insert_with(|| render(&changes[change], &opts.tables, opts.precision))
            .clone();
        records.push(line);
        stats.max_displacement = stats.max_displacement.max(newest_delivered.saturating_sub(change));
        newest_delivered = newest_delivered.max(change);
    }
    Generated { records, expected: latest.into_values().collect(), stats }
}

/// Writes the stream, and the expected final state if asked.
pub fn write(generated: &Generated, out: &Path, expected: Option<&Path>) -> Result<()> {
    write_lines(out, generated.records.iter().map(String::as_str))?;
    if let Some(path) = expected {
        let lines: Vec<String> = generated
            .expected
            .iter()
            .map(|e| {
                json!({"table": e.table, "key": e.key, "deleted": e.deleted, "by_ttl": e.by_ttl,
                       "new_image": e.new_image, "event_id": e.event_id})
                .to_string()
            })
            .collect();
        write_lines(path, lines.iter().map(String::as_str))?;
    }
    Ok(())
}

fn write_lines<'a>(path: &Path, lines: impl Iterator<Item = &'a str>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for line in lines {
        writeln!(w, "{line}")?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// Key schemas by table position: a string key, a composite key with a
/// number sort key, and a binary key.
fn key_of(table: usize, index: usize) -> Item {
    match table % 3 {
        0 => vec![("id".into(), Attr::S(format!("item#{index:05}")))],
        1 => vec![
            ("pk".into(), Attr::S(format!("customer#{}", index / 4))),
            ("sk".into(), Attr::N((index % 4 * 10).to_string())),
        ],
        _ => vec![("device".into(), Attr::B((index as u64).to_be_bytes().to_vec()))],
    }
}

/// The canonical key, worked out independently of the decoder: serde_json
/// writes a sorted map compactly, escaping as the canonical spelling does.
fn canonical_key(key: &Item) -> String {
    let sorted: BTreeMap<&str, Json> = key.iter().map(|(k, v)| (k.as_str(), v.plain())).collect();
    serde_json::to_string(&sorted).expect("keys serialise")
}

fn render(change: &Change, tables: &[String], precision: Precision) -> String {
    let mut dynamodb = String::new();
    let (created, precision_field) = match precision {
        Precision::Millisecond => (change.micros / 1000, ""),
        Precision::Microsecond => (change.micros, r#","ApproximateCreationDateTimePrecision":"MICROSECOND""#),
    };
    let keys = item::ddb_map(&change.key);
    write!(dynamodb, r#"{{"ApproximateCreationDateTime":{created}{precision_field},"Keys":{keys}"#)
        .expect("string write");
    let mut size = keys.to_string().len();
    for (name, image) in [("NewImage", &change.new), ("OldImage", &change.old)] {
        if let Some(image) = image {
            let text = item::ddb_map(image).to_string();
            size += text.len();
            write!(dynamodb, r#","{name}":{text}"#).expect("string write");
        }
    }
    write!(dynamodb, r#","SizeBytes":{size}}}"#).expect("string write");
    let identity =
        if change.by_ttl { r#"{"type":"Service","principalId":"dynamodb.amazonaws.com"}"# } else { "null" };
    format!(
        r#"{{"awsRegion":"us-east-1","eventID":"{}","eventName":"{}","userIdentity":{identity},"recordFormat":"application/json","tableName":{},"dynamodb":{dynamodb},"eventSource":"aws:dynamodb"}}"#,
        change.event_id,
        change.event,
        Json::String(tables[change.table].clone()),
    )
}

fn uuid(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let opts = GenOptions { changes: 300, ..Default::default() };
        assert_eq!(generate(&opts).records, generate(&opts).records);
    }

    #[test]
    fn reordering_is_bounded_and_duplicates_happen() {
        let opts = GenOptions { changes: 2000, reorder: 10, duplicates: 0.1, ..Default::default() };
        let g = generate(&opts);
        assert!(g.stats.max_displacement <= 13, "{:?}", g.stats);
        assert!(g.stats.max_displacement > 0);
        assert!(g.stats.duplicates > 100);
        assert_eq!(g.records.len(), 2000 + g.stats.duplicates);
        assert!(g.stats.deletes > 0 && g.stats.ttl_deletes > 0);
    }
}
