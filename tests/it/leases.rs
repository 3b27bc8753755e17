//! The lease table of several sluice workers against DynamoDB (moto): made
//! once, and every write conditional on what the writer saw, so a lease has
//! one holder and a worker that lost one learns it.
//!
//! The server is moto changed by one request at a time
//! (`sluice_test_support::moto::dynamodb`): a concurrent moto checks a
//! condition and writes without a lock, so two racing writes could both
//! pass it there, unlike DynamoDB.

use aws_sdk_dynamodb::types::{BillingMode, KeyType};
use sluice::coordination::leases::{Lease, LeaseTable, SHARD_END};
use sluice_test_support::{moto, unique_name};

use crate::util::runtime;

/// One `LeaseTable` per worker on a fresh table, ensured.
async fn workers<const N: usize>(names: [&str; N]) -> [LeaseTable; N] {
    let table = unique_name("leases");
    let tables = names.map(|worker| LeaseTable::new(moto::dynamodb().dynamodb_client(), &table, worker));
    tables[0].ensure().await.unwrap();
    tables
}

/// The one lease a table holds.
async fn only(table: &LeaseTable) -> Lease {
    let mut leases = table.all().await.unwrap();
    assert_eq!(leases.len(), 1, "{leases:?}");
    leases.remove(0)
}

/// A lease as `create` makes it.
fn new_lease(key: &str) -> Lease {
    Lease {
        key: key.into(),
        owner: None,
        counter: 0,
        parents: Vec::new(),
        checkpoint: "TRIM_HORIZON".into(),
        owner_switches: 0,
    }
}

#[test]
fn ensure_creates_an_on_demand_table_keyed_by_lease_key_and_is_idempotent() {
    runtime().block_on(async {
        let name = unique_name("leases");
        let client = moto::dynamodb().dynamodb_client();
        let table = LeaseTable::new(client.clone(), &name, "a");
        table.ensure().await.unwrap();
        assert!(table.create("shardId-0", &[]).await.unwrap());
        // A second worker's ensure leaves the table and its leases as they are.
        LeaseTable::new(client.clone(), &name, "b").ensure().await.unwrap();
        assert_eq!(table.all().await.unwrap().len(), 1);

        let described = client.describe_table().table_name(&name).send().await.unwrap();
        let described = described.table().unwrap();
        assert_eq!(
            described.billing_mode_summary().and_then(|b| b.billing_mode()),
            Some(&BillingMode::PayPerRequest)
        );
        let keys: Vec<_> =
            described.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().clone())).collect();
        assert_eq!(keys, [("leaseKey", KeyType::Hash)]);
    });
}

#[test]
fn a_lease_is_created_once_free_from_the_trim_horizon() {
    runtime().block_on(async {
        let [a] = workers(["a"]).await;
        assert!(a.create("shardId-0", &[]).await.unwrap());
        assert!(!a.create("shardId-0", &["shardId-9".into()]).await.unwrap());
        let lease = only(&a).await;
        assert_eq!(lease, new_lease("shardId-0"));
        assert!(!lease.ended());
    });
}

#[test]
fn parents_round_trip() {
    runtime().block_on(async {
        let [a] = workers(["a"]).await;
        a.create("root", &[]).await.unwrap();
        a.create("split", &["root".into()]).await.unwrap();
        a.create("merged", &["right".into(), "left".into()]).await.unwrap();
        let mut leases = a.all().await.unwrap();
        leases.sort_by(|x, y| x.key.cmp(&y.key));
        let parents: Vec<(&str, Vec<&str>)> =
            leases.iter().map(|l| (l.key.as_str(), l.parents.iter().map(String::as_str).collect())).collect();
        assert_eq!(parents, [("merged", vec!["left", "right"]), ("root", vec![]), ("split", vec!["root"])]);
    });
}

#[test]
fn of_two_workers_taking_the_same_lease_exactly_one_wins() {
    runtime().block_on(async {
        let [a, b] = workers(["a", "b"]).await;
        a.create("shardId-0", &[]).await.unwrap();
        let seen = only(&a).await;
        assert_eq!(only(&b).await, seen);

        let taken = a.take(&seen).await.unwrap().expect("the first take wins");
        assert_eq!((taken.owner.as_deref(), taken.counter, taken.owner_switches), (Some("a"), 1, 0));
        assert_eq!(b.take(&seen).await.unwrap(), None);
        assert_eq!(only(&b).await, taken);

        // The same with an owner seen: a stale counter loses too.
        let stolen = b.take(&taken).await.unwrap().expect("b takes the lease as it now is");
        assert_eq!((stolen.owner.as_deref(), stolen.counter, stolen.owner_switches), (Some("b"), 2, 1));
        assert_eq!(a.take(&taken).await.unwrap(), None);
        assert_eq!(only(&a).await, stolen);
    });
}

#[test]
fn of_two_workers_racing_for_a_lease_exactly_one_wins_every_time() {
    runtime().block_on(async {
        let [a, b] = workers(["a", "b"]).await;
        for round in 0..50 {
            let key = format!("shardId-{round}");
            a.create(&key, &[]).await.unwrap();
            let seen = a.all().await.unwrap().into_iter().find(|l| l.key == key).unwrap();
            let (by_a, by_b) = tokio::join!(a.take(&seen), b.take(&seen));
            let winners = [by_a.unwrap(), by_b.unwrap()].into_iter().flatten().count();
            assert_eq!(winners, 1, "round {round}: {winners} workers took the same lease");
        }
    });
}

#[test]
fn renewing_moves_the_counter_and_a_worker_that_lost_the_lease_learns_it() {
    runtime().block_on(async {
        let [a, b] = workers(["a", "b"]).await;
        a.create("shardId-0", &[]).await.unwrap();
        let held = a.take(&only(&a).await).await.unwrap().unwrap();
        let renewed = a.renew(&held).await.unwrap().expect("the owner renews");
        assert_eq!(renewed, Lease { counter: held.counter + 1, ..held.clone() });
        assert_eq!(only(&b).await, renewed);

        // b saw a's counter stand still, and takes the lease.
        let stolen = b.take(&renewed).await.unwrap().unwrap();
        assert_eq!(a.renew(&renewed).await.unwrap(), None);
        assert!(!a.release(&renewed).await.unwrap());
        assert_eq!(only(&a).await, stolen);
        // A renewal needs the holder's counter too, not only its name.
        assert_eq!(b.renew(&renewed).await.unwrap(), None);
        assert!(b.renew(&stolen).await.unwrap().is_some());
    });
}

#[test]
fn a_released_lease_is_free_for_another_worker() {
    runtime().block_on(async {
        let [a, b] = workers(["a", "b"]).await;
        a.create("shardId-0", &[]).await.unwrap();
        let held = a.take(&only(&a).await).await.unwrap().unwrap();
        assert!(a.release(&held).await.unwrap());
        let released = only(&b).await;
        assert_eq!((released.owner.as_deref(), released.counter), (None, held.counter + 1));

        assert!(!a.release(&held).await.unwrap(), "a release of a lease no longer held");
        let taken = b.take(&released).await.unwrap().expect("a free lease is taken");
        // Taking a free lease is no owner switch, as in the KCL.
        assert_eq!((taken.owner.as_deref(), taken.counter, taken.owner_switches), (Some("b"), 3, 0));
    });
}

#[test]
fn only_the_owner_checkpoints_and_shard_end_ends_the_lease() {
    runtime().block_on(async {
        let [a, b] = workers(["a", "b"]).await;
        a.create("shardId-0", &[]).await.unwrap();
        let held = a.take(&only(&a).await).await.unwrap().unwrap();
        let stolen = b.take(&held).await.unwrap().unwrap();
        assert_eq!(stolen.owner_switches, 1);
        // Renewals move the counter; the checkpoint does not depend on it.
        let renewed = b.renew(&b.renew(&stolen).await.unwrap().unwrap()).await.unwrap().unwrap();

        assert!(!a.checkpoint("shardId-0", SHARD_END).await.unwrap());
        assert!(!only(&a).await.ended());
        assert!(
            b.checkpoint("shardId-0", "49590338271490256608559692538361571095921575989136588898")
                .await
                .unwrap()
        );
        assert!(b.checkpoint("shardId-0", SHARD_END).await.unwrap());
        let ended = only(&a).await;
        assert!(ended.ended());
        assert_eq!(
            ended,
            Lease { checkpoint: SHARD_END.into(), owner_switches: 0, ..renewed },
            "a checkpoint keeps the owner and counter and resets the switches"
        );
    });
}

#[test]
fn a_failed_call_names_the_table_and_the_lease() {
    runtime().block_on(async {
        let table = unique_name("missing");
        let a = LeaseTable::new(moto::dynamodb().dynamodb_client(), &table, "a");
        let lease = new_lease("shardId-0");
        let error = a.take(&lease).await.unwrap_err().to_string();
        assert!(error.starts_with(&format!("taking lease shardId-0 in table {table}: ")), "{error}");
        assert!(error.contains("ResourceNotFoundException"), "{error}");
    });
}

/// A client stalled mid-request, as a worker paused by SIGSTOP leaves its
/// connection, holds up no one: DynamoDB serves other clients meanwhile, and
/// a stand-in that waited for it stalled every worker and test behind it.
#[test]
fn a_client_stalled_mid_request_holds_up_no_one() {
    use std::io::Write;
    let server = moto::dynamodb();
    let connect = || std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let silent = connect();
    let mut mid_body = connect();
    mid_body
        .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"TableName\"")
        .unwrap();
    runtime().block_on(async {
        let listed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            server.dynamodb_client().list_tables().send(),
        )
        .await;
        assert!(listed.expect("a request waited 10 s behind a stalled one").is_ok());
    });
    drop((silent, mid_body));
}
