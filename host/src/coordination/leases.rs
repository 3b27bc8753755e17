//! The lease table: one item per shard in DynamoDB, in the Kinesis Client
//! Library's schema, so the KCL's tools and an operator who knows them can
//! read it. Every write is conditional on what the writer last saw; a failed
//! condition means another worker moved first, which is an answer (`None`,
//! `false`), not an error.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TableStatus,
};

use crate::aws::describe;

/// `checkpoint` of a lease whose shard's end is committed (the KCL's sentinel).
pub const SHARD_END: &str = "SHARD_END";

/// `checkpoint` of a new lease: read the shard from its oldest record.
const TRIM_HORIZON: &str = "TRIM_HORIZON";

// The KCL's attribute names.
const KEY: &str = "leaseKey";
const OWNER: &str = "leaseOwner";
const COUNTER: &str = "leaseCounter";
const PARENTS: &str = "parentShardId";
const CHECKPOINT: &str = "checkpoint";
const SWITCHES: &str = "ownerSwitchesSinceCheckpoint";

type Item = HashMap<String, AttributeValue>;

/// One shard's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard id; the table's hash key.
    pub key: String,
    /// The worker holding it, `None` when nobody does.
    pub owner: Option<String>,
    /// Moved by every take, renewal and release: a holder that stops
    /// renewing is seen by the counter standing still.
    pub counter: i64,
    /// The shards this one was split or merged from (empty for none).
    pub parents: Vec<String>,
    /// `TRIM_HORIZON` at creation, then a sequence number, then [`SHARD_END`].
    pub checkpoint: String,
    pub owner_switches: i64,
}

impl Lease {
    /// Whether the shard's end is committed: the lease is history, and its
    /// children may be taken.
    pub fn ended(&self) -> bool {
        self.checkpoint == SHARD_END
    }
}

/// The lease table as one worker writes it.
pub struct LeaseTable {
    client: Client,
    table: String,
    worker: String,
}

impl LeaseTable {
    pub fn new(client: Client, table: &str, worker: &str) -> Self {
        LeaseTable { client, table: table.to_owned(), worker: worker.to_owned() }
    }

    /// The `leaseOwner` this worker writes.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Creates the table if missing (on demand billing, so an idle stream
    /// costs nothing) and waits until it is active, for up to a minute.
    /// An existing table is left as is.
    pub async fn ensure(&self) -> Result<()> {
        let mut created = false;
        for _ in 0..120 {
            match self.client.describe_table().table_name(&self.table).send().await {
                Ok(out) => {
                    if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                        return Ok(());
                    }
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                    if !created {
                        self.create_table().await?;
                        created = true;
                        continue;
                    }
                }
                Err(e) => bail!("describing lease table {}: {}", self.table, describe(&e)),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("lease table {} did not become active within a minute", self.table)
    }

    async fn create_table(&self) -> Result<()> {
        // Builders that fail only without their required fields, set here.
        let definition = AttributeDefinition::builder()
            .attribute_name(KEY)
            .attribute_type(ScalarAttributeType::S)
            .build()?;
        let schema = KeySchemaElement::builder().attribute_name(KEY).key_type(KeyType::Hash).build()?;
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(definition)
            .key_schema(schema)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(table = %self.table, "created the lease table"),
            // Another worker created it first.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => bail!("creating lease table {}: {}", self.table, describe(&e)),
        }
        Ok(())
    }

    /// Every lease, read strongly consistent so a worker balances on the
    /// latest takes.
    pub async fn all(&self) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| anyhow!("scanning lease table {}: {}", self.table, describe(&e)))?;
            for item in page.items() {
                leases.push(parse(item).with_context(|| format!("reading lease table {}", self.table))?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(leases),
            }
        }
    }

    /// Puts a free lease for a shard from its oldest record, unless one
    /// exists. Whether it was created.
    pub async fn create(&self, key: &str, parents: &[String]) -> Result<bool> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(key))
            .item(COUNTER, n(0))
            .item(CHECKPOINT, s(TRIM_HORIZON))
            .item(SWITCHES, n(0))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", KEY);
        // A string set cannot be empty: no parents, no attribute.
        if !parents.is_empty() {
            request = request.item(PARENTS, AttributeValue::Ss(parents.to_vec()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(e) => bail!("creating lease {key} in table {}: {}", self.table, describe(&e)),
        }
    }

    /// Takes a lease as last seen, unless it changed since. Taking it from
    /// another worker counts an owner switch (as the KCL does, taking a
    /// free lease does not). The lease as now stored, or `None` if someone
    /// changed it first.
    pub async fn take(&self, seen: &Lease) -> Result<Option<Lease>> {
        let switched = seen.owner.as_deref().is_some_and(|owner| owner != self.worker);
        let mut request = self
            .update(&seen.key)
            .expression_attribute_names("#counter", COUNTER)
            .update_expression(if switched {
                "SET #owner = :me, #counter = :next, #switches = #switches + :one"
            } else {
                "SET #owner = :me, #counter = :next"
            })
            .expression_attribute_values(":seen", n(seen.counter))
            .expression_attribute_values(":next", n(seen.counter + 1))
            .return_values(ReturnValue::AllNew);
        request = match &seen.owner {
            Some(owner) => request
                .condition_expression("#counter = :seen AND #owner = :owner")
                .expression_attribute_values(":owner", s(owner)),
            None => request.condition_expression("#counter = :seen AND attribute_not_exists(#owner)"),
        };
        if switched {
            request = request
                .expression_attribute_names("#switches", SWITCHES)
                .expression_attribute_values(":one", n(1));
        }
        match self.apply(request, &seen.key, "taking").await? {
            Some(out) => self.stored(out, &seen.key).map(Some),
            None => Ok(None),
        }
    }

    /// Renews a held lease, so others see its holder alive. The lease as
    /// now stored, or `None` if it is no longer ours.
    pub async fn renew(&self, held: &Lease) -> Result<Option<Lease>> {
        let request = self
            .update(&held.key)
            .expression_attribute_names("#counter", COUNTER)
            .update_expression("SET #counter = :next")
            .condition_expression("#owner = :me AND #counter = :held")
            .expression_attribute_values(":held", n(held.counter))
            .expression_attribute_values(":next", n(held.counter + 1))
            .return_values(ReturnValue::AllNew);
        match self.apply(request, &held.key, "renewing").await? {
            Some(out) => self.stored(out, &held.key).map(Some),
            None => Ok(None),
        }
    }

    /// Gives a held lease back. The counter moves too, so a worker watching
    /// it sees a change. Whether it was still ours.
    pub async fn release(&self, held: &Lease) -> Result<bool> {
        let request = self
            .update(&held.key)
            .expression_attribute_names("#counter", COUNTER)
            .update_expression("REMOVE #owner SET #counter = :next")
            .condition_expression("#owner = :me AND #counter = :held")
            .expression_attribute_values(":held", n(held.counter))
            .expression_attribute_values(":next", n(held.counter + 1));
        Ok(self.apply(request, &held.key, "releasing").await?.is_some())
    }

    /// Records a held lease's checkpoint: a sequence number, or [`SHARD_END`]
    /// once the shard's end is committed in the sink. Conditional on the
    /// owner only, since renewals move the counter meanwhile. Whether it
    /// was still ours.
    pub async fn checkpoint(&self, key: &str, checkpoint: &str) -> Result<bool> {
        let request = self
            .update(key)
            .update_expression("SET #checkpoint = :checkpoint, #switches = :zero")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#checkpoint", CHECKPOINT)
            .expression_attribute_names("#switches", SWITCHES)
            .expression_attribute_values(":checkpoint", s(checkpoint))
            .expression_attribute_values(":zero", n(0));
        Ok(self.apply(request, key, "checkpointing").await?.is_some())
    }

    /// An update of one lease, with the owner's name and this worker's value
    /// that every update's condition uses (DynamoDB refuses unused ones).
    fn update(&self, key: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", s(&self.worker))
    }

    /// Sends a conditional update: `None` when the condition failed.
    async fn apply(
        &self,
        request: UpdateItemFluentBuilder,
        key: &str,
        doing: &str,
    ) -> Result<Option<UpdateItemOutput>> {
        match request.send().await {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                tracing::debug!(lease = key, worker = %self.worker, "{doing} the lease: it changed first");
                Ok(None)
            }
            Err(e) => bail!("{doing} lease {key} in table {}: {}", self.table, describe(&e)),
        }
    }

    /// The lease an update returned (`ReturnValues` ALL_NEW).
    fn stored(&self, out: UpdateItemOutput, key: &str) -> Result<Lease> {
        let item = out
            .attributes
            .ok_or_else(|| anyhow!("updating lease {key} in table {}: no attributes returned", self.table))?;
        parse(&item).with_context(|| format!("reading lease table {}", self.table))
    }
}

/// A stored item as a lease, or what is wrong with it.
fn parse(item: &Item) -> Result<Lease> {
    let Some(AttributeValue::S(key)) = item.get(KEY) else {
        bail!("an item without a string {KEY}: {item:?}");
    };
    let lease = || -> Result<Lease> {
        Ok(Lease {
            key: key.clone(),
            owner: match item.get(OWNER) {
                None => None,
                Some(AttributeValue::S(owner)) => Some(owner.clone()),
                Some(other) => bail!("{OWNER} is not a string: {other:?}"),
            },
            counter: number(item, COUNTER)?,
            parents: match item.get(PARENTS) {
                None => Vec::new(),
                // A set: sorted, so equal leases compare equal.
                Some(AttributeValue::Ss(parents)) => {
                    let mut parents = parents.clone();
                    parents.sort();
                    parents
                }
                Some(other) => bail!("{PARENTS} is not a string set: {other:?}"),
            },
            checkpoint: match item.get(CHECKPOINT) {
                Some(AttributeValue::S(checkpoint)) => checkpoint.clone(),
                Some(other) => bail!("{CHECKPOINT} is not a string: {other:?}"),
                None => bail!("{CHECKPOINT} is missing"),
            },
            owner_switches: number(item, SWITCHES)?,
        })
    };
    lease().with_context(|| format!("lease {key}"))
}

fn number(item: &Item, name: &str) -> Result<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => {
            value.parse().with_context(|| format!("{name} {value} is not an integer"))
        }
        Some(other) => bail!("{name} is not a number: {other:?}"),
        None => bail!("{name} is missing"),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attributes: &[(&str, AttributeValue)]) -> Item {
        attributes.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
    }

    #[test]
    fn a_kcl_item_reads_as_a_lease() {
        let lease = parse(&item(&[
            (KEY, s("shardId-000000000002")),
            (OWNER, s("worker-a")),
            (COUNTER, n(7)),
            (PARENTS, AttributeValue::Ss(vec!["shardId-000000000000".into(), "shardId-000000000001".into()])),
            (CHECKPOINT, s(SHARD_END)),
            (SWITCHES, n(2)),
            // The KCL's other attributes are not ours to read.
            ("checkpointSubSequenceNumber", n(0)),
        ]))
        .unwrap();
        assert_eq!(
            lease,
            Lease {
                key: "shardId-000000000002".into(),
                owner: Some("worker-a".into()),
                counter: 7,
                parents: vec!["shardId-000000000000".into(), "shardId-000000000001".into()],
                checkpoint: SHARD_END.into(),
                owner_switches: 2,
            }
        );
        assert!(lease.ended());
    }

    #[test]
    fn a_broken_item_is_an_error_naming_it() {
        let missing = parse(&item(&[(KEY, s("shard-1")), (COUNTER, n(0)), (CHECKPOINT, s(TRIM_HORIZON))]));
        assert_eq!(
            format!("{:#}", missing.unwrap_err()),
            "lease shard-1: ownerSwitchesSinceCheckpoint is missing"
        );
        let ill_typed = parse(&item(&[
            (KEY, s("shard-1")),
            (COUNTER, s("1")),
            (CHECKPOINT, s(TRIM_HORIZON)),
            (SWITCHES, n(0)),
        ]));
        assert_eq!(
            format!("{:#}", ill_typed.unwrap_err()),
            r#"lease shard-1: leaseCounter is not a number: S("1")"#
        );
        let keyless = parse(&item(&[(COUNTER, n(0))]));
        assert!(format!("{:#}", keyless.unwrap_err()).starts_with("an item without a string leaseKey"));
    }
}
