//! From the TOML types to a [`Plan`]: every check that needs only the text.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::raw;
use super::{
    ExportPlan, HandOver, JoinPlan, KinesisPlan, KinesisStart, Location, ManifestError, OutputMode, Plan,
    PostgresPlan, RedshiftAuth, RedshiftCompute, RedshiftPlan, Route, S3Prefix, S3SinkPlan, Secret, SinkPlan,
    SourcePlan,
};
use crate::guest::{GuestLimits, TransformRef};
use crate::ident;
use crate::record::{BatchLimits, DeleteMode};

/// The longest pipeline name: Redshift keeps it in a VARCHAR(256).
const MAX_NAME_BYTES: usize = 256;
/// The longest file source path with a Redshift sink: its stream name, with
/// a line number, goes in a VARCHAR(1024).
const MAX_FILE_PATH_BYTES: usize = 1000;
/// PostgreSQL cuts identifiers at 63 bytes (NAMEDATALEN - 1).
const MAX_POSTGRES_NAME_BYTES: usize = 63;

/// How long before `exportTime` a hand-over starts reading the stream, unless
/// the manifest says: covers clock differences and changes in flight.
const DEFAULT_MARGIN: Duration = Duration::from_secs(300);

/// Reads and checks a manifest file.
pub fn load(path: &Path) -> Result<Plan, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ManifestError::whole(path, format!("cannot read the manifest: {e}")))?;
    parse(path, &text)
}

/// Checks manifest text; `path` names the file in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Plan, ManifestError> {
    let cx = Cx { path, text, base: path.parent().unwrap_or(Path::new("")) };
    let raw: raw::Manifest = toml::from_str(text).map_err(|e| ManifestError::from_toml(path, text, &e))?;

    let name = raw.name.get_ref();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(cx.err(&raw.name, "the name must be letters, digits, '_', '-' or '.'"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(cx.err(
            &raw.name,
            format!("the name is {} bytes; sinks keep names of at most {MAX_NAME_BYTES}", name.len()),
        ));
    }

    let mut file_path = None;
    let source = match raw.source.kind.get_ref().as_str() {
        "file" => {
            let s = cx.section::<raw::SourceSection<raw::FileSource>>()?.source;
            file_path = Some(s.path.clone());
            SourcePlan::File { path: cx.base.join(s.path.get_ref()), written: s.path.into_inner() }
        }
        "kinesis" => {
            let s = cx.section::<raw::SourceSection<raw::KinesisSource>>()?.source;
            if let Some(m) = &s.margin {
                return Err(cx.err(m, "margin applies only to the stream under an export's `then`"));
            }
            SourcePlan::Kinesis(cx.kinesis(s)?)
        }
        "export" => {
            SourcePlan::Export(cx.export(cx.section::<raw::SourceSection<raw::ExportSource>>()?.source)?)
        }
        other => {
            return Err(cx.err(
                &raw.source.kind,
                format!("unknown source type {other:?}; the source types are: file, kinesis, export"),
            ));
        }
    };
    let sink = match raw.sink.kind.get_ref().as_str() {
        "sqlite" => {
            let s = cx.section::<raw::SinkSection<raw::SqliteSink>>()?.sink;
            SinkPlan::Sqlite { path: cx.base.join(s.path.get_ref()) }
        }
        "postgres" => {
            SinkPlan::Postgres(cx.postgres(cx.section::<raw::SinkSection<raw::PostgresSink>>()?.sink)?)
        }
        "redshift" => {
            SinkPlan::Redshift(cx.redshift(cx.section::<raw::SinkSection<raw::RedshiftSink>>()?.sink)?)
        }
        "s3" => SinkPlan::S3(cx.s3_sink(cx.section::<raw::SinkSection<raw::S3Sink>>()?.sink)?),
        other => {
            return Err(cx.err(
                &raw.sink.kind,
                format!("unknown sink type {other:?}; the sink types are: sqlite, postgres, redshift, s3"),
            ));
        }
    };

    // The stream names a file source gives its checkpoints and dead letters
    // are what the manifest wrote; Redshift keeps them in a VARCHAR(1024).
    if let (SinkPlan::Redshift(_), Some(path)) = (&sink, &file_path)
        && path.get_ref().len() > MAX_FILE_PATH_BYTES
    {
        return Err(cx.err(
            path,
            format!(
                "the path is {} bytes; Redshift keeps paths of at most {MAX_FILE_PATH_BYTES}",
                path.get_ref().len()
            ),
        ));
    }
    // PostgreSQL cuts names longer than 63 bytes; two targets could become one.
    let max_target = if matches!(sink, SinkPlan::Postgres(_)) { MAX_POSTGRES_NAME_BYTES } else { usize::MAX };

    let defaults = BatchLimits::default();
    let batch = BatchLimits {
        max_records: cx.int(&raw.batch.max_records, 1, 100_000)?.unwrap_or(defaults.max_records),
        max_bytes: cx.int(&raw.batch.max_bytes, 1024, 1 << 30)?.unwrap_or(defaults.max_bytes),
        max_wait: cx
            .int(&raw.batch.max_wait_ms, 0, 3_600_000)?
            .map_or(defaults.max_wait, |ms| Duration::from_millis(ms as u64)),
    };
    let limits = GuestLimits::default();
    let guest = GuestLimits {
        time_budget: cx
            .int(&raw.guest.time_budget_ms, 10, 600_000)?
            .map_or(limits.time_budget, |ms| Duration::from_millis(ms as u64)),
        record_budget: cx
            .int(&raw.guest.record_budget_ms, 1, 600_000)?
            .map_or(limits.record_budget, |ms| Duration::from_millis(ms as u64)),
        memory_bytes: cx.int(&raw.guest.memory_limit_mb, 1, 4096)?.map_or(limits.memory_bytes, |mb| mb << 20),
    };

    let mut tables: Vec<Route> = Vec::new();
    for t in &raw.tables {
        if t.source.get_ref().is_empty() {
            return Err(cx.err(&t.source, "the DynamoDB table name is empty"));
        }
        if tables.iter().any(|r| r.source == *t.source.get_ref()) {
            return Err(
                cx.err(&t.source, format!("table {:?} has two [[tables]] entries", t.source.get_ref()))
            );
        }
        let mut keys: Vec<String> = Vec::new();
        for k in &t.keys {
            if k.get_ref().is_empty() || keys.contains(k.get_ref()) {
                return Err(cx.err(k, "key names must be non-empty and listed once"));
            }
            keys.push(k.get_ref().clone());
        }
        let transform = cx.transform(&t.transform)?;
        let mut settings: Vec<(String, String)> =
            t.settings.iter().map(|(k, v)| (k.clone(), setting_text(v))).collect();
        let join = match &t.join {
            Some(j) => {
                if let Some(a) = &j.attribute {
                    if a.get_ref().is_empty() {
                        return Err(cx.err(a, "the attribute name is empty"));
                    }
                    settings.push(("attribute".into(), a.get_ref().clone()));
                }
                Some(cx.join(j)?)
            }
            None if transform.to_string() == "builtin:s3-join" => {
                return Err(cx.err(
                    t.transform.as_ref().expect("named explicitly"),
                    "builtin:s3-join needs a [tables.join] section with the prefix objects may come from",
                ));
            }
            None => None,
        };
        tables.push(Route {
            source: t.source.get_ref().clone(),
            target: cx.target(&t.target, max_target)?,
            transform,
            keys,
            deletes: cx.deletes(&t.deletes)?,
            settings,
            join,
        });
    }
    let defaults = match &raw.defaults {
        Some(d) => Some(Route {
            source: String::new(),
            target: cx.target(&d.target, max_target)?,
            transform: cx.transform(&d.transform)?,
            keys: Vec::new(),
            deletes: cx.deletes(&d.deletes)?,
            settings: Vec::new(),
            join: None,
        }),
        None => None,
    };
    if tables.is_empty() && defaults.is_none() {
        return Err(ManifestError::whole(
            path,
            "no table is routed anywhere: add a [[tables]] entry or [defaults]",
        ));
    }

    let plan = Plan { name: name.clone(), path: path.into(), source, sink, batch, guest, tables, defaults };
    // One sink table has one delete mode: tombstones and soft deletes do not mix.
    for route in plan.tables.iter().chain(&plan.defaults) {
        if let Some((_, mode)) =
            plan.targets().into_iter().find(|(t, m)| *t == route.target && *m != route.deletes)
        {
            return Err(ManifestError::whole(
                path,
                format!(
                    "target {:?} is given both deletes = \"{}\" and \"{}\"",
                    route.target,
                    mode_name(mode),
                    mode_name(route.deletes)
                ),
            ));
        }
    }
    Ok(plan)
}

struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
    base: &'a Path,
}

impl Cx<'_> {
    fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> ManifestError {
        ManifestError::at(self.path, self.text, Some(at.span()), message)
    }

    /// The document read again as one tagged section's own type.
    fn section<T: serde::de::DeserializeOwned>(&self) -> Result<T, ManifestError> {
        toml::from_str(self.text).map_err(|e| ManifestError::from_toml(self.path, self.text, &e))
    }

    fn int(&self, value: &Option<Spanned<i64>>, min: i64, max: i64) -> Result<Option<usize>, ManifestError> {
        match value {
            Some(v) if !(min..=max).contains(v.get_ref()) => {
                Err(self.err(v, format!("must be between {min} and {max}")))
            }
            Some(v) => Ok(Some(*v.get_ref() as usize)),
            None => Ok(None),
        }
    }

    /// An `s3://` prefix or a local folder relative to the manifest.
    fn location(&self, path: &Spanned<String>, example: &str) -> Result<Location, ManifestError> {
        let written = path.get_ref();
        if written.starts_with("s3://") {
            Ok(Location::S3(parse_s3_prefix(written).map_err(|e| self.err(path, e))?))
        } else if written.contains("://") {
            Err(self.err(path, format!("expected {example} or a local folder")))
        } else {
            Ok(Location::Local(self.base.join(written)))
        }
    }

    fn s3_sink(&self, s: raw::S3Sink) -> Result<S3SinkPlan, ManifestError> {
        let mode = match s.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "changes")) => OutputMode::Changes,
            Some((_, "latest")) => OutputMode::Latest,
            Some((m, other)) => {
                return Err(self.err(m, format!("mode is {other:?}; it must be changes or latest")));
            }
        };
        Ok(S3SinkPlan {
            location: self.location(&s.path, "s3://bucket/prefix/")?,
            mode,
            gzip: s.gzip.unwrap_or(false),
        })
    }

    fn export(&self, s: raw::ExportSource) -> Result<ExportPlan, ManifestError> {
        let location = self.location(&s.path, "s3://bucket/prefix/AWSDynamoDB/<ExportId>/")?;
        if let Some(t) = &s.table
            && t.get_ref().is_empty()
        {
            return Err(self.err(t, "the DynamoDB table name is empty"));
        }
        let then = match s.then {
            None => None,
            Some(then) => {
                let span = then.span();
                let k = then.into_inner();
                if k._kind != "kinesis" {
                    return Err(ManifestError::at(
                        self.path,
                        self.text,
                        Some(span),
                        "then must be { type = \"kinesis\", ... }",
                    ));
                }
                if let Some(v) = k.start.as_ref().or(k.timestamp.as_ref()) {
                    return Err(self.err(v, "the stream starts at the export's exportTime minus `margin`; remove start and timestamp"));
                }
                let margin = match &k.margin {
                    None => DEFAULT_MARGIN,
                    Some(m) => humantime::parse_duration(m.get_ref())
                        .map_err(|e| self.err(m, format!("not a duration ({e}), e.g. \"5m\" or \"1h\"")))?,
                };
                Some(HandOver { kinesis: self.kinesis(k)?, margin })
            }
        };
        Ok(ExportPlan {
            location,
            table: s.table.map(Spanned::into_inner),
            parallel: self.int(&s.parallel, 1, 64)?.unwrap_or(4),
            then,
        })
    }

    fn kinesis(&self, s: raw::KinesisSource) -> Result<KinesisPlan, ManifestError> {
        let arn = s.stream_arn.get_ref();
        if !(arn.starts_with("arn:") && arn.contains(":kinesis:") && arn.contains(":stream/")) {
            return Err(self.err(
                &s.stream_arn,
                "expected a Kinesis stream ARN, arn:aws:kinesis:<region>:<account>:stream/<name>",
            ));
        }
        let start = match (s.start.as_ref().map(|v| (v, v.get_ref().as_str())), &s.timestamp) {
            (None | Some((_, "trim_horizon")), None) => KinesisStart::TrimHorizon,
            (Some((_, "latest")), None) => KinesisStart::Latest,
            (Some((_, "at_timestamp")), Some(t)) => {
                KinesisStart::AtTimestamp(humantime::parse_rfc3339_weak(t.get_ref()).map_err(|e| {
                    self.err(t, format!("not an RFC 3339 time ({e}), e.g. 2026-01-01T00:00:00Z"))
                })?)
            }
            (Some((v, "at_timestamp")), None) => {
                return Err(self.err(v, "start = \"at_timestamp\" needs timestamp"));
            }
            (_, Some(t)) => return Err(self.err(t, "timestamp goes with start = \"at_timestamp\"")),
            (Some((v, other)), None) => {
                return Err(self
                    .err(v, format!("start is {other:?}; it must be trim_horizon, latest or at_timestamp")));
            }
        };
        if let Some(c) = &s.consumer {
            let name = c.get_ref();
            let valid = !name.is_empty() && name.len() <= 128;
            if !valid || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
                return Err(self.err(c, "a consumer name is 1 to 128 letters, digits, '_', '.' or '-'"));
            }
        }
        Ok(KinesisPlan {
            stream_arn: s.stream_arn.into_inner(),
            role_arn: s.role_arn.map(Spanned::into_inner),
            start,
            consumer: s.consumer.map(Spanned::into_inner),
        })
    }

    fn postgres(&self, s: raw::PostgresSink) -> Result<PostgresPlan, ManifestError> {
        let url = match (s.url, s.url_env) {
            (Some(url), None) => {
                let text = url.get_ref();
                if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                    return Err(self.err(&url, "the url must start with postgres:// or postgresql://"));
                }
                Secret::Literal(url.into_inner())
            }
            (None, Some(var)) => Secret::Env(var.into_inner()),
            (Some(url), Some(_)) => return Err(self.err(&url, "give url or url_env, not both")),
            (None, None) => {
                return Err(ManifestError::whole(
                    self.path,
                    "[sink] type = \"postgres\" needs url or url_env",
                ));
            }
        };
        let schema = self.schema(&s.schema)?;
        if let Some(at) = s.schema.as_ref().filter(|_| schema.len() > MAX_POSTGRES_NAME_BYTES) {
            return Err(self.err(at, format!("PostgreSQL names are at most {MAX_POSTGRES_NAME_BYTES} bytes")));
        }
        Ok(PostgresPlan { url, schema, ca_file: s.ca_file.map(|f| self.base.join(f.get_ref())) })
    }

    fn redshift(&self, s: raw::RedshiftSink) -> Result<RedshiftPlan, ManifestError> {
        let whole = |m: &str| ManifestError::whole(self.path, format!("[sink] type = \"redshift\" {m}"));
        let compute = match (s.workgroup, s.cluster) {
            (Some(w), None) => RedshiftCompute::Workgroup(w.into_inner()),
            (None, Some(c)) => RedshiftCompute::Cluster(c.into_inner()),
            (Some(w), Some(_)) => {
                return Err(self.err(&w, "give workgroup (Serverless) or cluster, not both"));
            }
            (None, None) => return Err(whole("needs workgroup (Serverless) or cluster (provisioned)")),
        };
        let auth = match (s.secret_arn, s.db_user) {
            (Some(a), None) => RedshiftAuth::SecretArn(a.into_inner()),
            (None, Some(u)) if matches!(compute, RedshiftCompute::Cluster(_)) => {
                RedshiftAuth::DbUser(u.into_inner())
            }
            (None, Some(u)) => {
                return Err(self.err(
                    &u,
                    "db_user works with a provisioned cluster; a Serverless workgroup signs in with \
                     secret_arn or as the caller's IAM identity (neither given)",
                ));
            }
            (Some(a), Some(_)) => return Err(self.err(&a, "give secret_arn or db_user, not both")),
            (None, None) => RedshiftAuth::Iam,
        };
        let staging = match &s.staging {
            Some(uri) => Some(parse_s3_prefix(uri.get_ref()).map_err(|why| self.err(uri, why))?),
            None => None,
        };
        if let (Some(uri), None) = (&s.staging, &s.iam_role) {
            return Err(
                self.err(uri, "staging needs iam_role: Redshift's COPY reads the staged files with it")
            );
        }
        let staging_table = match &s.staging_table {
            Some(t) => ident::fold(t.get_ref()).map_err(|why| self.err(t, why))?,
            None => "sluice_stage".to_owned(),
        };
        Ok(RedshiftPlan {
            database: s.database.into_inner(),
            compute,
            auth,
            schema: self.schema(&s.schema)?,
            iam_role: s.iam_role.map(Spanned::into_inner),
            staging,
            staging_table,
            super_max_string_bytes: self.int(&s.super_max_string_bytes, 1, 16 << 20)?.unwrap_or(65535),
        })
    }

    fn schema(&self, schema: &Option<Spanned<String>>) -> Result<String, ManifestError> {
        match schema {
            Some(s) => ident::fold(s.get_ref()).map_err(|why| self.err(s, why)),
            None => Ok("public".to_owned()),
        }
    }

    fn target(&self, target: &Spanned<String>, max: usize) -> Result<String, ManifestError> {
        let folded = ident::fold(target.get_ref()).map_err(|why| self.err(target, why))?;
        if folded.len() > max {
            return Err(self.err(target, format!("{folded:?} is longer than {max} bytes, the sink's limit")));
        }
        Ok(folded)
    }

    fn join(&self, j: &raw::Join) -> Result<JoinPlan, ManifestError> {
        let prefix = j.prefix.get_ref();
        if !prefix.starts_with("s3://") {
            return Err(self.err(&j.prefix, "expected s3://bucket/prefix/ (the objects' folder)"));
        }
        let prefix = parse_s3_prefix(prefix).map_err(|e| self.err(&j.prefix, e))?;
        Ok(JoinPlan {
            prefix,
            max_object_bytes: self.int(&j.max_object_bytes, 1, 1 << 30)?.unwrap_or(1 << 20) as u64,
            timeout: Duration::from_millis(self.int(&j.timeout_ms, 100, 600_000)?.unwrap_or(10_000) as u64),
            cache_bytes: self.int(&j.cache_mb, 0, 65_536)?.unwrap_or(64) << 20,
        })
    }

    fn transform(&self, transform: &Option<Spanned<String>>) -> Result<TransformRef, ManifestError> {
        match transform {
            Some(t) => TransformRef::parse(t.get_ref(), self.base).map_err(|why| self.err(t, why)),
            None => Ok(TransformRef::parse(TransformRef::DEFAULT, self.base).expect("the default exists")),
        }
    }

    fn deletes(&self, deletes: &Option<Spanned<String>>) -> Result<DeleteMode, ManifestError> {
        match deletes.as_ref().map(|d| (d, d.get_ref().as_str())) {
            None | Some((_, "soft")) => Ok(DeleteMode::Soft),
            Some((_, "hard")) => Ok(DeleteMode::Hard),
            Some((d, other)) => {
                Err(self.err(d, format!("deletes is {other:?}; it must be \"soft\" or \"hard\"")))
            }
        }
    }
}

fn mode_name(mode: DeleteMode) -> &'static str {
    match mode {
        DeleteMode::Soft => "soft",
        DeleteMode::Hard => "hard",
    }
}

/// `s3://bucket/prefix/`: a bucket, and a key prefix that is empty or ends in `/`.
pub fn parse_s3_prefix(uri: &str) -> Result<S3Prefix, String> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("{uri:?} is not an s3:// URI"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{uri:?} names no bucket"));
    }
    let prefix =
        if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
    Ok(S3Prefix { bucket: bucket.to_owned(), prefix })
}

/// Settings reach guests as text: strings as they are, other values as TOML.
fn setting_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
