//! SQL identifiers: which names the manifest and guests may use, and how
//! they are quoted.
//!
//! Names are folded to lower case, as Redshift folds them, so a table means
//! the same in every sink. Only letters, digits and underscores are allowed;
//! quoting is still applied everywhere, as a second line of defence.

/// The longest identifier Redshift accepts, in bytes.
const MAX_LEN: usize = 127;

/// Why a name cannot be a table or column name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    #[error("{0:?} is not a valid name: use letters, digits and underscores, not starting with a digit")]
    Characters(String),
    #[error("{0:?} is longer than {MAX_LEN} bytes")]
    TooLong(String),
    #[error("{0:?} is reserved: names starting with _sluice hold sluice's own state")]
    Reserved(String),
}

/// Checks a table or column name and returns it folded to lower case.
pub fn fold(name: &str) -> Result<String, BadName> {
    let valid_start = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(BadName::Characters(name.into()));
    }
    if name.len() > MAX_LEN {
        return Err(BadName::TooLong(name.into()));
    }
    let folded = name.to_ascii_lowercase();
    if folded.starts_with("_sluice") {
        return Err(BadName::Reserved(name.into()));
    }
    Ok(folded)
}

/// Quotes an identifier for SQL, doubling any quote inside it.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_and_rejects() {
        assert_eq!(fold("Orders_CDC").unwrap(), "orders_cdc");
        assert_eq!(fold("_x1").unwrap(), "_x1");
        for bad in ["", "1abc", "a-b", "a b", "x\"; drop table y; --", "é"] {
            assert_eq!(fold(bad), Err(BadName::Characters(bad.into())));
        }
        assert_eq!(fold("_Sluice_checkpoints"), Err(BadName::Reserved("_Sluice_checkpoints".into())));
        assert!(matches!(fold(&"a".repeat(128)), Err(BadName::TooLong(_))));
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
