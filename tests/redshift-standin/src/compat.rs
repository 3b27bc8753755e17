//! The objects that make PostgreSQL accept Redshift's SQL as sluice writes
//! it, installed into the target database when the stand-in starts.
//!
//! Installing objects instead of rewriting SQL keeps what PostgreSQL runs
//! identical to what sluice sent, so tests see sluice's real statements.

use anyhow::Context;
use tokio_postgres::Client;

/// Idempotent: a domain is created only if absent, functions are replaced.
/// An advisory lock serialises stand-ins starting on one database at once.
const INSTALL: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(4207118547);
-- Redshift's SUPER holds any JSON value; jsonb is the closest type.
DO $$ BEGIN
  IF to_regtype('public.super') IS NULL THEN
    CREATE DOMAIN public.super AS jsonb;
  END IF;
END $$;
-- JSON_PARSE(text) -> SUPER: invalid JSON is an error, NULL stays NULL.
CREATE OR REPLACE FUNCTION public.json_parse(text) RETURNS jsonb
  LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT $1::jsonb $$;
-- JSON_SERIALIZE(SUPER) -> text: compact, as Redshift prints it (jsonb::text
-- puts spaces after ':' and ','). It calls itself, which the body check
-- would reject before the function exists.
SET LOCAL check_function_bodies = off;
CREATE OR REPLACE FUNCTION public.json_serialize(v jsonb) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'object' THEN '{' || coalesce((
      SELECT string_agg(to_jsonb(e.key)::text || ':' || public.json_serialize(e.value), ',' ORDER BY e.n)
      FROM jsonb_each(v) WITH ORDINALITY AS e(key, value, n)), '') || '}'
    WHEN 'array' THEN '[' || coalesce((
      SELECT string_agg(public.json_serialize(e.value), ',' ORDER BY e.n)
      FROM jsonb_array_elements(v) WITH ORDINALITY AS e(value, n)), '') || ']'
    ELSE v::text
  END $$;
-- LEN(text): characters; a CHAR's trailing blanks go in the cast to text.
CREATE OR REPLACE FUNCTION public.len(text) RETURNS int
  LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT length($1) $$;
-- GETDATE(): the statement's start in UTC, whole seconds, without a time zone.
CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp
  LANGUAGE sql STABLE AS $$ SELECT date_trunc('second', statement_timestamp() AT TIME ZONE 'UTC') $$;
COMMIT;
"#;

/// Installs the compatibility objects through `client`.
pub(crate) async fn install(client: &Client) -> anyhow::Result<()> {
    client.batch_execute(INSTALL).await.context("installing the Redshift compatibility objects")
}
