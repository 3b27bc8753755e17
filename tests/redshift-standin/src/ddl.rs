//! Column types counted in bytes: the one rewrite of DDL the stand-in makes.
//!
//! Redshift's CHAR(n), VARCHAR(n) and VARBYTE(n) hold n *bytes*; PostgreSQL
//! counts characters (and has no VARBYTE). In `CREATE TABLE (...)` and
//! `ALTER TABLE ... ADD [COLUMN] | ALTER [COLUMN] ... TYPE` the column types
//! are replaced by domains (`public.rs_varchar_20`, ...) whose CHECK counts
//! bytes, created on demand. A domain is a type, so `CREATE TABLE x (LIKE y)`
//! and `CREATE TABLE ... AS` keep the check.

use crate::sql::{Spanned, Token, lex};

/// Redshift's widest VARCHAR, also VARCHAR(MAX).
const MAX_VARCHAR: u32 = 65_535;
/// Redshift's widest CHAR, also CHAR(MAX).
const MAX_CHAR: u32 = 4_096;
/// Redshift's widest VARBYTE.
const MAX_VARBYTE: u32 = 16_777_216;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Varchar,
    Char,
    Varbyte,
}

/// A column type with its width in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Domain {
    pub kind: Kind,
    pub bytes: u32,
}

impl Domain {
    fn prefix(kind: Kind) -> &'static str {
        match kind {
            Kind::Varchar => "rs_varchar_",
            Kind::Char => "rs_char_",
            Kind::Varbyte => "rs_varbyte_",
        }
    }

    /// The domain's name, unqualified, as `pg_type.typname` shows it.
    pub(crate) fn name(&self) -> String {
        format!("{}{}", Domain::prefix(self.kind), self.bytes)
    }

    /// The Domain a `pg_type.typname` names, if it is one of the stand-in's.
    pub(crate) fn from_type_name(name: &str) -> Option<Domain> {
        [Kind::Varchar, Kind::Char, Kind::Varbyte].into_iter().find_map(|kind| {
            let bytes = name.strip_prefix(Domain::prefix(kind))?.parse().ok()?;
            Some(Domain { kind, bytes })
        })
    }

    /// Redshift's name for the type, for column metadata.
    pub(crate) fn redshift_type(&self) -> &'static str {
        match self.kind {
            Kind::Varchar => "varchar",
            Kind::Char => "bpchar",
            Kind::Varbyte => "varbyte",
        }
    }

    /// Creates the domain unless it exists.
    pub(crate) fn create_sql(&self) -> String {
        let (name, n) = (self.name(), self.bytes);
        let definition = match self.kind {
            Kind::Varchar => {
                format!("AS text CHECK (public.rs_check_bytes(VALUE, {n}, 'character varying'))")
            }
            // character(n) pads and refuses over n characters; single-byte
            // characters make that n bytes.
            Kind::Char => format!("AS character({n}) CHECK (public.rs_check_char(VALUE::text))"),
            Kind::Varbyte => format!("AS bytea CHECK (public.rs_check_bytes(VALUE, {n}, 'binary varying'))"),
        };
        format!(
            "DO $$ BEGIN IF to_regtype('public.{name}') IS NULL THEN \
             CREATE DOMAIN public.{name} {definition}; END IF; END $$"
        )
    }
}

/// DDL with its column types replaced, and the domains it needs.
#[derive(Debug, PartialEq)]
pub(crate) struct Translated {
    pub sql: String,
    pub domains: Vec<Domain>,
}

fn is_word(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// `sql` with its column types made byte-counting, if it is CREATE TABLE or
/// ALTER TABLE and names any; `Err` for a width Redshift refuses.
pub(crate) fn translate(sql: &str) -> Result<Option<Translated>, String> {
    let spans = lex(sql);
    let tokens: Vec<&Token> = spans.iter().map(|s| &s.token).collect();
    let types = if is_word(tokens.first().copied(), "create") {
        create_table_types(&tokens)?
    } else if is_word(tokens.first().copied(), "alter") && is_word(tokens.get(1).copied(), "table") {
        alter_table_types(&tokens)?
    } else {
        Vec::new()
    };
    if types.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut domains = Vec::new();
    for (first, last, domain) in types {
        let (Spanned { start, .. }, Spanned { end, .. }) = (&spans[first], &spans[last]);
        out.push_str(&sql[copied..*start]);
        out.push_str(&format!("public.{}", domain.name()));
        copied = *end;
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    out.push_str(&sql[copied..]);
    Ok(Some(Translated { sql: out, domains }))
}

/// A column type found at tokens `first..=last`.
type Found = (usize, usize, Domain);

/// The column types in `CREATE [TEMP ...] TABLE name (col type ..., ...)`.
fn create_table_types(tokens: &[&Token]) -> Result<Vec<Found>, String> {
    let Some(table) = tokens.iter().take(5).position(|t| is_word(Some(t), "table")) else {
        return Ok(Vec::new());
    };
    let Some(open) = tokens[table..].iter().position(|t| **t == Token::Symbol('(')).map(|p| p + table) else {
        return Ok(Vec::new());
    };
    // `CREATE TABLE t AS SELECT ...(...)`: the parenthesis is not a column list.
    if tokens[table..open].iter().any(|t| is_word(Some(t), "as")) {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let mut element_start = open + 1;
    let mut depth = 0;
    for i in open + 1..tokens.len() {
        match tokens[i] {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') if depth > 0 => depth -= 1,
            Token::Symbol(',' | ')') if depth == 0 => {
                found.extend(column_type(tokens, element_start, i)?);
                element_start = i + 1;
                if *tokens[i] == Token::Symbol(')') {
                    break;
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The type of a column definition at `tokens[start..end]`; table constraints have none.
fn column_type(tokens: &[&Token], start: usize, end: usize) -> Result<Option<Found>, String> {
    const CONSTRAINTS: [&str; 7] = ["constraint", "primary", "unique", "foreign", "check", "like", "exclude"];
    match tokens.get(start) {
        Some(Token::Word(w)) if CONSTRAINTS.iter().any(|c| w.eq_ignore_ascii_case(c)) => Ok(None),
        Some(Token::Word(_) | Token::Quoted(_)) if start + 1 < end => type_at(tokens, start + 1),
        _ => Ok(None),
    }
}

/// The column types in `ALTER TABLE ... ADD [COLUMN] [IF NOT EXISTS] col type`
/// and `... ALTER [COLUMN] col [SET DATA] TYPE type`.
fn alter_table_types(tokens: &[&Token]) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    for i in 2..tokens.len() {
        let column = if is_word(Some(tokens[i]), "add") {
            let mut c = i + 1;
            if is_word(tokens.get(c).copied(), "column") {
                c += 1;
            }
            if is_word(tokens.get(c).copied(), "if") {
                c += 3;
            }
            // ADD CONSTRAINT / PRIMARY KEY ... add no column.
            column_type(tokens, c, tokens.len())?
        } else if is_word(Some(tokens[i]), "type") && i + 1 < tokens.len() {
            type_at(tokens, i + 1)?
        } else {
            None
        };
        found.extend(column);
    }
    Ok(found)
}

/// The character or binary type starting at `tokens[i]`, with its `(n)`.
fn type_at(tokens: &[&Token], i: usize) -> Result<Option<Found>, String> {
    // Longest first, so that CHARACTER VARYING is not read as CHARACTER.
    const NAMES: [(&[&str], Kind, u32); 14] = [
        (&["national", "character", "varying"], Kind::Varchar, 256),
        (&["character", "varying"], Kind::Varchar, 256),
        (&["char", "varying"], Kind::Varchar, 256),
        (&["binary", "varying"], Kind::Varbyte, 64_000),
        (&["national", "character"], Kind::Char, 1),
        (&["varchar"], Kind::Varchar, 256),
        (&["nvarchar"], Kind::Varchar, 256),
        (&["text"], Kind::Varchar, 256),
        (&["character"], Kind::Char, 1),
        (&["char"], Kind::Char, 1),
        (&["nchar"], Kind::Char, 1),
        (&["bpchar"], Kind::Char, 256),
        (&["varbyte"], Kind::Varbyte, 64_000),
        (&["varbinary"], Kind::Varbyte, 64_000),
    ];
    let Some((words, kind, default)) = NAMES
        .iter()
        .find(|(words, ..)| words.iter().enumerate().all(|(k, w)| is_word(tokens.get(i + k).copied(), w)))
    else {
        return Ok(None);
    };
    let mut last = i + words.len() - 1;
    let mut bytes = *default;
    if tokens.get(last + 1) == Some(&&Token::Symbol('(')) {
        let (max, name) = match kind {
            Kind::Varchar => (MAX_VARCHAR, "varchar"),
            Kind::Char => (MAX_CHAR, "character"),
            Kind::Varbyte => (MAX_VARBYTE, "varbyte"),
        };
        bytes = match (tokens.get(last + 2), tokens.get(last + 3)) {
            (Some(Token::Word(n)), Some(Token::Symbol(')')))
                if n.eq_ignore_ascii_case("max") && *kind != Kind::Varbyte =>
            {
                max
            }
            (Some(Token::Word(n)), Some(Token::Symbol(')'))) => {
                let n: u64 = n.parse().map_err(|_| format!("ERROR: invalid length {n} for type {name}"))?;
                if n < 1 {
                    return Err(format!("ERROR: length for type {name} must be at least 1"));
                }
                if n > u64::from(max) {
                    return Err(format!("ERROR: length for type {name} cannot exceed {max}"));
                }
                n as u32
            }
            _ => return Err(format!("ERROR: the Redshift stand-in cannot read the length of type {name}")),
        };
        last += 3;
    }
    Ok(Some((i, last, Domain { kind: *kind, bytes })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(text: &str) -> String {
        translate(text).unwrap().map_or_else(|| text.to_string(), |t| t.sql)
    }

    #[test]
    fn rewrites_column_types_to_byte_domains() {
        let t = translate(
            "CREATE TABLE IF NOT EXISTS s.t (k VARCHAR(20) NOT NULL, \"Text\" text, n nvarchar, c char(2), \
             v character varying(max) DEFAULT 'x'::varchar, b VARBYTE(16777216), d varbyte, s SUPER, \
             PRIMARY KEY (k, \"Text\"))",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            t.sql,
            "CREATE TABLE IF NOT EXISTS s.t (k public.rs_varchar_20 NOT NULL, \"Text\" public.rs_varchar_256, \
             n public.rs_varchar_256, c public.rs_char_2, v public.rs_varchar_65535 DEFAULT 'x'::varchar, \
             b public.rs_varbyte_16777216, d public.rs_varbyte_64000, s SUPER, PRIMARY KEY (k, \"Text\"))"
        );
        assert_eq!(t.domains.len(), 6);
        assert_eq!(
            sql("create temp table x (like y)"),
            "create temp table x (like y)",
            "LIKE copies the domains"
        );
        assert_eq!(
            sql("CREATE TABLE t AS SELECT a::varchar(3) FROM u"),
            "CREATE TABLE t AS SELECT a::varchar(3) FROM u"
        );
        assert_eq!(sql("SELECT 'a'::varchar(3)"), "SELECT 'a'::varchar(3)");
    }

    #[test]
    fn rewrites_alter_table() {
        assert_eq!(
            sql("ALTER TABLE t ADD COLUMN s_uri VARCHAR(65535)"),
            "ALTER TABLE t ADD COLUMN s_uri public.rs_varchar_65535"
        );
        assert_eq!(
            sql("alter table t add v varbinary(5) default null"),
            "alter table t add v public.rs_varbyte_5 default null"
        );
        assert_eq!(
            sql("ALTER TABLE t ALTER COLUMN v TYPE varchar(300)"),
            "ALTER TABLE t ALTER COLUMN v TYPE public.rs_varchar_300"
        );
        assert_eq!(
            sql("ALTER TABLE t ADD CONSTRAINT u UNIQUE (v)"),
            "ALTER TABLE t ADD CONSTRAINT u UNIQUE (v)"
        );
    }

    #[test]
    fn refuses_widths_redshift_refuses() {
        assert!(translate("CREATE TABLE t (v varchar(65536))").unwrap_err().contains("cannot exceed 65535"));
        assert!(translate("CREATE TABLE t (v char(4097))").unwrap_err().contains("cannot exceed 4096"));
        assert!(
            translate("CREATE TABLE t (v varbyte(16777217))").unwrap_err().contains("cannot exceed 16777216")
        );
        assert!(translate("CREATE TABLE t (v varchar(0))").unwrap_err().contains("at least 1"));
    }

    #[test]
    fn names_round_trip() {
        let d = Domain { kind: Kind::Varbyte, bytes: 7 };
        assert_eq!(Domain::from_type_name(&d.name()), Some(d));
        assert_eq!(Domain::from_type_name("rs_varchar_x"), None);
        assert_eq!(Domain::from_type_name("int4"), None);
    }
}
