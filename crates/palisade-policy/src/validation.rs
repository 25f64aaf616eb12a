//! Name and label syntax checks, as the API server applies them
//! (`k8s.io/apimachinery/pkg/util/validation`). Each returns the reason a
//! value is invalid.

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn check_name_part(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if s.len() > 63 {
        return Err(format!("{what} must be no more than 63 characters"));
    }
    let first = s.chars().next().is_some_and(is_alnum);
    let last = s.chars().next_back().is_some_and(is_alnum);
    let middle = s.chars().all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'));
    if first && last && middle {
        Ok(())
    } else {
        Err(format!(
            "{what} must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

/// A DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be a DNS subdomain of 1 to 253 characters".into());
    }
    for label in s.split('.') {
        check_dns_label(label).map_err(|_| {
            "must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character".to_string()
        })?;
    }
    Ok(())
}

/// A DNS-1123 label: lowercase alphanumerics and '-', at most 63.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().next().is_some_and(is_lower_alnum)
        && s.chars().next_back().is_some_and(is_lower_alnum);
    if ok {
        Ok(())
    } else {
        Err("must be a lowercase RFC 1123 label of at most 63 characters: lowercase alphanumeric characters or '-', starting and ending with an alphanumeric character".into())
    }
}

/// A label key: an optional DNS subdomain prefix and '/', then a name part.
pub fn check_label_key(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
    }
    check_name_part(name, "name part")
}

/// A label value: empty, or a name part.
pub fn check_label_value(s: &str) -> Result<(), String> {
    if s.is_empty() { Ok(()) } else { check_name_part(s, "a label value") }
}

/// An IANA service name, as named ports use: at most 15 lowercase
/// alphanumerics or '-', at least one letter, no leading, trailing or
/// doubled '-'.
pub fn check_port_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 {
        return Err("a port name must be 1 to 15 characters".into());
    }
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        return Err("a port name must contain only lowercase alphanumeric characters or '-'".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("a port name must contain at least one letter".into());
    }
    if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return Err("a port name must not begin or end with '-' or contain '--'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for ok in ["app", "app.kubernetes.io/name", "k8s-app", "A_b.c", "kubernetes.io/metadata.name"] {
            assert!(check_label_key(ok).is_ok(), "{ok} should be valid");
        }
        for bad in ["", "-app", "app-", "a/b/c", "Example.com/x", "/x", &"x".repeat(64)] {
            assert!(check_label_key(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "v1", "a.b_c-d"] {
            assert!(check_label_value(ok).is_ok(), "{ok:?} should be valid");
        }
        for bad in ["-v", "v-", "a b", "ü"] {
            assert!(check_label_value(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn names() {
        assert!(check_dns_label("prod-1").is_ok());
        assert!(check_dns_label("Prod").is_err());
        assert!(check_dns_subdomain("a.b-c").is_ok());
        assert!(check_dns_subdomain("a..b").is_err());
        assert!(check_port_name("http").is_ok());
        assert!(check_port_name("h2c-alt").is_ok());
        for bad in ["80", "HTTP", "a--b", "-a", "sixteen-chars-xx"] {
            assert!(check_port_name(bad).is_err(), "{bad} should be invalid");
        }
    }
}
