//! The latest change per item within a batch. Sinks then apply each item
//! once, and Redshift's MERGE (which fails when two source rows match one
//! target row) never sees duplicates.

use std::collections::hash_map::Entry;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::record::Row;

/// What a sink is given of `rows`: every distinct change for a sink that
/// keeps them, else the latest per item. Returns the rows and how many
/// were dropped.
pub(super) fn for_sink(rows: Vec<Row>, keeps_every_change: bool) -> (Vec<Row>, u64) {
    match keeps_every_change {
        true => distinct_changes(rows),
        false => latest_per_item(rows),
    }
}

/// Keeps, for every (target, table, key), the row with the greatest order;
/// of equal orders the later one, as the sinks would. A change delivered
/// more than once (the same event id) counts by its first delivery, the one
/// with the least order: a copy delivered again later carries a newer
/// sequence number it must not win with. Returns the rows kept and how many
/// were dropped.
fn latest_per_item(rows: Vec<Row>) -> (Vec<Row>, u64) {
    let mut first: HashMap<(&str, &str, &str, &str), usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate().filter(|(_, r)| !r.change.event_id.is_empty()) {
        let c = &row.change;
        match first.entry((&row.target, &c.table, &c.key, &c.event_id)) {
            Entry::Vacant(e) => {
                e.insert(i);
            }
            Entry::Occupied(mut e) => {
                if c.order < rows[*e.get()].change.order {
                    e.insert(i);
                }
            }
        }
    }
    let copy = |i: usize, row: &Row| {
        let c = &row.change;
        !c.event_id.is_empty() && first[&(&*row.target, &*c.table, &*c.key, &*c.event_id)] != i
    };
    let mut latest: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate().filter(|(i, row)| !copy(*i, row)) {
        match latest.entry((&row.target, &row.change.table, &row.change.key)) {
            Entry::Vacant(e) => {
                e.insert(i);
            }
            Entry::Occupied(mut e) => {
                if row.change.order >= rows[*e.get()].change.order {
                    e.insert(i);
                }
            }
        }
    }
    let mut keep = vec![false; rows.len()];
    for &i in latest.values() {
        keep[i] = true;
    }
    let dropped = (rows.len() - latest.len()) as u64;
    let kept = rows.into_iter().zip(keep).filter_map(|(row, k)| k.then_some(row)).collect();
    (kept, dropped)
}

/// Keeps every distinct change, in arrival order: a change seen twice (the
/// same event id, or for export rows, which have none, the same order) is
/// kept once. For sinks that record history rather than state.
fn distinct_changes(rows: Vec<Row>) -> (Vec<Row>, u64) {
    let mut seen = HashSet::with_capacity(rows.len());
    let before = rows.len();
    let kept: Vec<Row> = rows
        .into_iter()
        .filter(|row| {
            let c = &row.change;
            let event = if c.event_id.is_empty() {
                format!("{}/{}", c.order.micros, c.order.tiebreak)
            } else {
                c.event_id.clone()
            };
            seen.insert((row.target.clone(), c.table.clone(), c.key.clone(), event))
        })
        .collect();
    let dropped = (before - kept.len()) as u64;
    (kept, dropped)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::record::{Change, Operation, Order};

    pub(in crate::pipeline) fn row(key: &str, micros: u64, seq: &str, event: &str) -> Row {
        Row {
            target: "t".into(),
            change: Change {
                table: "orders".into(),
                key: key.into(),
                operation: Operation::Upsert,
                order: Order { micros, tiebreak: seq.into() },
                event_name: "MODIFY".into(),
                event_id: event.into(),
                new_image: Some("{}".into()),
                old_image: None,
                error: None,
                extra: Vec::new(),
            },
            raw: crate::record::Raw::Kept(Vec::new()),
            origin: String::new(),
        }
    }

    #[test]
    fn latest_order_wins_and_ties_go_to_the_later_row() {
        let rows = vec![
            row("a", 5, "1", "a-new"),
            row("b", 1, "9", "b-old"),
            row("a", 4, "9", "a-old"),
            row("b", 1, "10", "b-new"),
            row("c", 2, "1", "c-first"),
            row("c", 2, "1", "c-second"),
        ];
        let (kept, dropped) = latest_per_item(rows);
        let mut events: Vec<&str> = kept.iter().map(|r| r.change.event_id.as_str()).collect();
        events.sort();
        assert_eq!(events, ["a-new", "b-new", "c-second"]);
        assert_eq!(dropped, 3);
    }

    #[test]
    fn a_change_delivered_again_counts_by_its_first_delivery() {
        // Within one millisecond: a, then b, then a again with a newer sequence number.
        let rows = vec![row("k", 5, "1", "a"), row("k", 5, "2", "b"), row("k", 5, "3", "a")];
        let (kept, dropped) = latest_per_item(rows);
        assert_eq!(kept.iter().map(|r| r.change.event_id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(dropped, 2);
    }
}
