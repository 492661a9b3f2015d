//! Path patterns of the Git generator: Go's `path.Match` for directories (`*` stays in one
//! segment) and, for files, the same with `**` matching any number of folders (Argo CD's
//! doublestar file globbing).

use regex::Regex;

/// A compiled path pattern.
#[derive(Debug, Clone)]
pub struct PathPattern {
    regex: Regex,
}

impl PathPattern {
    /// Compiles `pattern`; `double_star` lets a `**` segment match any number of folders.
    /// A malformed pattern (an unclosed `[`) is an error naming it.
    pub fn new(pattern: &str, double_star: bool) -> Result<Self, String> {
        let segments: Vec<&str> = pattern.split('/').collect();
        let mut re = String::from("^");
        let last = segments.len() - 1;
        for (i, seg) in segments.iter().enumerate() {
            if double_star && *seg == "**" {
                re.push_str(if i == last { ".*" } else { "(?:[^/]*/)*" });
                continue;
            }
            segment(seg, &mut re).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
            if i != last {
                re.push('/');
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
        Ok(Self { regex })
    }

    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

fn segment(seg: &str, re: &mut String) -> Result<(), String> {
    let mut chars = seg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.next() {
                Some(e) => re.push_str(&regex::escape(&e.to_string())),
                None => return Err("trailing backslash".into()),
            },
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
                let mut closed = false;
                let mut empty = true;
                while let Some(c) = chars.next() {
                    match c {
                        ']' if !empty => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(e) => re.push_str(&regex::escape(&e.to_string())),
                            None => return Err("trailing backslash".into()),
                        },
                        '-' => re.push('-'),
                        '/' => return Err("'/' in a character class".into()),
                        other => re.push_str(&regex::escape(&other.to_string())),
                    }
                    empty = false;
                }
                if !closed {
                    return Err("unclosed '['".into());
                }
                re.push(']');
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PathPattern;

    fn m(p: &str, ds: bool, path: &str) -> bool {
        PathPattern::new(p, ds).unwrap().matches(path)
    }

    #[test]
    fn go_path_match() {
        assert!(m("apps/services/*", false, "apps/services/api"));
        assert!(!m("apps/services/*", false, "apps/services/api/base"));
        assert!(!m("apps/services/*", false, "apps/services"));
        assert!(m("apps/?pi", false, "apps/api"));
        assert!(m("apps/[a-c]pi", false, "apps/api"));
        assert!(!m("apps/[^a]pi", false, "apps/api"));
        assert!(PathPattern::new("apps/[a", false).is_err());
    }

    #[test]
    fn double_star_for_files() {
        assert!(m(
            "cluster-config/**/config.json",
            true,
            "cluster-config/a/b/config.json"
        ));
        assert!(m(
            "cluster-config/**/config.json",
            true,
            "cluster-config/config.json"
        ));
        assert!(m("**/config.json", true, "config.json"));
        assert!(m("apps/**", true, "apps/x/y.yaml"));
        assert!(!m(
            "cluster-config/*/config.json",
            true,
            "cluster-config/a/b/config.json"
        ));
    }
}
