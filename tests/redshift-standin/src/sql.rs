//! A small lexer for Redshift SQL, and the Data API's named parameters.
//!
//! The stand-in sends SQL to PostgreSQL verbatim, except for two things that
//! need to know where string literals and identifiers are: binding `:name`
//! parameters, and recognising `COPY ... FROM 's3://...'`. Sessions run with
//! `standard_conforming_strings = off`, as Redshift does, so a backslash
//! inside `'...'` escapes the next character.

use std::collections::BTreeSet;

/// One token of SQL text; whitespace and comments are dropped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// A keyword, unquoted identifier or number, as written.
    Word(String),
    /// A `"quoted identifier"`, unescaped.
    Quoted(String),
    /// A `'string literal'`, unescaped.
    Str(String),
    /// A `:name` parameter (not part of a `::` cast).
    Param(String),
    /// A `::` cast.
    Cast,
    /// Any other character, including `:` on its own.
    Symbol(char),
    /// A `$tag$ ... $tag$` body, kept only so its contents are skipped.
    DollarQuoted,
}

/// A token and the byte range of its text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub token: Token,
    pub start: usize,
    pub end: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits `sql` into tokens. Never fails: an unterminated literal or comment
/// runs to the end, and PostgreSQL reports the error when it runs the text.
pub(crate) fn lex(sql: &str) -> Vec<Spanned> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(sql.len(), |&(o, _)| o);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let start = i;
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                None
            }
            '-' if at(i + 1) == Some('-') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
                None
            }
            '/' if at(i + 1) == Some('*') => {
                // PostgreSQL block comments nest.
                let mut depth = 0;
                while let Some(c) = at(i) {
                    if c == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if c == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                None
            }
            '\'' | '"' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                while let Some(c) = at(i) {
                    if c == quote && at(i + 1) == Some(quote) {
                        text.push(quote);
                        i += 2;
                    } else if c == quote {
                        i += 1;
                        break;
                    } else if c == '\\' && quote == '\'' {
                        if let Some(next) = at(i + 1) {
                            text.push(next);
                        }
                        i += 2;
                    } else {
                        text.push(c);
                        i += 1;
                    }
                }
                Some(if quote == '\'' { Token::Str(text) } else { Token::Quoted(text) })
            }
            ':' if at(i + 1) == Some(':') => {
                // Lexed as one token so that the type name is not taken for a parameter.
                i += 2;
                Some(Token::Cast)
            }
            ':' if at(i + 1).is_some_and(is_ident_start) => {
                i += 1;
                let name_start = i;
                while at(i).is_some_and(is_ident_char) {
                    i += 1;
                }
                Some(Token::Param(sql[offset(name_start)..offset(i)].to_string()))
            }
            '$' if dollar_tag(&chars, i).is_some() => {
                let tag = dollar_tag(&chars, i).unwrap_or_default();
                i += tag.chars().count();
                loop {
                    match at(i) {
                        None => break,
                        Some('$') if sql[offset(i)..].starts_with(&tag) => {
                            i += tag.chars().count();
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                Some(Token::DollarQuoted)
            }
            c if c.is_alphanumeric() || c == '_' => {
                while at(i).is_some_and(is_ident_char) {
                    i += 1;
                }
                Some(Token::Word(sql[offset(start)..offset(i)].to_string()))
            }
            c => {
                i += 1;
                Some(Token::Symbol(c))
            }
        };
        if let Some(token) = token {
            tokens.push(Spanned { token, start: offset(start), end: offset(i) });
        }
    }
    tokens
}

/// The opening `$tag$` (or `$$`) at `i`, if there is one.
fn dollar_tag(chars: &[(usize, char)], i: usize) -> Option<String> {
    let mut tag = String::from("$");
    let mut j = i + 1;
    while let Some(&(_, c)) = chars.get(j) {
        if c == '$' {
            tag.push('$');
            return Some(tag);
        }
        // A tag cannot start with a digit: `$1` is a positional parameter.
        if !is_ident_char(c) || (j == i + 1 && c.is_ascii_digit()) {
            return None;
        }
        tag.push(c);
        j += 1;
    }
    None
}

/// `value` as a string literal for a session with
/// `standard_conforming_strings = off`: quotes doubled, backslashes escaped.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Replaces every `:name` in `sql` with its value as a string literal, the
/// way the Data API binds parameters (values are strings; the database casts
/// them). Returns the text and the names it used; a `:name` without a value
/// is an error.
pub(crate) fn bind(sql: &str, values: &[(String, String)]) -> Result<(String, BTreeSet<String>), String> {
    let mut out = String::with_capacity(sql.len());
    let mut used = BTreeSet::new();
    let mut copied = 0;
    for Spanned { token, start, end } in lex(sql) {
        let Token::Param(name) = token else { continue };
        let Some((_, value)) = values.iter().find(|(n, _)| *n == name) else {
            return Err(format!("The SQL refers to the parameter :{name}, but no value was given for it"));
        };
        out.push_str(&sql[copied..start]);
        out.push_str(&quote_literal(value));
        copied = end;
        used.insert(name);
    }
    out.push_str(&sql[copied..]);
    Ok((out, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn binds_parameters_outside_literals_casts_and_comments() {
        let sql =
            "SELECT :a, ':a', \"x:a\", :b::int, c::text -- :a\n /* :a */ FROM t WHERE d = 'it''s :a\\' :a'";
        let (bound, used) = bind(sql, &params(&[("a", "1"), ("b", "2")])).unwrap();
        assert_eq!(
            bound,
            "SELECT '1', ':a', \"x:a\", '2'::int, c::text -- :a\n /* :a */ FROM t WHERE d = 'it''s :a\\' :a'"
        );
        assert_eq!(used.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn quotes_values_for_non_standard_strings() {
        let (bound, _) = bind("SELECT :v", &params(&[("v", "it's a\\b")])).unwrap();
        assert_eq!(bound, "SELECT 'it''s a\\\\b'");
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error() {
        assert!(bind("SELECT :missing", &[]).unwrap_err().contains(":missing"));
    }

    #[test]
    fn lexes_dollar_quotes_and_positional_parameters() {
        let tokens: Vec<Token> = lex("SELECT $1, $x$ :a $x$, $$:b$$").into_iter().map(|s| s.token).collect();
        assert_eq!(
            tokens,
            [
                Token::Word("SELECT".into()),
                Token::Symbol('$'),
                Token::Word("1".into()),
                Token::Symbol(','),
                Token::DollarQuoted,
                Token::Symbol(','),
                Token::DollarQuoted,
            ]
        );
    }

    #[test]
    fn unescapes_literals() {
        let tokens: Vec<Token> = lex("'a\\\\b''c' \"q\"\"i\"").into_iter().map(|s| s.token).collect();
        assert_eq!(tokens, [Token::Str("a\\b'c".into()), Token::Quoted("q\"i".into())]);
    }
}
