//! `sluice iam-policy`: the least-privilege IAM policy a manifest needs.
//! Every AWS call the code makes is listed here, by the component that
//! makes it; `aws.rs` logs each call, and the tests check that a run's
//! calls are all allowed by what this prints. A new component that calls
//! AWS adds its grants to [`grants`].

use serde_json::{Value, json};

use crate::coordination;
use crate::manifest::Plan;
use crate::objects::{Access, Location, S3Prefix};
use crate::sinks::SinkConfig;
use crate::sinks::redshift::{self, Auth, Compute};
use crate::sources::{SourceConfig, kinesis};

/// Who needs a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The identity sluice runs as.
    Runner,
    /// A role the manifest names: one sluice assumes to read a stream, or
    /// the one Redshift assumes to COPY.
    Role(String),
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub sid: String,
    pub actions: Vec<&'static str>,
    pub resources: Vec<String>,
    pub condition: Option<Value>,
}

/// Every grant the manifest's components need, and who needs it.
pub fn grants(plan: &Plan) -> Vec<(Principal, Grant)> {
    let mut all = Vec::new();
    match &plan.source {
        SourceConfig::File(_) => {}
        SourceConfig::Kinesis(k) => all.extend(stream(k)),
        SourceConfig::Export(e) => {
            if let Location::S3(at) = &e.location {
                all.extend(s3("ReadExport", at, &[Access::List, Access::Get]).map(runner));
            }
            if let Some(then) = &e.then {
                all.extend(stream(&then.kinesis));
            }
        }
    }
    for route in plan.tables.iter().chain(&plan.defaults) {
        if let Some(join) = &route.join {
            let sid = format!("JoinDocuments{}", camel(&route.source));
            all.extend(s3(&sid, &join.prefix, &[Access::List, Access::Get]).map(runner));
        }
    }
    if let Some(c) = &plan.coordination {
        all.push(runner(lease_table(c)));
    }
    match &plan.sink {
        SinkConfig::Sqlite(_) | SinkConfig::Postgres(_) => {}
        SinkConfig::S3(c) => {
            if let Location::S3(at) = &c.location {
                let access = [Access::List, Access::Get, Access::Put, Access::Delete];
                all.extend(s3("WriteS3Sink", at, &access).map(runner));
            }
        }
        SinkConfig::Redshift(c) => all.extend(warehouse(c)),
    }
    all
}

/// The policy document for `who`: what `sluice iam-policy` prints.
pub fn document(grants: &[(Principal, Grant)], who: &Principal) -> Value {
    let statements: Vec<Value> = grants
        .iter()
        .filter(|(p, _)| p == who)
        .map(|(_, g)| {
            let mut s =
                json!({ "Sid": g.sid, "Effect": "Allow", "Action": g.actions, "Resource": g.resources });
            if let Some(condition) = &g.condition {
                s["Condition"] = condition.clone();
            }
            s
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The roles the grants name, each once.
pub fn roles(grants: &[(Principal, Grant)]) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for (p, _) in grants {
        if let Principal::Role(arn) = p
            && !roles.contains(arn)
        {
            roles.push(arn.clone());
        }
    }
    roles
}

fn runner(g: Grant) -> (Principal, Grant) {
    (Principal::Runner, g)
}

fn grant(sid: &str, actions: &[&'static str], resources: Vec<String>) -> Grant {
    Grant { sid: sid.to_owned(), actions: actions.to_vec(), resources, condition: None }
}

/// Reading a stream (`sources/kinesis/`): listing shards, polling them, or
/// enhanced fan-out through a consumer it registers; through an assumed
/// role if the manifest names one.
fn stream(k: &kinesis::Config) -> Vec<(Principal, Grant)> {
    let mut reads = vec![grant(
        "ReadStream",
        &["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"],
        vec![k.stream_arn.clone()],
    )];
    if let Some(consumer) = &k.consumer {
        reads.push(grant(
            "RegisterConsumer",
            &["kinesis:RegisterStreamConsumer"],
            vec![k.stream_arn.clone()],
        ));
        reads.push(grant(
            "ReadThroughConsumer",
            &["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"],
            vec![format!("{}/consumer/{consumer}:*", k.stream_arn)],
        ));
    }
    match &k.role_arn {
        None => reads.into_iter().map(runner).collect(),
        Some(role) => {
            let assume = grant("AssumeStreamRole", &["sts:AssumeRole"], vec![role.clone()]);
            let mut all = vec![runner(assume)];
            all.extend(reads.into_iter().map(|g| (Principal::Role(role.clone()), g)));
            all
        }
    }
}

/// The lease table of `[coordination]` (`coordination/leases.rs`), in the
/// runner's own account: created on first use, scanned, and written only
/// conditionally.
fn lease_table(c: &coordination::Config) -> Grant {
    grant(
        "LeaseTable",
        &[
            "dynamodb:CreateTable",
            "dynamodb:DescribeTable",
            "dynamodb:Scan",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ],
        vec![format!("arn:aws:dynamodb:*:*:table/{}", c.table)],
    )
}

/// Objects under a prefix: `s3:ListBucket` on the bucket, limited to the
/// prefix, and the object actions on the keys under it.
fn s3(sid: &str, at: &S3Prefix, access: &[Access]) -> impl Iterator<Item = Grant> {
    let list = access.contains(&Access::List).then(|| Grant {
        condition: Some(json!({ "StringLike": { "s3:prefix": [format!("{}*", at.prefix)] } })),
        ..grant(&format!("{sid}List"), &["s3:ListBucket"], vec![format!("arn:aws:s3:::{}", at.bucket)])
    });
    let actions: Vec<&'static str> =
        access.iter().filter(|a| **a != Access::List).map(|a| a.action()).collect();
    let objects = (!actions.is_empty())
        .then(|| grant(sid, &actions, vec![format!("arn:aws:s3:::{}/{}*", at.bucket, at.prefix)]));
    list.into_iter().chain(objects)
}

/// The Redshift sink (`sinks/redshift/`): statements through the Data API,
/// reading their results, signing in, and staging large batches in S3 for
/// a COPY that Redshift runs as `iam_role`.
fn warehouse(c: &redshift::Config) -> Vec<(Principal, Grant)> {
    // Region and account appear only in a secret's ARN; elsewhere `*`.
    let (region, account) = match &c.auth {
        Auth::SecretArn(arn) => {
            let parts: Vec<&str> = arn.split(':').collect();
            (parts.get(3).copied().unwrap_or("*").to_owned(), parts.get(4).copied().unwrap_or("*").to_owned())
        }
        _ => ("*".to_owned(), "*".to_owned()),
    };
    let (r, a) = (&region, &account);
    let compute = match &c.compute {
        // A workgroup's ARN carries its id, which the manifest does not know.
        Compute::Workgroup(_) => format!("arn:aws:redshift-serverless:{r}:{a}:workgroup/*"),
        Compute::Cluster(id) => format!("arn:aws:redshift:{r}:{a}:cluster:{id}"),
    };
    let mut all = vec![
        runner(grant(
            "RunStatements",
            &["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"],
            vec![compute.clone()],
        )),
        // These take no resource; the condition limits them to our own statements.
        runner(Grant {
            condition: Some(
                json!({ "StringEquals": { "redshift-data:statement-owner-iam-userid": "${aws:userid}" } }),
            ),
            ..grant(
                "ReadStatementResults",
                &["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"],
                vec!["*".into()],
            )
        }),
    ];
    let dbname = |cluster: &str| format!("arn:aws:redshift:{r}:{a}:dbname:{cluster}/{}", c.database);
    match (&c.auth, &c.compute) {
        (Auth::SecretArn(arn), _) => {
            // A secret's ARN ends in a random suffix of six characters.
            let suffixed = arn.rsplit('-').next().is_some_and(|s| s.len() == 6) && arn.contains('-');
            let resource = if suffixed { arn.clone() } else { format!("{arn}-??????") };
            all.push(runner(grant("ReadDatabaseSecret", &["secretsmanager:GetSecretValue"], vec![resource])));
        }
        (Auth::DbUser(user), Compute::Cluster(id)) => all.push(runner(grant(
            "SignInAsDatabaseUser",
            &["redshift:GetClusterCredentials"],
            vec![format!("arn:aws:redshift:{r}:{a}:dbuser:{id}/{user}"), dbname(id)],
        ))),
        (Auth::DbUser(_), Compute::Workgroup(_)) => {}
        (Auth::Iam, Compute::Workgroup(_)) => {
            all.push(runner(grant("SignInWithIam", &["redshift-serverless:GetCredentials"], vec![compute])))
        }
        (Auth::Iam, Compute::Cluster(id)) => all.push(runner(grant(
            "SignInWithIam",
            &["redshift:GetClusterCredentialsWithIAM"],
            vec![dbname(id)],
        ))),
    }
    if let Some(staging) = &c.staging {
        let access = [Access::List, Access::Put, Access::Delete];
        all.extend(s3("StageBatches", staging, &access).map(runner));
        all.push(runner(grant(
            "FindStagingRegion",
            &["s3:GetBucketLocation"],
            vec![format!("arn:aws:s3:::{}", staging.bucket)],
        )));
        if let Some(role) = &c.iam_role {
            let copy = s3("CopyStagedBatches", staging, &[Access::List, Access::Get]);
            all.extend(copy.map(|g| (Principal::Role(role.clone()), g)));
        }
    }
    all
}

/// `orders_v2` as `OrdersV2`, for a statement id (letters and digits only).
fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        crate::manifest::parse(std::path::Path::new("m.toml"), text).unwrap()
    }

    const TABLE: &str = "[[tables]]\nsource = \"orders\"\ntarget = \"orders_cdc\"\n";

    #[test]
    fn a_stream_read_through_a_role_gives_the_runner_only_sts_and_the_role_the_reads() {
        let arn = "arn:aws:kinesis:eu-west-1:111122223333:stream/orders";
        let role = "arn:aws:iam::111122223333:role/reader";
        let p = plan(&format!(
            "name = \"p\"\n[source]\ntype = \"kinesis\"\nstream_arn = \"{arn}\"\nrole_arn = \"{role}\"\n\
             consumer = \"sluice\"\n[sink]\ntype = \"sqlite\"\npath = \"x.db\"\n{TABLE}"
        ));
        let g = grants(&p);
        let runner = document(&g, &Principal::Runner);
        assert_eq!(runner["Statement"].as_array().unwrap().len(), 1, "{runner}");
        assert_eq!(runner["Statement"][0]["Action"], json!(["sts:AssumeRole"]));
        assert_eq!(runner["Statement"][0]["Resource"], json!([role]));
        let reader = document(&g, &Principal::Role(role.into()));
        let text = reader.to_string();
        assert!(text.contains("kinesis:GetRecords") && text.contains(arn), "{text}");
        assert!(text.contains(&format!("{arn}/consumer/sluice:*")), "{text}");
        assert_eq!(roles(&g), vec![role.to_owned()]);
    }

    #[test]
    fn redshift_grants_name_the_secret_the_cluster_and_the_staging_prefix() {
        let secret = "arn:aws:secretsmanager:us-east-2:111122223333:secret:sluice";
        let p = plan(&format!(
            "name = \"p\"\n[source]\ntype = \"file\"\npath = \"s.jsonl\"\n[sink]\ntype = \"redshift\"\n\
             database = \"dev\"\ncluster = \"prod\"\nsecret_arn = \"{secret}\"\n\
             staging = \"s3://stage/sluice/\"\niam_role = \"arn:aws:iam::111122223333:role/copy\"\n{TABLE}"
        ));
        let g = grants(&p);
        let text = document(&g, &Principal::Runner).to_string();
        for needle in [
            "arn:aws:redshift:us-east-2:111122223333:cluster:prod",
            "arn:aws:secretsmanager:us-east-2:111122223333:secret:sluice-??????",
            "arn:aws:s3:::stage/sluice/*",
            "\"s3:prefix\":[\"sluice/*\"]",
            "redshift-data:statement-owner-iam-userid",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let copy = document(&g, &Principal::Role("arn:aws:iam::111122223333:role/copy".into())).to_string();
        assert!(copy.contains("s3:GetObject") && !copy.contains("s3:PutObject"), "{copy}");
    }
}
