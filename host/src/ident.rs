//! SQL identifiers: which names the manifest and guests may use, and how
//! they are quoted.
//!
//! Names are folded to lower case, as Redshift folds them, so a table means
//! the same in every sink. Only letters, digits and underscores are allowed;
//! quoting is still applied everywhere, as a second line of defence.

/// The longest identifier Redshift accepts, in bytes.
const MAX_LEN: usize = 127;

/// Checks a table or column name and returns it folded to lower case.
pub fn fold(name: &str) -> Result<String, String> {
    let valid_start = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{name:?} is not a valid name: use letters, digits and underscores, not starting with a digit"
        ));
    }
    if name.len() > MAX_LEN {
        return Err(format!("{name:?} is longer than {MAX_LEN} bytes"));
    }
    let folded = name.to_ascii_lowercase();
    if folded.starts_with("_sluice") {
        return Err(format!("{name:?} is reserved: names starting with _sluice hold sluice's own state"));
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
        for bad in ["", "1abc", "a-b", "a b", "x\"; drop table y; --", "_sluice_checkpoints", "é"] {
            assert!(fold(bad).is_err(), "{bad:?}");
        }
        assert!(fold(&"a".repeat(128)).is_err());
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
