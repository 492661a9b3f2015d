//! The build environment of a render: Argo CD's `ARGOCD_APP_*` variables and its
//! `${...}` substitution, shared by every tool.

use std::collections::BTreeMap;

use gitfleet_messages::RenderRequest;

/// What a render needs to know of the app besides its source: the values Argo CD offers
/// to `${...}` in Kustomize overrides, Helm parameters and value file paths, Jsonnet
/// variables, and plugins' environment.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    pub vars: BTreeMap<String, String>,
}

impl BuildEnv {
    /// Argo CD's build environment for `request`: `ARGOCD_APP_*`.
    pub fn of(request: &RenderRequest) -> BuildEnv {
        let short = |n: usize| request.commit.chars().take(n).collect::<String>();
        let vars = [
            ("ARGOCD_APP_NAME", request.app_name.clone()),
            ("ARGOCD_APP_NAMESPACE", request.namespace.clone()),
            ("ARGOCD_APP_REVISION", request.commit.clone()),
            ("ARGOCD_APP_REVISION_SHORT", short(7)),
            ("ARGOCD_APP_REVISION_SHORT_8", short(8)),
            ("ARGOCD_APP_SOURCE_REPO_URL", request.repo.clone()),
            ("ARGOCD_APP_SOURCE_PATH", request.source.path.clone()),
            (
                "ARGOCD_APP_SOURCE_TARGET_REVISION",
                request.source.target_revision.clone(),
            ),
        ];
        BuildEnv {
            vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    /// Argo CD's `Envsubst`: `$NAME` and `${NAME}` become the value, unknown names become
    /// empty, and `$$` is a `$`.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => {
                        out.push_str(self.get(&braced[..end]));
                        rest = &braced[end + 1..];
                    }
                    None => {
                        out.push('$');
                        rest = after;
                    }
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                if end == 0 {
                    out.push('$');
                } else {
                    out.push_str(self.get(&after[..end]));
                }
                rest = &after[end..];
            }
        }
        out.push_str(rest);
        out
    }

    fn get(&self, name: &str) -> &str {
        self.vars.get(name).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envsubst_follows_argo_cd() {
        let env = BuildEnv {
            vars: [("A".to_string(), "1".to_string())].into(),
        };
        assert_eq!(env.substitute("x-$A-${A}-$$-${B}-$"), "x-1-1-$--$");
    }
}
