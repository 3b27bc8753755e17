//! An identity policy reduced to what the gate needs: `Allow` statements of
//! one action pattern and one resource pattern, optionally conditioned on
//! `s3:prefix`, matched the way IAM matches them. Anything not allowed is
//! denied (IAM's implicit deny).

/// The permissions of one principal of the gate.
///
/// ```
/// use sluice_test_support::s3_gate::Policy;
/// let policy = Policy::new()
///     .allow("s3:GetObject", "arn:aws:s3:::docs/join/*")
///     .allow_with_prefix("s3:ListBucket", "arn:aws:s3:::docs", "join/*");
/// # let _ = policy;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Clone, Debug)]
struct Statement {
    action: String,
    resource: String,
    /// `"Condition": {"StringLike": {"s3:prefix": <this>}}`.
    prefix: Option<String>,
}

impl Policy {
    /// Allows nothing.
    pub fn new() -> Policy {
        Policy::default()
    }

    /// `{"Effect": "Allow", "Action": action, "Resource": resource}`. Both may
    /// hold `*` (any run of characters, `/` included) and `?` (one
    /// character); actions match without regard to case, resources with.
    pub fn allow(mut self, action: &str, resource: &str) -> Policy {
        self.statements.push(Statement { action: action.into(), resource: resource.into(), prefix: None });
        self
    }

    /// As [`Policy::allow`], only for requests whose `s3:prefix` (the
    /// `prefix` of a ListObjects call) is like `prefix`. A request without a
    /// prefix does not match, as a condition on an absent key does not in IAM.
    pub fn allow_with_prefix(mut self, action: &str, resource: &str, prefix: &str) -> Policy {
        let prefix = Some(prefix.into());
        self.statements.push(Statement { action: action.into(), resource: resource.into(), prefix });
        self
    }

    /// Whether some statement allows `action` on `resource` for a request
    /// with that `s3:prefix`.
    pub(crate) fn allows(&self, action: &str, resource: &str, prefix: Option<&str>) -> bool {
        self.statements.iter().any(|s| {
            like(&s.action.to_ascii_lowercase(), &action.to_ascii_lowercase())
                && like(&s.resource, resource)
                && match (&s.prefix, prefix) {
                    (None, _) => true,
                    (Some(pattern), Some(value)) => like(pattern, value),
                    (Some(_), None) => false,
                }
        })
    }
}

/// `[(action, resource), ...]`: one [`Policy::allow`] per pair.
impl<const N: usize> From<&[(&str, &str); N]> for Policy {
    fn from(pairs: &[(&str, &str); N]) -> Policy {
        pairs.iter().fold(Policy::new(), |policy, (action, resource)| policy.allow(action, resource))
    }
}

/// IAM's wildcard match: `*` is any run of characters, `?` exactly one.
fn like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and where in `value` it started matching.
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || (p[i] != '*' && p[i] == v[j])) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` swallow one more character and retry.
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_in_iam() {
        assert!(like("arn:aws:s3:::b/docs/*", "arn:aws:s3:::b/docs/a/b.json"));
        assert!(like("arn:aws:s3:::b/docs/*", "arn:aws:s3:::b/docs/"));
        assert!(!like("arn:aws:s3:::b/docs/*", "arn:aws:s3:::b/doc"));
        assert!(!like("arn:aws:s3:::b/docs/*", "arn:aws:s3:::b"));
        assert!(like("arn:aws:s3:::b?/*", "arn:aws:s3:::b1/x"));
        assert!(!like("arn:aws:s3:::b?/*", "arn:aws:s3:::b/x"));
        assert!(like("*", "*") && like("*", "arn:aws:s3:::b"));
        assert!(!like("arn:aws:s3:::*", "*"), "an ARN pattern does not cover Resource \"*\"");
        assert!(like("a*b*c", "aXbYbZc") && !like("a*b*c", "aXbYbZ"));
        assert!(!like("arn:aws:s3:::B/*", "arn:aws:s3:::b/x"), "resources are case sensitive");
    }

    #[test]
    fn actions_ignore_case_and_conditions_need_the_key() {
        let policy = Policy::new().allow("S3:get*", "arn:aws:s3:::b/*").allow_with_prefix(
            "s3:ListBucket",
            "arn:aws:s3:::b",
            "docs/*",
        );
        assert!(policy.allows("s3:GetObject", "arn:aws:s3:::b/k", None));
        assert!(!policy.allows("s3:PutObject", "arn:aws:s3:::b/k", None));
        assert!(policy.allows("s3:ListBucket", "arn:aws:s3:::b", Some("docs/2026/")));
        assert!(!policy.allows("s3:ListBucket", "arn:aws:s3:::b", Some("other/")));
        assert!(!policy.allows("s3:ListBucket", "arn:aws:s3:::b", None));
        let pairs = Policy::from(&[("s3:PutObject", "arn:aws:s3:::b/out/*")]);
        assert!(pairs.allows("s3:PutObject", "arn:aws:s3:::b/out/x", None));
        assert!(!pairs.allows("s3:PutObject", "arn:aws:s3:::b/x", None));
    }
}
