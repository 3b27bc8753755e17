//! The objects that make PostgreSQL accept Redshift's SQL as sluice writes
//! it, and enforce Redshift's limits on it, installed into the target
//! database when the stand-in starts.
//!
//! Installing objects instead of rewriting SQL keeps what PostgreSQL runs
//! identical to what sluice sent, so tests see sluice's real statements.
//! Function bodies are parsed in the caller's session, which runs with
//! `standard_conforming_strings = off`: literals with a backslash are
//! written as `E'...'` so they mean the same in any session.

use anyhow::Context;
use tokio_postgres::Client;

/// The session setting that carries `Config::super_max_string_bytes`.
pub(crate) const SUPER_MAX_STRING_SETTING: &str = "redshift_standin.super_max_string_bytes";

/// Idempotent: a domain is created only if absent, functions are replaced.
/// An advisory lock serialises stand-ins starting on one database at once.
const INSTALL: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(4207118547);

-- The longest string in SUPER and the longest VARCHAR expression, in bytes:
-- the session's redshift_standin.super_max_string_bytes, Redshift's 65535 by default.
CREATE OR REPLACE FUNCTION public.rs_varchar_limit() RETURNS int
  LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('redshift_standin.super_max_string_bytes', true), '')::int, 65535) $$;

-- Column widths counted in bytes, refused with Redshift's message.
CREATE OR REPLACE FUNCTION public.rs_check_bytes(text, int, text) RETURNS boolean
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF octet_length($1) > $2 THEN
    RAISE EXCEPTION 'value too long for type %(%)', $3, $2 USING ERRCODE = '22001';
  END IF;
  RETURN true;
END $$;
CREATE OR REPLACE FUNCTION public.rs_check_bytes(bytea, int, text) RETURNS boolean
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF octet_length($1) > $2 THEN
    RAISE EXCEPTION 'value too long for type %(%)', $3, $2 USING ERRCODE = '22001';
  END IF;
  RETURN true;
END $$;
-- A Redshift CHAR holds single-byte characters only.
CREATE OR REPLACE FUNCTION public.rs_check_char(text) RETURNS boolean
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF octet_length($1) <> char_length($1) THEN
    RAISE EXCEPTION 'Multibyte character not supported for CHAR (Hint: try using VARCHAR)'
      USING ERRCODE = '22021';
  END IF;
  RETURN true;
END $$;

-- The bytes of a value's compact JSON: jsonb's text has one space after each
-- ':' and ',' outside strings.
CREATE OR REPLACE FUNCTION public.rs_super_size(jsonb) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT octet_length(t) - (SELECT count(*) FROM regexp_matches(
      regexp_replace(t, E'"(?:[^"\\\\]|\\\\.)*"', '', 'g'), '[:,] ', 'g'))
  FROM (SELECT $1::text AS t) AS s $$;

-- SUPER's limits: 16 MB a value, strings (values and member names) up to the
-- session's limit, arrays and objects nested at most 1000 deep.
CREATE OR REPLACE FUNCTION public.rs_super_check(jsonb) RETURNS boolean
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  max_string int := public.rs_varchar_limit();
  spaced bigint;
  size bigint;
  longest int;
BEGIN
  IF $1 IS NULL THEN
    RETURN true;
  END IF;
  spaced := octet_length($1::text);
  IF spaced > 16000000 THEN
    size := public.rs_super_size($1);
    IF size > 16000000 THEN
      RAISE EXCEPTION 'a SUPER value is % bytes; SUPER holds at most 16 MB (the stand-in allows 16000000 bytes)', size
        USING ERRCODE = '54000';
    END IF;
  END IF;
  -- No string is longer than the whole value's text.
  IF spaced > max_string THEN
    SELECT max(octet_length(s #>> '{}')) INTO longest
      FROM jsonb_path_query($1, 'strict $.** ? (@.type() == "string")') AS s;
    IF longest > max_string THEN
      RAISE EXCEPTION 'a string in the SUPER value is % bytes; strings in SUPER hold at most % bytes', longest, max_string
        USING ERRCODE = '22001';
    END IF;
    SELECT max(octet_length(k)) INTO longest
      FROM jsonb_path_query($1, 'strict $.** ? (@.type() == "object")') AS o, jsonb_object_keys(o) AS k;
    IF longest > max_string THEN
      RAISE EXCEPTION 'a member name in the SUPER value is % bytes; strings in SUPER hold at most % bytes', longest, max_string
        USING ERRCODE = '22001';
    END IF;
  END IF;
  -- 1001 nested arrays or objects take at least 2002 bytes.
  IF spaced >= 2002
     AND jsonb_path_exists($1, 'strict $.**{1000 to last} ? (@.type() == "array" || @.type() == "object")') THEN
    RAISE EXCEPTION 'a SUPER value nests arrays and objects more than 1000 deep' USING ERRCODE = '54000';
  END IF;
  RETURN true;
END $$;

-- Redshift's SUPER holds any JSON value; jsonb is the closest type. Its
-- limits are a domain constraint, so every way into a SUPER column meets them.
DO $$ BEGIN
  IF to_regtype('public.super') IS NULL THEN
    CREATE DOMAIN public.super AS jsonb;
  END IF;
END $$;
ALTER DOMAIN public.super DROP CONSTRAINT IF EXISTS rs_super_limits;
ALTER DOMAIN public.super ADD CONSTRAINT rs_super_limits CHECK (public.rs_super_check(VALUE)) NOT VALID;

-- JSON_PARSE(VARCHAR) -> SUPER: invalid JSON is an error, NULL stays NULL;
-- the argument is a VARCHAR, so it is at most the VARCHAR limit.
CREATE OR REPLACE FUNCTION public.json_parse(text) RETURNS jsonb
  LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  parsed jsonb;
BEGIN
  IF octet_length($1) > public.rs_varchar_limit() THEN
    RAISE EXCEPTION 'JSON_PARSE: its VARCHAR argument is % bytes; a VARCHAR holds at most % bytes (parse longer JSON from VARBYTE)',
      octet_length($1), public.rs_varchar_limit() USING ERRCODE = '22001';
  END IF;
  parsed := $1::jsonb;
  PERFORM public.rs_super_check(parsed);
  RETURN parsed;
END $$;
-- JSON_PARSE(VARBYTE) -> SUPER: the bytes are UTF-8 JSON.
CREATE OR REPLACE FUNCTION public.json_parse(bytea) RETURNS jsonb
  LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  parsed jsonb;
BEGIN
  PERFORM public.rs_check_bytes($1, 16777216, 'binary varying');
  parsed := convert_from($1, 'UTF8')::jsonb;
  PERFORM public.rs_super_check(parsed);
  RETURN parsed;
END $$;

-- The compact JSON text of a SUPER value (jsonb::text puts spaces after ':'
-- and ','). It calls itself, which the body check would reject before the
-- function exists.
SET LOCAL check_function_bodies = off;
CREATE OR REPLACE FUNCTION public.rs_json_text(v jsonb) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'object' THEN '{' || coalesce((
      SELECT string_agg(to_jsonb(e.key)::text || ':' || public.rs_json_text(e.value), ',' ORDER BY e.n)
      FROM jsonb_each(v) WITH ORDINALITY AS e(key, value, n)), '') || '}'
    WHEN 'array' THEN '[' || coalesce((
      SELECT string_agg(public.rs_json_text(e.value), ',' ORDER BY e.n)
      FROM jsonb_array_elements(v) WITH ORDINALITY AS e(value, n)), '') || ']'
    ELSE v::text
  END $$;
-- JSON_SERIALIZE(SUPER) -> VARCHAR: compact, and refused over the VARCHAR limit.
CREATE OR REPLACE FUNCTION public.json_serialize(v jsonb) RETURNS text
  LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  size bigint := public.rs_super_size(v);
BEGIN
  IF size > public.rs_varchar_limit() THEN
    RAISE EXCEPTION 'JSON_SERIALIZE: the value is % bytes as JSON; a VARCHAR holds at most % bytes (JSON_SERIALIZE_TO_VARBYTE returns it whole)',
      size, public.rs_varchar_limit() USING ERRCODE = '22001';
  END IF;
  RETURN public.rs_json_text(v);
END $$;
-- JSON_SIZE(SUPER): the bytes of JSON_SERIALIZE's text, without its limit.
CREATE OR REPLACE FUNCTION public.json_size(jsonb) RETURNS int
  LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT public.rs_super_size($1)::int $$;
-- JSON_SERIALIZE_TO_VARBYTE(SUPER) -> VARBYTE: the same text as UTF-8 bytes.
CREATE OR REPLACE FUNCTION public.json_serialize_to_varbyte(jsonb) RETURNS bytea
  LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT convert_to(public.rs_json_text($1), 'UTF8') $$;

-- VARBYTE is bytea. FROM_HEX(VARCHAR) -> VARBYTE takes hex digits only
-- (PostgreSQL's decode would skip whitespace).
CREATE OR REPLACE FUNCTION public.from_hex(text) RETURNS bytea
  LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF $1 !~ '^[0-9A-Fa-f]*$' THEN
    RAISE EXCEPTION 'FROM_HEX: % is not hexadecimal', quote_literal(left($1, 40)) USING ERRCODE = '22023';
  END IF;
  PERFORM public.rs_check_bytes(decode($1, 'hex'), 16777216, 'binary varying');
  RETURN decode($1, 'hex');
END $$;
-- TO_HEX(VARBYTE) -> VARCHAR.
CREATE OR REPLACE FUNCTION public.to_hex(bytea) RETURNS text
  LANGUAGE plpgsql STABLE STRICT AS $$
BEGIN
  IF 2 * octet_length($1) > public.rs_varchar_limit() THEN
    RAISE EXCEPTION 'TO_HEX: the result is % bytes; a VARCHAR holds at most % bytes',
      2 * octet_length($1), public.rs_varchar_limit() USING ERRCODE = '22001';
  END IF;
  RETURN encode($1, 'hex');
END $$;
-- FROM_VARBYTE(VARBYTE, 'utf8' | 'hex') -> VARCHAR; the other formats are refused.
CREATE OR REPLACE FUNCTION public.from_varbyte(bytea, text) RETURNS text
  LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  result text;
BEGIN
  CASE lower($2)
    WHEN 'utf8', 'utf-8', 'utf_8' THEN result := convert_from($1, 'UTF8');
    WHEN 'hex' THEN result := encode($1, 'hex');
    ELSE RAISE EXCEPTION 'FROM_VARBYTE: the Redshift stand-in does not emulate the format %', quote_literal($2)
      USING ERRCODE = '0A000';
  END CASE;
  IF octet_length(result) > public.rs_varchar_limit() THEN
    RAISE EXCEPTION 'FROM_VARBYTE: the result is % bytes; a VARCHAR holds at most % bytes',
      octet_length(result), public.rs_varchar_limit() USING ERRCODE = '22001';
  END IF;
  RETURN result;
END $$;

-- LEN(text): characters; a CHAR's trailing blanks go in the cast to text.
CREATE OR REPLACE FUNCTION public.len(text) RETURNS int
  LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT length($1) $$;
-- LEN(VARBYTE): bytes.
CREATE OR REPLACE FUNCTION public.len(bytea) RETURNS int
  LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT octet_length($1) $$;
-- GETDATE(): the statement's start in UTC, whole seconds, without a time zone.
CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp
  LANGUAGE sql STABLE AS $$ SELECT date_trunc('second', statement_timestamp() AT TIME ZONE 'UTC') $$;
COMMIT;
"#;

/// Installs the compatibility objects through `client`.
pub(crate) async fn install(client: &Client) -> anyhow::Result<()> {
    client.batch_execute(INSTALL).await.context("installing the Redshift compatibility objects")
}
