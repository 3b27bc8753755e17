//! From the TOML types to a [`Plan`]: every check that needs only the text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw;
use super::{Field, JoinPlan, ManifestError, Plan, Route, RunLimits, Telemetry};
use crate::guest::{GuestLimits, TransformRef};
use crate::ident;
use crate::objects::{Location, S3Prefix, parse_s3_prefix};
use crate::record::{BatchLimits, DeleteMode, RawPayload};
use crate::sinks::{SinkConfig, postgres, redshift, s3, sqlite};
use crate::sources::{SourceConfig, export, file, kinesis};

/// The longest pipeline name: Redshift keeps it in a VARCHAR(256).
const MAX_NAME_BYTES: usize = 256;

/// Reads and checks a manifest file.
pub fn load(path: &Path) -> Result<Plan, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ManifestError::whole(path, format!("cannot read the manifest: {e}")))?;
    parse(path, &text)
}

/// Checks manifest text; `path` names the file in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Plan, ManifestError> {
    let cx = Context { path, text, base: path.parent().unwrap_or(Path::new("")) };
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

    // The sink first: what it can store bounds what the rest may name.
    let sink = match raw.sink.kind.get_ref().as_str() {
        "sqlite" => {
            SinkConfig::Sqlite(cx.section::<raw::SinkSection<sqlite::Section>>()?.sink.section.resolve(&cx)?)
        }
        "postgres" => SinkConfig::Postgres(
            cx.section::<raw::SinkSection<postgres::Section>>()?.sink.section.resolve(&cx)?,
        ),
        "redshift" => SinkConfig::Redshift(
            cx.section::<raw::SinkSection<redshift::Section>>()?.sink.section.resolve(&cx)?,
        ),
        "s3" => SinkConfig::S3(cx.section::<raw::SinkSection<s3::Section>>()?.sink.section.resolve(&cx)?),
        other => {
            return Err(cx.err(
                &raw.sink.kind,
                format!("unknown sink type {other:?}; the sink types are: sqlite, postgres, redshift, s3"),
            ));
        }
    };
    let source = match raw.source.kind.get_ref().as_str() {
        "file" => SourceConfig::File(
            cx.section::<raw::SourceSection<file::Section>>()?
                .source
                .section
                .resolve(&cx, sink.max_partition_bytes())?,
        ),
        "kinesis" => SourceConfig::Kinesis(
            cx.section::<raw::SourceSection<kinesis::Section>>()?.source.section.resolve(&cx)?,
        ),
        "export" => SourceConfig::Export(
            cx.section::<raw::SourceSection<export::Section>>()?.source.section.resolve(&cx)?,
        ),
        other => {
            return Err(cx.err(
                &raw.source.kind,
                format!("unknown source type {other:?}; the source types are: file, kinesis, export"),
            ));
        }
    };
    let max_target = sink.max_target_bytes();
    let coordination = match raw.coordination {
        Some(section) => {
            let kind = section.kind.clone();
            let config = section.resolve(&cx)?;
            if matches!(source, SourceConfig::File(_)) {
                return Err(cx.err(
                    &kind,
                    format!(
                        "[coordination] shares a Kinesis stream's shards or an export's data files among workers; \
                         this pipeline reads {source}, which one process reads alone"
                    ),
                ));
            }
            if !sink.fences_leases() {
                return Err(cx.err(
                    &kind,
                    format!(
                        "workers sharing a stream need a sink that fences each shard by its lease (sqlite, postgres, redshift); \
                         {sink} does not"
                    ),
                ));
            }
            Some(config)
        }
        None => None,
    };

    let defaults = BatchLimits::default();
    let max_wait = cx
        .int(&raw.batch.max_wait_ms, 0, 3_600_000)?
        .map_or(defaults.max_wait, |ms| Duration::from_millis(ms as u64));
    let max_coalesce = cx.int(&raw.batch.max_coalesce, 0, 1_000_000)?.unwrap_or(sink.default_max_coalesce());
    // Without group commit every batch is its own transaction (or file), so
    // a batch waits to fill; with it, a batch sent early merges with those
    // read while the sink is busy, so sending at once costs nothing.
    let groups = sink.capabilities().transactional && max_coalesce > 0;
    let linger = match cx.int(&raw.batch.linger_ms, 0, 3_600_000)? {
        Some(ms) if Duration::from_millis(ms as u64) > max_wait => {
            let at = raw.batch.linger_ms.as_ref().expect("read above");
            return Err(cx.err(
                at,
                format!("linger_ms is {ms}; it cannot exceed max_wait_ms ({})", max_wait.as_millis()),
            ));
        }
        Some(ms) => Duration::from_millis(ms as u64),
        None if groups => Duration::ZERO,
        None => max_wait,
    };
    let batch = BatchLimits {
        max_records: cx.int(&raw.batch.max_records, 1, 100_000)?.unwrap_or(defaults.max_records),
        max_bytes: cx.int(&raw.batch.max_bytes, 1024, 1 << 30)?.unwrap_or(defaults.max_bytes),
        max_wait,
        linger,
        max_coalesce,
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
        threads: cx.int(&raw.guest.threads, 1, 256)?.unwrap_or(limits.threads),
    };

    let run = RunLimits {
        max_dead_letters: cx.int(&raw.run.max_dead_letters, 0, i64::MAX)?.map(|n| n as u64),
        max_dead_letter_ratio: match &raw.run.max_dead_letter_ratio {
            Some(r) if !(0.0..=1.0).contains(r.get_ref()) => {
                return Err(cx.err(r, "must be between 0 and 1 (0.01 is one record in a hundred)"));
            }
            r => r.as_ref().map(|r| *r.get_ref()),
        },
    };
    let telemetry = Telemetry {
        metrics_addr: match &raw.telemetry.metrics_addr {
            Some(a) => Some(a.get_ref().parse().map_err(|e| {
                cx.err(
                    a,
                    format!("{e}: give an address and port, e.g. \"127.0.0.1:9898\" or \"0.0.0.0:9898\""),
                )
            })?),
            None => None,
        },
        stall_after: match &raw.telemetry.stall_after {
            Some(d) => humantime::parse_duration(d.get_ref())
                .map_err(|e| cx.err(d, format!("{e}: give a duration such as \"60s\" or \"5m\"")))?,
            None => Duration::from_secs(60),
        },
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
            None if transform.needs_join() => {
                return Err(cx.err(
                    t.transform.as_ref().expect("named explicitly"),
                    format!(
                        "{transform} needs a [tables.join] section with the prefix objects may come from"
                    ),
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
            raw_payload: cx.raw_payload(&t.raw_payload)?,
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
            raw_payload: cx.raw_payload(&d.raw_payload)?,
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

    let plan = Plan {
        name: name.clone(),
        path: path.into(),
        text: text.into(),
        source,
        sink,
        batch,
        guest,
        run,
        telemetry,
        coordination,
        tables,
        defaults,
    };
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

/// What a component's section needs to check itself: the manifest's text,
/// to point errors at a line, and its folder, to resolve paths.
pub struct Context<'a> {
    path: &'a Path,
    text: &'a str,
    base: &'a Path,
}

impl Context<'_> {
    /// An error pointing at a value.
    pub fn err<T>(&self, at: &Spanned<T>, message: impl std::fmt::Display) -> ManifestError {
        ManifestError::at(self.path, self.text, Some(at.span()), message.to_string())
    }

    /// An error about the manifest as a whole (a missing field).
    pub fn whole(&self, message: impl Into<String>) -> ManifestError {
        ManifestError::whole(self.path, message)
    }

    /// The document read again as one tagged section's own type.
    fn section<T: serde::de::DeserializeOwned>(&self) -> Result<T, ManifestError> {
        toml::from_str(self.text).map_err(|e| ManifestError::from_toml(self.path, self.text, &e))
    }

    /// A whole number in `min..=max`, if given.
    pub fn int(
        &self,
        value: &Option<Spanned<i64>>,
        min: i64,
        max: i64,
    ) -> Result<Option<usize>, ManifestError> {
        match value {
            Some(v) if !(min..=max).contains(v.get_ref()) => {
                Err(self.err(v, format!("must be between {min} and {max}")))
            }
            Some(v) => Ok(Some(*v.get_ref() as usize)),
            None => Ok(None),
        }
    }

    /// A path relative to the manifest's folder.
    pub fn path(&self, written: &Spanned<String>) -> PathBuf {
        self.base.join(written.get_ref())
    }

    /// An `s3://bucket/prefix/`.
    pub fn s3_prefix(&self, uri: &Spanned<String>) -> Result<S3Prefix, ManifestError> {
        parse_s3_prefix(uri.get_ref()).map_err(|why| self.err(uri, why))
    }

    /// An `s3://` prefix or a local folder relative to the manifest.
    pub fn location(&self, path: &Spanned<String>, example: &str) -> Result<Location, ManifestError> {
        let written = path.get_ref();
        if written.starts_with("s3://") {
            Ok(Location::S3(self.s3_prefix(path)?))
        } else if written.contains("://") {
            Err(self.err(path, format!("expected {example} or a local folder")))
        } else {
            Ok(Location::Local(self.path(path)))
        }
    }

    /// A schema name, `public` unless given.
    pub fn schema(&self, schema: &Option<Spanned<String>>) -> Result<String, ManifestError> {
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
        let prefix = self.s3_prefix(&j.prefix)?;
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
        self.choice("deletes", deletes, &[("soft", DeleteMode::Soft), ("hard", DeleteMode::Hard)])
    }

    fn raw_payload(&self, raw: &Option<Spanned<String>>) -> Result<RawPayload, ManifestError> {
        self.choice("raw_payload", raw, &[("keep", RawPayload::Keep), ("drop", RawPayload::Drop)])
    }

    /// One of a field's named values; the first when the field is absent.
    fn choice<T: Copy>(
        &self,
        field: &str,
        value: &Option<Spanned<String>>,
        options: &[(&str, T)],
    ) -> Result<T, ManifestError> {
        let Some(value) = value else { return Ok(options[0].1) };
        options.iter().find(|(name, _)| name == value.get_ref()).map(|(_, t)| *t).ok_or_else(|| {
            let names: Vec<String> = options.iter().map(|(name, _)| format!("{name:?}")).collect();
            self.err(value, format!("{field} is {:?}; it must be {}", value.get_ref(), names.join(" or ")))
        })
    }
}

fn mode_name(mode: DeleteMode) -> &'static str {
    match mode {
        DeleteMode::Soft => "soft",
        DeleteMode::Hard => "hard",
    }
}

impl Plan {
    /// An error at `field` of the manifest, or about the file as a whole if
    /// the field cannot be found (the manifest changed since it was read).
    pub fn error_at(&self, field: Field, message: impl std::fmt::Display) -> ManifestError {
        let span = toml::from_str::<raw::Located>(&self.text).ok().and_then(|located| located.span(field));
        ManifestError::at(&self.path, &self.text, span, message.to_string())
    }
}

/// Settings reach guests as text: strings as they are, other values as TOML.
pub fn setting_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
