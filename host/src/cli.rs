//! The command line: parse, run, and map errors to exit codes (the README's
//! "Exit codes" lists them).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde_json::json;

use crate::generator::{self, GenOptions, Precision};
use crate::guest::{GuestRuntime, TransformRef, cases, scaffold};
use crate::manifest::{self, Plan};
use crate::pipeline::{Replay, RunOptions};
use crate::record::Checkpoint;
use crate::record::DeleteMode;
use crate::sinks::{self, SinkError};
use crate::sources::ReplayFrom;
use crate::{coordination, iam, pipeline, sources, telemetry};

/// `println!` into a String.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
/// The exit code of a run stopped because a newer run of its pipeline took
/// over the sink: nothing is wrong, and restarting it would fence the other.
const FENCED: u8 = 3;
/// The exit code of a run whose sink kept failing transiently (unreachable,
/// throttling) through its retries: running again later resumes.
const SINK_UNAVAILABLE: u8 = 4;
/// The exit code when the manifest, or a file, variable or transform it
/// names, is unusable: nothing was read or written.
const BAD_MANIFEST: u8 = 5;
/// The exit code of a run stopped by `[run]`'s dead-letter limit, before
/// committing the batch that crossed it.
const TOO_MANY_DEAD_LETTERS: u8 = 6;

/// Moves DynamoDB change data into a warehouse, with WebAssembly transforms.
///
/// A pipeline is described by a TOML manifest: a source (a Kinesis stream, a
/// DynamoDB export in S3, optionally handing over to the stream, or a file
/// of stream records), a sink (SQLite, PostgreSQL, Redshift, or JSON lines in
/// S3 or a folder), and for each DynamoDB table the sink table its rows go to
/// and the transform component that decodes them. Every change is applied
/// only if it is newer than what the sink holds, so duplicates and
/// out-of-order records are harmless, and a rerun resumes after the last
/// committed batch.
///
/// Start with: sluice gen -o data/stream.jsonl && sluice run pipelines/demo.toml
#[derive(Debug, Parser)]
#[command(name = "sluice", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output: -v for debug, -vv for trace. SLUICE_LOG=<filter> overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// How log lines are written to stderr: text, or one JSON object a line.
    #[arg(long, value_enum, default_value_t, global = true)]
    log_format: telemetry::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline until its source is exhausted (a file, an export), or
    /// until stopped (a stream), then print a summary.
    ///
    /// Each batch's rows, dead letters and source position are committed in
    /// one transaction; run it again after a crash and it resumes exactly
    /// where the last commit ended. SIGINT or SIGTERM finishes the current
    /// batch, commits it and exits 0; a second one exits at once.
    ///
    /// With a `[coordination]` section, run the same manifest on several
    /// machines: the workers share the stream's shards (and an export's
    /// data files) through a lease table in DynamoDB, and a stopped worker
    /// gives its leases back.
    Run {
        /// The pipeline manifest (TOML).
        manifest: PathBuf,
        /// Stop once every shard of the stream is read to its tip and
        /// everything read is committed: for catch-up runs, cron jobs, tests
        /// (not with `[coordination]`: other workers may hand shards over).
        #[arg(long)]
        exit_when_caught_up: bool,
        /// Read the next batch after the committed positions, transform it,
        /// and print the rows and dead letters it would write, writing
        /// nothing (with --summary json, as one JSON object).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        report: Report,
    },
    /// Rewrite the rows earlier runs stored with what the manifest's
    /// transforms make of them now: after a table's .wasm was swapped or its
    /// settings changed (`run` warns when it sees that).
    ///
    /// Reads the source again from --from up to the positions the
    /// pipeline's runs committed, no further. A change replaces the row
    /// holding that same change; older changes stay refused, as in a run.
    /// No position is committed, so the next `run` resumes where the last
    /// one stopped. Stop the pipeline first: a replay takes over the sink
    /// like a newer run, and a run still writing exits with code 3. The S3
    /// sink, which writes files of changes, cannot be replayed into.
    Replay {
        /// The pipeline manifest (TOML).
        manifest: PathBuf,
        /// Only rows of these DynamoDB tables (repeat the flag, or separate
        /// with commas); default: every table.
        #[arg(long, value_delimiter = ',')]
        table: Vec<String>,
        /// "start" (the oldest record the source holds), or a time in RFC
        /// 3339 (2026-12-01T09:00:00Z): only changes made from then on are
        /// rewritten, and a stream is read from then on.
        #[arg(long, default_value = "start", value_parser = replay_from)]
        from: ReplayFrom,
        #[command(flatten)]
        report: Report,
    },
    /// Check a manifest as `run` does before it reads, without touching the
    /// source or the sink: every field, the files and environment variables
    /// it names, and each listed table's transform started and configured
    /// with its settings (a join's access to S3 included). Each problem is
    /// shown at its line.
    Validate {
        /// The pipeline manifest (TOML).
        manifest: PathBuf,
        /// Make no network call: a join's access to S3 is not checked
        /// (for checking manifests in CI, without credentials).
        #[arg(long)]
        offline: bool,
    },
    /// Show what a pipeline has stored: positions and how far each is behind,
    /// every run's totals per table, row counts, a few rows, the transform
    /// that made each table's rows, and the latest dead letters. Reads only.
    Status {
        /// The pipeline manifest (TOML).
        manifest: PathBuf,
        /// How many of the newest rows to show per table.
        #[arg(long, default_value_t = 3)]
        rows: usize,
        /// Print one JSON object: positions (with how far each is behind
        /// the end of its file, shard or data file), the transforms that
        /// made each table's rows, row counts, and the dead letters, newest first.
        #[arg(long)]
        json: bool,
    },
    /// Print the least-privilege IAM policy a manifest needs, as JSON: the
    /// AWS actions of its source, sink and joins, on the streams, buckets,
    /// prefixes, secrets and clusters it names.
    ///
    /// Without --role, the policy for the identity sluice runs as. A
    /// manifest may name roles too (a stream's `role_arn`, which sluice
    /// assumes; Redshift's `iam_role`, which Redshift assumes to COPY):
    /// --role ARN prints the policy that role needs.
    IamPolicy {
        /// The pipeline manifest (TOML).
        manifest: PathBuf,
        /// A role the manifest names.
        #[arg(long, value_name = "ARN")]
        role: Option<String>,
    },
    /// Work with transform components.
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Print a shell completion script for bash, zsh, fish, elvish or
    /// powershell.
    ///
    /// For example: sluice completions bash >
    /// ~/.local/share/bash-completion/completions/sluice
    Completions { shell: clap_complete::Shell },
    /// Write a realistic change stream: every DynamoDB type, deletes, TTL
    /// deletes, duplicates and bounded reordering.
    Gen(GenArgs),
}

#[derive(Debug, Subcommand)]
enum GuestCommand {
    /// Run one component over test cases in isolation and show a diff for
    /// each case whose outcomes differ from the expected ones.
    ///
    /// A case is <name>.in.jsonl (one record per line) with <name>.out.jsonl
    /// (one expected outcome per line). See tests/cases/ddb-json for examples.
    Test {
        /// A .wasm component, or builtin:<name>.
        component: String,
        /// The folder of case files.
        cases: PathBuf,
        /// Write the actual outcomes as the expected ones.
        #[arg(long)]
        bless: bool,
    },
    /// Start a transform of your own: writes a project that decodes exactly
    /// as builtin:ddb-json does, with an executable ./build (its last line
    /// is the .wasm's path), passing test cases in cases/, and a README.
    ///
    /// Then: cd NAME && sluice guest test "$(./build | tail -1)" cases
    New {
        /// The project's name; a folder of this name is created.
        name: String,
        /// rust (on the sluice-guest crate) or python (built with componentize-py).
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// Where to create the folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// For Rust: the sluice-guest crate to depend on (the path of
        /// guests/sdk); default: the one beside this sluice's sources.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// How a run reports, besides its logs.
#[derive(Debug, Args)]
struct Report {
    /// Serve Prometheus metrics at GET /metrics and a health check at GET
    /// /health on this address (e.g. 127.0.0.1:9898); overrides
    /// `[telemetry] metrics_addr`.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// The summary printed at the end: text for people, or one JSON object.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    summary: SummaryFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SummaryFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Where to write the stream (one record per line).
    #[arg(short, long)]
    out: PathBuf,
    /// Also write the latest state of every item, worked out from the
    /// changes in their true order (JSON lines), to check a pipeline against.
    #[arg(long)]
    expected: Option<PathBuf>,
    /// DynamoDB table names; their key schemas cycle through a string key,
    /// a string+number key, and a binary key.
    #[arg(long, value_delimiter = ',', default_value = "orders,customers,devices")]
    tables: Vec<String>,
    /// Distinct items per table.
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// Changes to generate, before duplicates.
    #[arg(long, default_value_t = 5000)]
    changes: usize,
    /// Seed: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timestamp precision of the stream.
    #[arg(long, value_enum, default_value_t = Precision::Millisecond)]
    precision: Precision,
    /// Share of records delivered twice.
    #[arg(long, default_value_t = 0.05)]
    duplicates: f64,
    /// Farthest a record may arrive behind its place, in records.
    #[arg(long, default_value_t = 20)]
    reorder: usize,
    /// Share of changes that are user deletes.
    #[arg(long, default_value_t = 0.08)]
    deletes: f64,
    /// Share of changes that are TTL deletes.
    #[arg(long, default_value_t = 0.03)]
    ttl_deletes: f64,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.verbose, cli.quiet, cli.log_format);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { manifest, dry_run: true, report, .. } => {
            let plan = manifest::load(&manifest)?;
            let found = pipeline::dry_run(&plan, &mut GuestRuntime::new()?)?;
            emit(&describe_dry_run(&plan, &found, report.summary))?;
        }
        Command::Run { manifest, exit_when_caught_up, report, .. } => {
            let options = RunOptions { exit_when_caught_up, ..Default::default() };
            run(&manifest, options, &report)?;
        }
        Command::Replay { manifest, table, from, report } => {
            let options = RunOptions { replay: Some(Replay { tables: table, from }), ..Default::default() };
            run(&manifest, options, &report)?;
        }
        Command::IamPolicy { manifest, role } => {
            let plan = manifest::load(&manifest)?;
            let grants = iam::grants(&plan);
            let roles = iam::roles(&grants);
            let who = match role {
                Some(arn) if roles.contains(&arn) => iam::Principal::Role(arn),
                Some(arn) => anyhow::bail!(
                    "the manifest names no role {arn:?}; it names: {}",
                    if roles.is_empty() { "none".to_owned() } else { roles.join(", ") }
                ),
                None => {
                    for arn in &roles {
                        eprintln!(
                            "note: role {arn} needs its own policy: sluice iam-policy --role {arn} ..."
                        );
                    }
                    iam::Principal::Runner
                }
            };
            let document = iam::document(&grants, &who);
            emit(&format!("{}\n", serde_json::to_string_pretty(&document)?))?;
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut script);
            emit(&String::from_utf8_lossy(&script))?;
        }
        Command::Validate { manifest, offline } => {
            let plan = manifest::load(&manifest)?;
            pipeline::check(&plan, &mut GuestRuntime::new()?, offline)?;
            emit(&describe(&plan))?;
        }
        Command::Status { manifest, rows, json } => status(&manifest::load(&manifest)?, rows, json)?,
        Command::Guest(GuestCommand::Test { component, cases, bless }) => {
            return guest_test(&component, &cases, bless);
        }
        Command::Guest(GuestCommand::New { name, lang, dir, sdk }) => {
            let created = scaffold::create(&dir, &name, lang, sdk.as_deref())?;
            let shown = created.display();
            emit(&format!(
                "created the {lang} guest {shown}\nnext: cd {shown} && sluice guest test \"$(./build | tail -1)\" cases\n"
            ))?;
        }
        Command::Gen(args) => {
            let opts = GenOptions {
                tables: args.tables,
                items: args.items,
                changes: args.changes,
                seed: args.seed,
                precision: args.precision,
                duplicates: args.duplicates,
                reorder: args.reorder,
                deletes: args.deletes,
                ttl_deletes: args.ttl_deletes,
                ..Default::default()
            };
            let generated = generator::generate(&opts);
            generator::write(&generated, &args.out, args.expected.as_deref())?;
            let s = generated.stats;
            emit(&format!(
                "wrote {} records to {}: {} changes ({} inserts, {} deletes, {} TTL deletes), \
                 {} duplicates, arriving up to {} changes late\n",
                generated.records.len(),
                args.out.display(),
                s.changes,
                s.inserts,
                s.deletes,
                s.ttl_deletes,
                s.duplicates,
                s.max_displacement
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs (or replays) a pipeline and prints its summary. The first SIGINT
/// or SIGTERM asks for a clean stop after the current batch; a second one
/// exits at once.
fn run(manifest: &Path, mut options: RunOptions, report: &Report) -> Result<()> {
    let plan = manifest::load(manifest)?;
    let mut runtime = GuestRuntime::new()?;
    options.metrics_addr = report.metrics_addr;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, options.stop.clone())?;
        signal_hook::flag::register(signal, options.stop.clone())?;
    }
    if let Some(coordination) = &plan.coordination {
        if options.exit_when_caught_up {
            bail!(
                "--exit-when-caught-up: a worker sharing a stream ([coordination]) runs until it is \
                 stopped; SIGTERM gives its leases back to the other workers"
            );
        }
        options.worker = Some(coordination::Worker::start(coordination)?);
    }
    let summary = pipeline::run(&plan, &mut runtime, &options);
    // After the last commit: the next holder starts where this one stopped.
    if let Some(worker) = &options.worker {
        worker.release();
    }
    let summary = summary?;
    match report.summary {
        SummaryFormat::Text => emit(&summary.to_string()),
        SummaryFormat::Json => emit(&format!("{}\n", summary.json())),
    }
}

fn describe_dry_run(plan: &Plan, found: &pipeline::DryRun, format: SummaryFormat) -> String {
    let b = &found.batch;
    let rows: Vec<_> = b
        .rows
        .iter()
        .map(|r| {
            let c = &r.change;
            json!({
                "target": &*r.target,
                "table": c.table,
                "keys": serde_json::from_str::<serde_json::Value>(&c.key).unwrap_or_else(|_| c.key.clone().into()),
                "operation": if c.operation.is_delete() { "delete" } else { "upsert" },
                "change_micros": c.order.micros,
                "event_id": c.event_id,
                "new_image": c.new_image.as_deref().and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok()),
                "origin": r.origin,
            })
        })
        .collect();
    let dead: Vec<_> =
        b.dead_letters.iter().map(|d| json!({ "origin": d.origin, "reason": d.reason })).collect();
    if format == SummaryFormat::Json {
        let all = json!({ "pipeline": plan.name, "records": found.records, "skipped": found.skipped,
                          "rows": rows, "dead_letters": dead, "positions": b.checkpoints.iter()
                              .map(|c| json!({ "partition": c.partition, "position": c.position })).collect::<Vec<_>>() });
        return format!("{all}\n");
    }
    let mut out = String::new();
    say!(
        out,
        "dry run of pipeline {}: the next batch, {} records; nothing is written",
        plan.name,
        found.records
    );
    for r in &rows {
        say!(
            out,
            "  {} {} {}  {}",
            r["target"].as_str().unwrap_or_default(),
            r["operation"].as_str().unwrap_or_default(),
            r["keys"],
            clip(&r["new_image"].to_string(), 90)
        );
    }
    for d in &b.dead_letters {
        say!(out, "  dead letter {}: {}", d.origin, clip(&d.reason, 100));
    }
    say!(
        out,
        "would write {} rows and {} dead letters ({} records skipped by the transform, {} superseded in the batch)",
        b.rows.len(),
        b.dead_letters.len(),
        found.skipped,
        found.superseded
    );
    out
}

/// The exit code for an error, by the typed error it carries.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<manifest::ManifestError>().is_some()
        || e.downcast_ref::<pipeline::Problems>().is_some()
    {
        return BAD_MANIFEST;
    }
    if e.downcast_ref::<pipeline::TooManyDeadLetters>().is_some() {
        return TOO_MANY_DEAD_LETTERS;
    }
    match e.downcast_ref::<SinkError>() {
        Some(SinkError::Fenced(_) | SinkError::LeaseLost(_)) => FENCED,
        Some(SinkError::Transient(_)) => SINK_UNAVAILABLE,
        Some(SinkError::Fatal(_)) | None => 1,
    }
}

/// Writes to stdout. A reader that went away (`sluice status | head`) ends
/// the command quietly: see [`is_closed_pipe`].
fn emit(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Into::into)
}

fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn replay_from(text: &str) -> Result<ReplayFrom, String> {
    match text {
        "start" => Ok(ReplayFrom::Start),
        _ => humantime::parse_rfc3339_weak(text)
            .map(ReplayFrom::Time)
            .map_err(|e| format!("{e}: give \"start\" or a time such as 2026-12-01T09:00:00Z")),
    }
}

fn describe(plan: &Plan) -> String {
    let mut out = format!("{} is valid: pipeline {:?}\n", plan.path.display(), plan.name);
    out += &format!("  source    {}\n", plan.source);
    out += &format!("  sink      {}\n", plan.sink);
    let b = &plan.batch;
    out += &format!(
        "  batches   up to {} records, {} bytes; waiting at most {} ms to fill, {} ms once it has records\n",
        b.max_records,
        b.max_bytes,
        b.max_wait.as_millis(),
        b.linger.as_millis()
    );
    out += &format!(
        "  guests    {} ms per record, at most {} ms per call, {} MiB of memory per instance\n",
        plan.guest.record_budget.as_millis(),
        plan.guest.time_budget.as_millis(),
        plan.guest.memory_bytes >> 20
    );
    let deletes = |d: DeleteMode| if d == DeleteMode::Soft { "soft deletes" } else { "hard deletes" };
    for r in &plan.tables {
        out +=
            &format!("  table     {} -> {} ({}, {})\n", r.source, r.target, r.transform, deletes(r.deletes));
    }
    match &plan.defaults {
        Some(d) => out += &format!("  others    -> {} ({}, {})\n", d.target, d.transform, deletes(d.deletes)),
        None => out += "  others    dead-lettered (no [defaults])\n",
    }
    out
}

/// What `status` found in a sink, sorted out of its checkpoint table.
#[derive(Default)]
struct Stored {
    /// (partition, position, committed at)
    positions: Vec<(String, String, String)>,
    /// (DynamoDB table, stamp, committed at)
    transforms: Vec<(String, String, String)>,
    tables: BTreeMap<String, pipeline::TableTotals>,
    targets: BTreeMap<String, pipeline::TargetTotals>,
}

fn sort_out(status: &sinks::Status) -> Stored {
    let mut stored = Stored::default();
    for (partition, position, at) in &status.checkpoints {
        let entry = (partition.clone(), position.clone(), at.clone());
        if let Some(table) = pipeline::stamped_table(partition) {
            stored.transforms.push((table.to_owned(), position.clone(), at.clone()));
        } else {
            match pipeline::Totals::parse(partition, position) {
                // A coordinated pipeline's workers each keep their own.
                Some(totals) => totals.add_to(&mut stored.tables, &mut stored.targets),
                None => stored.positions.push(entry),
            }
        }
    }
    stored
}

fn status(plan: &Plan, rows: usize, json: bool) -> Result<()> {
    let targets = plan.targets();
    let asked = sinks::Asked { pipeline: &plan.name, targets: &targets, sample_rows: rows };
    let status = plan.sink.inspect()?.status(&asked)?;
    let stored = sort_out(&status);
    let positions: Vec<Checkpoint> = stored
        .positions
        .iter()
        .map(|(partition, position, _)| Checkpoint {
            partition: partition.clone(),
            position: position.clone(),
            lease: None,
        })
        .collect();
    let behind: HashMap<String, sources::Behind> = sources::behind(plan, &positions).into_iter().collect();
    let leases = plan.coordination.as_ref().map(|c| coordination::leases(c).map_err(|e| format!("{e:#}")));
    if json {
        return emit(&format!("{}\n", status_json(plan, &status, &stored, &behind, leases.as_ref())));
    }
    let mut out = String::new();
    say!(out, "pipeline {}", plan.name);
    match (&plan.coordination, &leases) {
        (Some(c), Some(Ok(leases))) => {
            say!(out, "leases in {}", c.table);
            for l in leases {
                let owner = l.owner.as_deref().unwrap_or("(free)");
                say!(out, "  {}  owner {owner}  counter {}  checkpoint {}", l.key, l.counter, l.checkpoint);
            }
        }
        (Some(c), Some(Err(why))) => say!(out, "leases in {}: unknown: {why}", c.table),
        _ => {}
    }
    say!(out, "positions");
    if stored.positions.is_empty() {
        say!(out, "  none yet");
    }
    for (partition, position, at) in &stored.positions {
        let lag = match behind.get(partition) {
            Some(sources::Behind::Bytes(n)) => format!("  ({n} bytes unread)"),
            Some(sources::Behind::Milliseconds(ms)) => format!("  ({ms} ms behind the tip)"),
            Some(sources::Behind::Done(true)) => "  (read to its end)".into(),
            Some(sources::Behind::Done(false)) => "  (not read to its end)".into(),
            Some(sources::Behind::Unknown(why)) => format!("  (behind: unknown: {why})"),
            None => String::new(),
        };
        say!(out, "  {partition}  {position}  committed {at}{lag}");
    }
    if !stored.tables.is_empty() {
        say!(
            out,
            "records, all runs    {:>10} {:>10} {:>10} {:>10} {:>12}",
            "read",
            "skipped",
            "faults",
            "dead",
            "transform"
        );
        for (name, t) in &stored.tables {
            say!(
                out,
                "  {name:<18} {:>10} {:>10} {:>10} {:>10} {:>10.2} s",
                t.read,
                t.skipped,
                t.guest_faults,
                t.dead_lettered,
                t.transform_seconds
            );
        }
    }
    say!(out, "tables");
    for t in &status.tables {
        let applied = stored.targets.get(&t.name).map_or(String::new(), |a| {
            format!(
                "; all runs: {} upserted, {} deleted, {} stale, {:.2} s in the sink",
                a.upserted, a.deleted, a.stale, a.sink_seconds
            )
        });
        say!(
            out,
            "  {}: {} live, {} deleted, {} tombstones{applied}",
            t.name,
            t.live,
            t.deleted,
            t.tombstones
        );
        for (key, deleted, image) in &t.sample {
            let image =
                if *deleted { "(deleted)".to_owned() } else { clip(image.as_deref().unwrap_or("null"), 90) };
            say!(out, "    {key}  {image}");
        }
    }
    for (table, stamp, at) in &stored.transforms {
        say!(out, "transform of {table}: {stamp} (since {at})");
    }
    say!(out, "dead letters: {}", status.dead_letters);
    for (origin, reason) in &status.recent_dead_letters {
        say!(out, "  {origin}: {}", clip(reason, 120));
    }
    emit(&out)
}

fn status_json(
    plan: &Plan,
    status: &sinks::Status,
    stored: &Stored,
    behind: &HashMap<String, sources::Behind>,
    leases: Option<&Result<Vec<coordination::leases::Lease>, String>>,
) -> serde_json::Value {
    let parsed = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text));
    let positions: Vec<_> = stored
        .positions
        .iter()
        .map(|(partition, position, at)| {
            json!({
                "partition": partition,
                "position": parsed(position),
                "committed_at": at,
                "behind": behind.get(partition),
            })
        })
        .collect();
    let transforms: Vec<_> = stored
        .transforms
        .iter()
        .map(|(table, stamp, at)| json!({ "table": table, "stamp": parsed(stamp), "since": at }))
        .collect();
    let tables: Vec<_> = status
        .tables
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "live": t.live,
                "deleted": t.deleted,
                "tombstones": t.tombstones,
                "all_runs": stored.targets.get(&t.name),
            })
        })
        .collect();
    let newest: Vec<_> = status
        .recent_dead_letters
        .iter()
        .map(|(origin, reason)| json!({ "origin": origin, "reason": reason }))
        .collect();
    let leases = leases.map(|found| match found {
        Ok(leases) => json!(
            leases
                .iter()
                .map(|l| json!({ "shard": l.key, "owner": l.owner, "counter": l.counter,
                                 "checkpoint": l.checkpoint, "parents": l.parents }))
                .collect::<Vec<_>>()
        ),
        Err(why) => json!({ "unknown": why }),
    });
    json!({
        "pipeline": plan.name,
        "leases": leases,
        "positions": positions,
        "transforms": transforms,
        "records": stored.tables,
        "tables": tables,
        "dead_letters": { "count": status.dead_letters, "newest": newest },
    })
}

fn guest_test(component: &str, dir: &Path, bless: bool) -> Result<ExitCode> {
    let transform = TransformRef::parse(component, Path::new("."))?;
    let mut runtime = GuestRuntime::new()?;
    let verdicts = cases::run(&mut runtime, &transform, dir, bless)
        .with_context(|| format!("testing {transform} on {}", dir.display()))?;
    let (mut failed, mut out) = (0, String::new());
    for (name, verdict) in &verdicts {
        match verdict {
            cases::Verdict::Passed => say!(out, "ok      {name}"),
            cases::Verdict::Blessed => say!(out, "blessed {name}"),
            cases::Verdict::Failed(diff) => {
                failed += 1;
                say!(out, "FAILED  {name}\n{diff}");
            }
            cases::Verdict::Unexpected(actual) => {
                failed += 1;
                say!(
                    out,
                    "NEW     {name}: no {name}.out.jsonl; the outcomes were:\n{actual}(rerun with --bless to keep them)"
                );
            }
        }
    }
    say!(out, "{} cases, {} passed, {failed} failed", verdicts.len(), verdicts.len() - failed);
    emit(&out)?;
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}
