//! Validation results (`ValidationErrors`, every problem with its field path) and the
//! shared checks: DNS-1123 names, repository URLs, durations, `Key=Value` options.

use std::fmt;
use std::time::Duration;

/// One problem found by validation, at a field path such as `spec.source.repoURL` or
/// `spec.syncPolicy.syncOptions[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem validation found, in field order. `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems as `path: message` lines.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects problems while walking an object; `finish` turns them into the result.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<ValidationError>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }

    /// `metadata.name`: required, DNS-1123 subdomain.
    pub(crate) fn object_name(&mut self, path: &str, name: &str) {
        if name.is_empty() {
            self.push(path, "required");
        } else if !is_dns1123_subdomain(name) {
            self.push(
                path,
                format!(
                    "{name:?} must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', \
                     starting and ending with an alphanumeric, at most 253 characters)"
                ),
            );
        }
    }

    /// A namespace, when set: DNS-1123 label.
    pub(crate) fn namespace(&mut self, path: &str, ns: &str) {
        if !ns.is_empty() && !is_dns1123_label(ns) {
            self.push(
                path,
                format!(
                    "{ns:?} must be a DNS-1123 label (lowercase alphanumerics and '-', \
                     starting and ending with an alphanumeric, at most 63 characters)"
                ),
            );
        }
    }

    pub(crate) fn repo_url(&mut self, path: &str, url: &str) {
        if url.is_empty() {
            self.push(path, "required");
        } else if !is_repo_url(url) {
            self.push(
                path,
                format!(
                    "{url:?} is not a valid repository URL (expected https://, http://, ssh://, \
                     git@host:path, file:// or an OCI reference)"
                ),
            );
        }
    }

    pub(crate) fn duration(&mut self, path: &str, value: &str) {
        if !value.is_empty() && parse_duration(value).is_none() {
            self.push(path, format!("{value:?} is not a duration (e.g. 5s, 3m)"));
        }
    }
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending with `[a-z0-9]`.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower)
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated labels of `[a-z0-9-]`
/// each starting and ending with `[a-z0-9]` (Kubernetes' object-name rule).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_alnum_lower(c) || c == '-')
                && part.starts_with(is_alnum_lower)
                && part.ends_with(is_alnum_lower)
        })
}

/// Whether `url` is a repository location Argo CD can use: `https://`, `http://`,
/// `ssh://`, `git://`, `file://`, scp-like `user@host:path`, or an OCI reference
/// (`oci://host/repo` or a scheme-less `registry.host/repo`, as Helm OCI repositories
/// are written).
pub fn is_repo_url(url: &str) -> bool {
    if url.is_empty() || url.chars().any(char::is_whitespace) {
        return false;
    }
    for scheme in ["https://", "http://", "ssh://", "git://", "oci://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let authority = rest.split('/').next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            return !host.is_empty() && !host.starts_with(':');
        }
    }
    if let Some(path) = url.strip_prefix("file://") {
        return !path.is_empty();
    }
    if url.contains("://") {
        return false;
    }
    if let Some((user, rest)) = url.split_once('@') {
        // scp-like: user@host:path
        let Some((host, path)) = rest.split_once(':') else {
            return false;
        };
        return !user.is_empty()
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
            && is_host(host)
            && !path.is_empty();
    }
    is_oci_reference(url)
}

fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !host.starts_with(['.', '-'])
}

/// `registry.example.com[:port]/path[:tag]`: the registry part must look like a host
/// (contain a dot or a port, or be `localhost`) so that a bare word is not accepted.
fn is_oci_reference(s: &str) -> bool {
    let Some((registry, path)) = s.split_once('/') else {
        return false;
    };
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    let looks_like_registry = host.contains('.') || port.is_some() || host == "localhost";
    is_host(host)
        && port_ok
        && looks_like_registry
        && !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
}

/// Parses a duration the way Argo CD reads `retry.backoff.duration`: a bare integer is
/// seconds; otherwise Go's `time.ParseDuration` syntax (`300ms`, `5s`, `1.5h`, `1h30m`;
/// units ns, us/µs, ms, s, m, h). Negative durations are refused.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += value * nanos_per_unit;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total_nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("5s", Some(5_000)),
            ("3m", Some(180_000)),
            ("1h30m", Some(5_400_000)),
            ("1.5h", Some(5_400_000)),
            ("300ms", Some(300)),
            ("10", Some(10_000)),
            ("0", Some(0)),
            ("5x", None),
            ("", None),
            ("s", None),
            ("-5s", None),
            ("5 s", None),
            ("1..5s", None),
        ];
        for (input, want) in cases {
            let got = parse_duration(input).map(|d| d.as_millis() as u64);
            assert_eq!(got, *want, "parse_duration({input:?})");
        }
    }

    #[test]
    fn repo_urls() {
        let good = [
            "https://github.com/myorg/k8s-config",
            "http://gitea.local:3000/org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "git@github.com:org/repo.git",
            "file:///tmp/repo",
            "oci://ghcr.io/org/charts",
            "registry-1.docker.io/bitnamicharts",
            "localhost:5000/charts",
            "https://charts.bitnami.com/bitnami",
        ];
        for url in good {
            assert!(is_repo_url(url), "{url} should be accepted");
        }
        let bad = [
            "not a url",
            "github.com",
            "ftp://example.com/repo",
            "https://",
            "git@github.com",
            "git@:org/repo",
            "myrepo/path",
            "file://",
        ];
        for url in bad {
            assert!(!is_repo_url(url), "{url} should be refused");
        }
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("api-service"));
        assert!(is_dns1123_subdomain("a.b-c.d1"));
        assert!(!is_dns1123_subdomain("Api"));
        assert!(!is_dns1123_subdomain("a_b"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_subdomain(&"a".repeat(63)));
        assert!(is_dns1123_label("production"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
