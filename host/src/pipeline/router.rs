//! Which guest instance serves a record: one instance per DynamoDB table,
//! started on first use (or at start for listed tables) and reused.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;

use super::transforms::Stamp;
use crate::guest::{Fetch, Fetcher, GuestPool, GuestRuntime, TableSettings};
use crate::manifest::{Field, Plan};
use crate::record::RawPayload;

pub(super) struct Router<'a> {
    plan: &'a Plan,
    runtime: &'a mut GuestRuntime,
    /// `None` for tables the manifest does not route.
    guests: HashMap<String, Option<Routed>>,
    /// Whether joins may reach S3 (not for `validate --offline`).
    online: bool,
    /// Tables whose guest started since `take_started` was last called.
    started: Vec<(String, Stamp)>,
}

/// Where a table's records go, and the guest that transforms them.
pub(super) struct Routed {
    /// The sink table.
    pub target: Arc<str>,
    pub raw_payload: RawPayload,
    pub guest: GuestPool,
}

impl<'a> Router<'a> {
    pub fn new(plan: &'a Plan, runtime: &'a mut GuestRuntime) -> Self {
        Router { plan, runtime, guests: HashMap::new(), online: true, started: Vec::new() }
    }

    /// Guests whose joins are not connected: they start and are configured,
    /// but their `fetch` is refused, and S3 is never asked.
    pub fn offline(plan: &'a Plan, runtime: &'a mut GuestRuntime) -> Self {
        Router { online: false, ..Router::new(plan, runtime) }
    }

    /// Starts the listed tables' guests and loads the defaults' transform, so
    /// a bad component or rejected settings stop the run before it reads.
    /// Returns every problem, each at the manifest line naming the transform.
    pub fn start_listed(&mut self) -> Vec<anyhow::Error> {
        let plan = self.plan;
        let mut problems = Vec::new();
        for route in &plan.tables {
            if let Err(e) = self.guest(&route.source) {
                let at = Field::Transform { table: &route.source };
                problems.push(plan.error_at(at, format!("{e:#}")).into());
            }
        }
        if let Some(defaults) = &plan.defaults
            && let Err(e) = self.runtime.load(&defaults.transform)
        {
            problems.push(plan.error_at(Field::DefaultsTransform, format!("{e:#}")).into());
        }
        problems
    }

    /// The tables whose guest started since the last call, with the
    /// transform each runs.
    pub fn take_started(&mut self) -> Vec<(String, Stamp)> {
        std::mem::take(&mut self.started)
    }

    /// The route and guest of a DynamoDB table, `None` if unrouted.
    pub fn guest(&mut self, table: &str) -> Result<Option<&mut Routed>> {
        if !self.guests.contains_key(table) {
            let started = match self.plan.route(table) {
                Some(route) => {
                    let settings = TableSettings {
                        source_table: route.source.clone(),
                        target_table: route.target.clone(),
                        keys: route.keys.clone(),
                        settings: route.settings.clone(),
                    };
                    let limits = self.plan.guest;
                    let first = self.runtime.instantiate(&route.transform, settings.clone(), limits)?;
                    let mut guest = GuestPool::new(first, limits.threads);
                    let sha256 = self.runtime.sha256(&route.transform).expect("loaded by instantiate");
                    self.started.push((table.to_owned(), Stamp::new(&route.transform, sha256, &settings)));
                    if let Some(join) = route.join.as_ref().filter(|_| self.online) {
                        guest.allow_fetch(Fetch::Join(Fetcher::new(join)?));
                    }
                    Some(Routed {
                        target: route.target.as_str().into(),
                        raw_payload: route.raw_payload,
                        guest,
                    })
                }
                None => {
                    tracing::warn!(
                        table,
                        "no [[tables]] entry and no [defaults]: its records go to the dead-letter table"
                    );
                    None
                }
            };
            self.guests.insert(table.to_owned(), started);
        }
        Ok(self.guests.get_mut(table).and_then(Option::as_mut))
    }
}
