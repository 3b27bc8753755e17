//! The servers start, answer, and survive a restart; kinesis-local does what
//! the Kinesis source relies on, through the real AWS SDK.

#[test]
fn postgres_starts_answers_and_restarts() {
    let cluster = sluice_test_support::postgres::shared();
    let url = cluster.fresh_database("support");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7)").unwrap();
    cluster.restart();
    assert!(client.query_one("SELECT v FROM t", &[]).is_err(), "the old connection is cut");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let v: i32 = client.query_one("SELECT v FROM t", &[]).unwrap().get(0);
    assert_eq!(v, 7);
}

#[test]
fn moto_answers_http() {
    use std::io::{Read, Write};
    let endpoint = sluice_test_support::moto::shared().endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.") && reply.contains(" 200 "), "{}", &reply[..reply.len().min(200)]);
}

mod kinesis {
    use std::time::Duration;

    use aws_sdk_kinesis::Client;
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::{
        ConsumerStatus, PutRecordsRequestEntry, Shard, ShardIteratorType, StartingPosition, StreamStatus,
        SubscribeToShardEventStream,
    };
    use sluice_test_support::{kinesis, unique_name};

    fn client() -> Client {
        let server = kinesis::shared();
        let config = aws_sdk_kinesis::config::Builder::new()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .region(aws_sdk_kinesis::config::Region::new(server.region()))
            .endpoint_url(server.endpoint())
            .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build();
        Client::from_conf(config)
    }

    async fn wait_active(client: &Client, arn: &str) {
        for _ in 0..500 {
            let summary = client.describe_stream_summary().stream_arn(arn).send().await.unwrap();
            if summary.stream_description_summary.unwrap().stream_status == StreamStatus::Active {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{arn} did not become ACTIVE within 10 s");
    }

    async fn shards(client: &Client, arn: &str) -> Vec<Shard> {
        let mut shards = Vec::new();
        let mut next = None::<String>;
        loop {
            // A page token stands for the stream; it may not be sent with it.
            let request = match &next {
                Some(token) => client.list_shards().next_token(token),
                None => client.list_shards().stream_arn(arn).max_results(1),
            };
            let page = request.send().await.unwrap();
            shards.extend(page.shards.unwrap_or_default());
            next = page.next_token;
            if next.is_none() {
                return shards;
            }
        }
    }

    /// Every record of a shard from its start, and whether it ended (the
    /// last answer had no next iterator).
    async fn read_shard(client: &Client, arn: &str, shard: &str) -> (Vec<String>, bool) {
        let iterator = client
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let mut iterator = iterator.shard_iterator;
        let mut data = Vec::new();
        // An open shard never ends; two empty answers in a row mean caught up.
        let mut empty = 0;
        while let Some(it) = iterator.take() {
            let page = client.get_records().stream_arn(arn).shard_iterator(it).send().await.unwrap();
            for record in &page.records {
                let sequence = record.sequence_number();
                assert!(
                    sequence.len() == 56 && sequence.bytes().all(|b| b.is_ascii_digit()),
                    "a 56-digit sequence number like AWS's: {sequence}"
                );
                data.push(String::from_utf8(record.data.as_ref().to_vec()).unwrap());
            }
            empty = if page.records.is_empty() { empty + 1 } else { 0 };
            if empty == 2 {
                return (data, false);
            }
            iterator = page.next_shard_iterator;
        }
        (data, true)
    }

    #[tokio::test]
    async fn streams_records_and_splits_through_the_sdk() {
        let server = kinesis::shared();
        let client = client();
        let name = unique_name("support");
        let arn = server.stream_arn(&name);
        client.create_stream().stream_name(&name).shard_count(2).send().await.unwrap();
        wait_active(&client, &arn).await;
        let described = client.describe_stream_summary().stream_arn(&arn).send().await.unwrap();
        assert_eq!(described.stream_description_summary.unwrap().stream_arn, arn);

        let entries = (0..20)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{i}"))
                    .data(Blob::new(format!("record-{i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let put = client.put_records().stream_arn(&arn).set_records(Some(entries)).send().await.unwrap();
        assert_eq!(put.failed_record_count, Some(0));

        let before = shards(&client, &arn).await;
        assert_eq!(before.len(), 2, "{before:?}");
        let mut read = Vec::new();
        for shard in &before {
            read.extend(read_shard(&client, &arn, &shard.shard_id).await.0);
        }
        read.sort();
        let mut written: Vec<String> = (0..20).map(|i| format!("record-{i}")).collect();
        written.sort();
        assert_eq!(read, written);

        let parent = &before[0];
        let (parent_records, _) = read_shard(&client, &arn, &parent.shard_id).await;
        let range = parent.hash_key_range.as_ref().unwrap();
        let low: u128 = range.starting_hash_key.parse().unwrap();
        let high: u128 = range.ending_hash_key.parse().unwrap();
        client
            .split_shard()
            .stream_arn(&arn)
            .shard_to_split(&parent.shard_id)
            .new_starting_hash_key((low + (high - low) / 2 + 1).to_string())
            .send()
            .await
            .unwrap();
        wait_active(&client, &arn).await;

        let after = shards(&client, &arn).await;
        let children: Vec<&Shard> =
            after.iter().filter(|s| s.parent_shard_id.as_deref() == Some(&parent.shard_id)).collect();
        assert_eq!(after.len(), 4, "{after:?}");
        assert_eq!(children.len(), 2, "{after:?}");
        let (records, ended) = read_shard(&client, &arn, &parent.shard_id).await;
        assert!(ended, "the split shard ends: its last NextShardIterator is None");
        assert_eq!(records, parent_records, "the parent keeps what it had");
    }

    /// Enhanced fan-out: an event stream over plain HTTP/1.1.
    #[tokio::test]
    async fn subscribe_to_shard_streams_records_through_the_sdk() {
        let client = client();
        let name = unique_name("support");
        let arn = kinesis::shared().stream_arn(&name);
        client.create_stream().stream_name(&name).shard_count(1).send().await.unwrap();
        wait_active(&client, &arn).await;
        for i in 0..3 {
            let data = Blob::new(format!("record-{i}"));
            client.put_record().stream_arn(&arn).partition_key("k").data(data).send().await.unwrap();
        }
        let shard = shards(&client, &arn).await.remove(0).shard_id;
        let registered = client.register_stream_consumer().stream_arn(&arn).consumer_name("support");
        let consumer = registered.send().await.unwrap().consumer.unwrap().consumer_arn;
        for _ in 0..500 {
            let described = client.describe_stream_consumer().consumer_arn(&consumer).send().await.unwrap();
            if described.consumer_description.unwrap().consumer_status == ConsumerStatus::Active {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let start = StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon).build().unwrap();
        let subscribed =
            client.subscribe_to_shard().consumer_arn(&consumer).shard_id(shard).starting_position(start);
        let mut events = subscribed.send().await.unwrap().event_stream;
        let received = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match events.recv().await.unwrap() {
                    Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) if !e.records.is_empty() => {
                        break e.records;
                    }
                    Some(_) => {}
                    None => panic!("the event stream ended before any records"),
                }
            }
        })
        .await
        .expect("an event with records within 20 s");
        let data: Vec<&[u8]> = received.iter().map(|r| r.data.as_ref()).collect();
        assert_eq!(data, [&b"record-0"[..], b"record-1", b"record-2"]);
    }

    #[test]
    fn kinesis_listens_on_loopback_only() {
        let server = kinesis::shared();
        let out = std::process::Command::new("hostname").arg("-I").output().expect("running hostname -I");
        let others: Vec<std::net::IpAddr> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|a| a.parse().ok())
            .filter(|a: &std::net::IpAddr| !a.is_loopback())
            .collect();
        for endpoint in [server.endpoint(), server.tls_endpoint()] {
            let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
            let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            assert!(std::net::TcpStream::connect(loopback).is_ok(), "{endpoint} answers on loopback");
            for ip in &others {
                let addr = std::net::SocketAddr::new(*ip, port);
                assert!(
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
                    "kinesis-local answers on {addr}: it must listen on 127.0.0.1 only"
                );
            }
        }
    }
}
