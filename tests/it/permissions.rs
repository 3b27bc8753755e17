//! sluice under least-privilege IAM policies, through the S3 gate (which
//! answers 403 for what a policy does not allow, and 403 rather than 404 for
//! a missing object without `s3:ListBucket`, as S3 does): the permissions the
//! README lists are enough, and a missing one stops the run at start with
//! the action and the resource it lacks.

use std::path::Path;
use std::process::Command;

use sluice_test_support::s3_gate::{self, Policy};
use sluice_test_support::unique_name;

use crate::join::{documents, joined, stream_manifest};
use crate::util::{runtime, s3, scratch, sluice};

/// `sluice` signing S3 requests as a principal the gate restricts to `policy`.
fn sluice_as(name: &str, policy: Policy) -> Command {
    let gate = s3_gate::shared();
    let (key, secret) = gate.credentials(name, policy);
    let mut cmd = sluice();
    cmd.env("AWS_ENDPOINT_URL_S3", gate.endpoint())
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    cmd
}

/// The S3 sink's policy as the README lists it, less what `without` names.
fn sink_policy(bucket: &str, without: &str) -> Policy {
    let mut policy = Policy::new();
    for action in ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"].into_iter().filter(|a| *a != without) {
        policy = policy.allow(action, &format!("arn:aws:s3:::{bucket}/out/*"));
    }
    if without != "s3:ListBucket" {
        policy = policy.allow_with_prefix("s3:ListBucket", &format!("arn:aws:s3:::{bucket}"), "out/*");
    }
    policy
}

fn s3_sink_manifest(dir: &Path, bucket: &str) -> std::path::PathBuf {
    let g =
        sluice::generator::generate(&sluice::generator::GenOptions { changes: 200, ..Default::default() });
    crate::util::pipeline_into(
        dir,
        &g.records,
        50,
        &format!("type = \"s3\"\npath = \"s3://{bucket}/out/\""),
        "[defaults]\ntarget = \"cdc\"\n",
    )
}

#[test]
fn the_s3_sink_runs_on_the_permissions_the_readme_lists_and_names_a_missing_one() {
    let bucket = unique_name("perm").replace('_', "-");
    runtime().block_on(s3().create_bucket().bucket(&bucket).send()).unwrap();
    let dir = scratch();
    let manifest = s3_sink_manifest(dir.path(), &bucket);
    for (n, missing) in
        ["s3:ListBucket", "s3:PutObject", "s3:DeleteObject", "s3:GetObject"].into_iter().enumerate()
    {
        let out = sluice_as(&format!("sink-{n}"), sink_policy(&bucket, missing))
            .arg("run")
            .arg(&manifest)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "ran without {missing}");
        assert!(
            err.contains(&format!("sluice needs {missing} on arn:aws:s3:::{bucket}")),
            "{missing}: {err}"
        );
    }
    let out = sluice_as("sink-all", sink_policy(&bucket, "")).arg("run").arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_join_tells_a_missing_document_from_a_forbidden_one() {
    let bucket = documents();
    let dir = scratch();
    let manifest = stream_manifest(dir.path(), &bucket, "");
    // GetObject on some documents only; huge.json and not-json.txt are forbidden.
    let docs = |key: &str| format!("arn:aws:s3:::{bucket}/docs/{key}");
    let reader = Policy::new().allow("s3:GetObject", &docs("a.json")).allow("s3:GetObject", &docs("b.json"));
    let without_list = sluice_as("joiner-0", reader.clone()).arg("run").arg(&manifest).output().unwrap();
    let err = String::from_utf8_lossy(&without_list.stderr);
    assert!(!without_list.status.success(), "a join ran without s3:ListBucket");
    assert!(err.contains(&format!("sluice needs s3:ListBucket on arn:aws:s3:::{bucket}")), "{err}");

    let reader = reader.allow("s3:GetObject", &docs("missing.json")).allow_with_prefix(
        "s3:ListBucket",
        &format!("arn:aws:s3:::{bucket}"),
        "docs/*",
    );
    let out = sluice_as("joiner-1", reader).arg("run").arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = joined(&dir.path().join("out.db"));
    let by = |id: &str| rows.iter().find(|r| r.0 == id).unwrap().clone();
    assert_eq!(by("a").3, "joined");
    assert_eq!((by("missing").2.as_deref(), by("missing").3.as_str()), (Some("{}"), "missing"));
    let huge = by("huge");
    assert_eq!(huge.3, "error");
    assert!(huge.4.as_deref().unwrap_or("").contains("access denied"), "{huge:?}");
}

#[test]
fn redshift_staging_names_a_missing_permission_at_start() {
    let w = crate::redshift::Warehouse::new();
    let g =
        sluice::generator::generate(&sluice::generator::GenOptions { changes: 100, ..Default::default() });
    let dir = scratch();
    let manifest = crate::util::pipeline_into(
        dir.path(),
        &g.records,
        50,
        &w.sink(&w.staging()),
        "[defaults]\ntarget = \"cdc\"\n",
    );
    let bucket = &w.bucket;
    let staged = format!("arn:aws:s3:::{bucket}/sluice/*");
    let policy = Policy::new()
        .allow_with_prefix("s3:ListBucket", &format!("arn:aws:s3:::{bucket}"), "sluice/*")
        .allow("s3:PutObject", &staged);
    let mut cmd = sluice_as("stager", policy);
    cmd.env("AWS_ENDPOINT_URL_REDSHIFT_DATA", w.standin.endpoint());
    let out = cmd.arg("run").arg(&manifest).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran without s3:DeleteObject");
    assert!(err.contains(&format!("sluice needs s3:DeleteObject on {staged}")), "{err}");
}
