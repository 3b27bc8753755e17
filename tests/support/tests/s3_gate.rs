//! The S3 gate answers as S3 does under a least-privilege identity policy,
//! through the real AWS SDK: what is granted works, anything else is 403
//! AccessDenied, and a missing key is 404 only with `s3:ListBucket`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use sluice_test_support::s3_gate::{self, Policy};
use sluice_test_support::unique_name;

fn client(endpoint: String, (key, secret): (String, String)) -> Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(key, secret, None, None, "tests"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// A client for the gate signed as `name`, allowed what `policy` allows.
fn restricted(name: &str, policy: impl Into<Policy>) -> Client {
    let gate = s3_gate::shared();
    client(gate.endpoint(), gate.credentials(name, policy))
}

/// Set-up goes straight to moto, unrestricted; the gate sees the same store.
fn admin() -> Client {
    client(sluice_test_support::moto::shared().endpoint(), ("test".into(), "test".into()))
}

/// A fresh bucket holding `keys` (each object's body is its key).
async fn bucket_with(keys: &[&str]) -> String {
    let bucket = unique_name("gate").replace('_', "-");
    let admin = admin();
    admin.create_bucket().bucket(&bucket).send().await.unwrap();
    for key in keys {
        admin
            .put_object()
            .bucket(&bucket)
            .key(*key)
            .body(ByteStream::from(key.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    bucket
}

/// The HTTP status and S3 error code of a failed call.
fn refusal<E: ProvideErrorMetadata + std::fmt::Debug, R>(
    result: Result<R, SdkError<E, HttpResponse>>,
) -> (u16, String) {
    match result {
        Ok(_) => panic!("the call succeeded; it should have been refused"),
        Err(e) => {
            let status =
                e.raw_response().map(|r| r.status().as_u16()).unwrap_or_else(|| panic!("no response: {e:?}"));
            (status, e.code().unwrap_or_default().to_owned())
        }
    }
}

async fn read(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn exists(bucket: &str, key: &str) -> bool {
    admin().head_object().bucket(bucket).key(key).send().await.is_ok()
}

#[tokio::test]
async fn grants_allow_exactly_what_they_name() {
    let bucket = bucket_with(&["docs/a.json", "other/b.json"]).await;
    let reader = restricted("reader", &[("s3:GetObject", &*format!("arn:aws:s3:::{bucket}/docs/*"))]);

    assert_eq!(read(&reader, &bucket, "docs/a.json").await, b"docs/a.json");
    let denied = (403, "AccessDenied".to_owned());
    assert_eq!(refusal(reader.get_object().bucket(&bucket).key("other/b.json").send().await), denied);
    let put = reader.put_object().bucket(&bucket).key("docs/new.json").body(ByteStream::from_static(b"{}"));
    assert_eq!(refusal(put.send().await), denied);
    assert_eq!(refusal(reader.delete_object().bucket(&bucket).key("docs/a.json").send().await), denied);
    assert_eq!(refusal(reader.list_objects_v2().bucket(&bucket).send().await), denied);
    assert_eq!(refusal(reader.get_bucket_location().bucket(&bucket).send().await), denied);
    assert!(exists(&bucket, "docs/a.json").await && !exists(&bucket, "docs/new.json").await);
    // Operations the gate cannot name are refused, not guessed at.
    assert_eq!(refusal(reader.get_object_tagging().bucket(&bucket).key("docs/a.json").send().await), denied);
}

#[tokio::test]
async fn a_missing_key_is_404_only_with_list_bucket() {
    let bucket = bucket_with(&["docs/a.json"]).await;
    let objects = format!("arn:aws:s3:::{bucket}/*");
    let get_only = restricted("get-only", &[("s3:GetObject", &*objects)]);
    let listing = restricted(
        "listing",
        Policy::new()
            .allow("s3:GetObject", &objects)
            .allow("s3:ListBucket", &format!("arn:aws:s3:::{bucket}")),
    );
    // A ListBucket limited by s3:prefix does not reveal a missing key either.
    let prefixed = Policy::new().allow("s3:GetObject", &objects).allow_with_prefix(
        "s3:ListBucket",
        &format!("arn:aws:s3:::{bucket}"),
        "*",
    );
    let prefixed = restricted("prefixed", prefixed);

    for client in [&get_only, &prefixed] {
        let got = client.get_object().bucket(&bucket).key("docs/missing.json").send().await;
        assert_eq!(refusal(got), (403, "AccessDenied".to_owned()));
        let head = client.head_object().bucket(&bucket).key("docs/missing.json").send().await;
        assert_eq!(refusal(head).0, 403);
    }
    let got = listing.get_object().bucket(&bucket).key("docs/missing.json").send().await;
    assert!(got.as_ref().is_err_and(|e| e.as_service_error().is_some_and(|s| s.is_no_such_key())), "{got:?}");
    let head = listing.head_object().bucket(&bucket).key("docs/missing.json").send().await;
    assert!(head.as_ref().is_err_and(|e| e.as_service_error().is_some_and(|s| s.is_not_found())), "{head:?}");
    let head = get_only.head_object().bucket(&bucket).key("docs/a.json").send().await.unwrap();
    assert_eq!(head.content_length(), Some("docs/a.json".len() as i64), "HEAD keeps the object's length");
}

#[tokio::test]
async fn listing_needs_list_bucket_and_its_prefix() {
    let bucket = bucket_with(&["docs/a.json", "other/b.json"]).await;
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let lister = restricted("lister", &[("s3:ListBucket", &*bucket_arn)]);
    let docs_only =
        restricted("docs-lister", Policy::new().allow_with_prefix("s3:ListBucket", &bucket_arn, "docs/*"));
    let keys = |page: aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output| {
        page.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect::<Vec<_>>()
    };

    let all = lister.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(keys(all), ["docs/a.json", "other/b.json"]);
    lister.head_bucket().bucket(&bucket).send().await.unwrap();
    let docs = docs_only.list_objects_v2().bucket(&bucket).prefix("docs/").send().await.unwrap();
    assert_eq!(keys(docs), ["docs/a.json"]);
    let denied = (403, "AccessDenied".to_owned());
    assert_eq!(refusal(docs_only.list_objects_v2().bucket(&bucket).prefix("other/").send().await), denied);
    assert_eq!(refusal(docs_only.list_objects_v2().bucket(&bucket).send().await), denied);
    assert_eq!(refusal(lister.get_object().bucket(&bucket).key("docs/a.json").send().await), denied);
}

#[tokio::test]
async fn writes_need_put_object_and_copies_also_get_object() {
    let bucket = bucket_with(&["docs/a.json"]).await;
    let out = format!("arn:aws:s3:::{bucket}/out/*");
    let writer = restricted("writer", &[("s3:PutObject", &*out)]);
    let copier = restricted(
        "copier",
        &[("s3:PutObject", &*out), ("s3:GetObject", &*format!("arn:aws:s3:::{bucket}/docs/*"))],
    );
    let denied = (403, "AccessDenied".to_owned());

    let put = writer.put_object().bucket(&bucket).key("out/1.json").body(ByteStream::from_static(b"one"));
    put.send().await.unwrap();
    assert_eq!(read(&admin(), &bucket, "out/1.json").await, b"one");
    let put = writer.put_object().bucket(&bucket).key("elsewhere.json").body(ByteStream::from_static(b"x"));
    assert_eq!(refusal(put.send().await), denied);

    let upload = writer.create_multipart_upload().bucket(&bucket).key("out/big.json").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let part = writer.upload_part().bucket(&bucket).key("out/big.json").upload_id(id).part_number(1);
    let part = part.body(ByteStream::from_static(b"parts")).send().await.unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).set_e_tag(part.e_tag().map(str::to_owned)).build())
        .build();
    let complete = writer.complete_multipart_upload().bucket(&bucket).key("out/big.json").upload_id(id);
    complete.multipart_upload(parts).send().await.unwrap();
    assert_eq!(read(&admin(), &bucket, "out/big.json").await, b"parts");
    assert_eq!(
        refusal(writer.create_multipart_upload().bucket(&bucket).key("big.json").send().await),
        denied
    );

    let copy = |client: &Client| {
        client
            .copy_object()
            .bucket(&bucket)
            .key("out/copy.json")
            .copy_source(format!("{bucket}/docs/a.json"))
            .send()
    };
    assert_eq!(refusal(copy(&writer).await), denied);
    copy(&copier).await.unwrap();
    assert_eq!(read(&admin(), &bucket, "out/copy.json").await, b"docs/a.json");
}

#[tokio::test]
async fn delete_objects_checks_every_key() {
    let bucket = bucket_with(&["tmp/a.json", "tmp/b.json", "keep/c.json"]).await;
    let deleter = restricted("deleter", &[("s3:DeleteObject", &*format!("arn:aws:s3:::{bucket}/tmp/*"))]);
    let delete = |keys: &[&str]| {
        let objects = keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect();
        deleter
            .delete_objects()
            .bucket(&bucket)
            .delete(Delete::builder().set_objects(Some(objects)).build().unwrap())
    };

    let mixed = delete(&["tmp/a.json", "keep/c.json"]).send().await.unwrap();
    let deleted: Vec<_> = mixed.deleted().iter().filter_map(|d| d.key()).collect();
    let errors: Vec<_> = mixed.errors().iter().map(|e| (e.key().unwrap(), e.code().unwrap())).collect();
    assert_eq!(deleted, ["tmp/a.json"]);
    assert_eq!(errors, [("keep/c.json", "AccessDenied")]);
    assert!(!exists(&bucket, "tmp/a.json").await && exists(&bucket, "keep/c.json").await);

    let allowed = delete(&["tmp/b.json"]).send().await.unwrap();
    assert!(allowed.errors().is_empty(), "{allowed:?}");
    assert!(!exists(&bucket, "tmp/b.json").await);
}

#[tokio::test]
async fn other_keys_pass_through_unrestricted() {
    let bucket = unique_name("gate").replace('_', "-");
    let anyone = client(s3_gate::shared().endpoint(), ("test".into(), "test".into()));
    anyone.create_bucket().bucket(&bucket).send().await.unwrap();
    anyone.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(b"v")).send().await.unwrap();
    assert_eq!(read(&admin(), &bucket, "k").await, b"v");
    let missing = anyone.get_object().bucket(&bucket).key("missing").send().await;
    assert!(missing.is_err_and(|e| e.as_service_error().is_some_and(|s| s.is_no_such_key())));
}
