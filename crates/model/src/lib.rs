//! gitfleet's domain model: Argo CD's `argoproj.io/v1alpha1` Application, AppProject and
//! ApplicationSet, and the Cluster and Repository Argo CD keeps in Secrets, with Argo CD's
//! field names; YAML parsing entry points and validation. Pure: no I/O.

mod application;
mod appset;
mod cluster;
mod k8s_secret;
mod meta;
mod parse;
mod project;
mod repository;
mod secret;
mod status;
mod validate;

pub use application::*;
pub use appset::*;
pub use cluster::{Cluster, ClusterConfig, TlsClientConfig};
pub use k8s_secret::{SECRET_TYPE_LABEL, SecretError, SecretManifest, decode_base64};
pub use meta::{API_VERSION, ObjectMeta, OwnerReference};
pub use project::*;
pub use repository::{Repository, RepositoryType};
pub use secret::{CREDENTIAL_FIELDS, REDACTED, Redacted};
pub use status::*;
pub use validate::{
    ValidationError, ValidationErrors, is_dns1123_label, is_dns1123_subdomain, is_repo_url,
    parse_duration,
};

use std::fmt;

/// The `argoproj.io/v1alpha1` kinds [`from_yaml_str`] accepts (besides cluster and
/// repository Secrets).
pub const ACCEPTED_KINDS: [&str; 3] = ["Application", "AppProject", "ApplicationSet"];

/// One parsed object.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    Application(Box<Application>),
    AppProject(Box<AppProject>),
    ApplicationSet(Box<ApplicationSet>),
    /// From a `v1` Secret labelled `argocd.argoproj.io/secret-type: cluster`.
    Cluster(Box<Cluster>),
    /// From a `v1` Secret labelled `argocd.argoproj.io/secret-type: repository`.
    Repository(Box<Repository>),
    /// A credential template, from a `v1` Secret labelled `secret-type: repo-creds`.
    RepoCreds(Box<Repository>),
    /// One of Argo CD's settings objects (`argocd-cm`, `argocd-rbac-cm`, `argocd-secret`...).
    Settings(Box<SettingsDocument>),
    /// A `v1` Secret labelled `app.kubernetes.io/part-of: argocd` and none of the above:
    /// a token the SCM provider and pull request generators name (`tokenRef`).
    Secret(Box<SettingsDocument>),
}

/// The label Argo CD requires on a Secret a generator reads (`tokenRef`).
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// Argo CD's settings ConfigMaps, read whole.
pub const SETTINGS_CONFIG_MAPS: [&str; 7] = [
    "argocd-cm",
    "argocd-rbac-cm",
    "argocd-cmd-params-cm",
    "argocd-ssh-known-hosts-cm",
    "argocd-tls-certs-cm",
    "argocd-gpg-keys-cm",
    "argocd-notifications-cm",
];
/// Argo CD's settings Secrets, read whole.
pub const SETTINGS_SECRETS: [&str; 2] = ["argocd-secret", "argocd-notifications-secret"];

/// A settings ConfigMap or Secret: its name and its data (a Secret's decoded; every value
/// redacted in logs, since a Secret's are secret and a ConfigMap's may be, as
/// `oidc.config` client secrets are).
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsDocument {
    pub name: String,
    /// A Secret rather than a ConfigMap.
    pub secret: bool,
    pub data: std::collections::BTreeMap<String, Redacted<String>>,
}

impl Manifest {
    /// `Application`, `AppProject`, `ApplicationSet`, `Cluster` or `Repository`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Application(_) => "Application",
            Self::AppProject(_) => "AppProject",
            Self::ApplicationSet(_) => "ApplicationSet",
            Self::Cluster(_) => "Cluster",
            Self::Repository(_) => "Repository",
            Self::RepoCreds(_) => "RepoCreds",
            Self::Settings(s) if s.secret => "Secret",
            Self::Settings(_) => "ConfigMap",
            Self::Secret(_) => "Secret",
        }
    }

    /// The object's name (a cluster's or repository's logical name; the URL if unnamed).
    pub fn name(&self) -> &str {
        match self {
            Self::Application(a) => &a.metadata.name,
            Self::AppProject(p) => &p.metadata.name,
            Self::ApplicationSet(s) => &s.metadata.name,
            Self::Cluster(c) if c.name.is_empty() => &c.server,
            Self::Cluster(c) => &c.name,
            Self::Repository(r) if r.name.is_empty() => &r.repo,
            Self::Repository(r) => &r.name,
            Self::RepoCreds(r) => &r.repo,
            Self::Settings(s) | Self::Secret(s) => &s.name,
        }
    }

    pub fn into_application(self) -> Option<Application> {
        match self {
            Self::Application(a) => Some(*a),
            _ => None,
        }
    }

    pub fn into_app_project(self) -> Option<AppProject> {
        match self {
            Self::AppProject(p) => Some(*p),
            _ => None,
        }
    }

    pub fn into_application_set(self) -> Option<ApplicationSet> {
        match self {
            Self::ApplicationSet(s) => Some(*s),
            _ => None,
        }
    }

    pub fn into_cluster(self) -> Option<Cluster> {
        match self {
            Self::Cluster(c) => Some(*c),
            _ => None,
        }
    }

    pub fn into_repository(self) -> Option<Repository> {
        match self {
            Self::Repository(r) => Some(*r),
            _ => None,
        }
    }
}

/// A position in the YAML input, 1-based, counted over the whole stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

fn fmt_at(pos: &Option<Position>) -> String {
    pos.map(|p| format!(" at {p}")).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Malformed YAML, or YAML that does not fit the kind's schema (wrong type, ...).
    #[error("invalid yaml{}: {message}", fmt_at(.at))]
    Yaml {
        at: Option<Position>,
        message: String,
    },
    #[error("no yaml document found")]
    Empty,
    #[error("expected one yaml document, found {count} (use parse_all for multi-document yaml)")]
    MultipleDocuments { count: usize },
    #[error("document is not a mapping")]
    NotAMapping,
    #[error("missing {field}")]
    MissingField { field: &'static str },
    #[error("{kind} has apiVersion {api_version:?}, expected {API_VERSION}")]
    UnsupportedApiVersion { kind: String, api_version: String },
    #[error(
        "unsupported kind {kind:?} (apiVersion {api_version}): accepted are Application, AppProject \
         and ApplicationSet ({API_VERSION}), v1 Secrets labelled {SECRET_TYPE_LABEL}: cluster, repository \
         or repo-creds, and Argo CD's settings ConfigMaps and Secrets"
    )]
    UnknownKind { api_version: String, kind: String },
    #[error(
        "secret {name:?} is not an argo cd cluster, repository or repo-creds secret, nor argocd-secret, nor labelled {PART_OF_LABEL}: argocd (label {SECRET_TYPE_LABEL} is {secret_type:?})"
    )]
    UnsupportedSecret { name: String, secret_type: String },
    #[error(
        "configmap {name:?} is not one of Argo CD's settings ConfigMaps (argocd-cm, argocd-rbac-cm, argocd-cmd-params-cm, ...)"
    )]
    UnsupportedConfigMap { name: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// A `v1` ConfigMap, as far as settings need it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ConfigMapManifest {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

/// One document of a multi-document stream and what it parsed into.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDocument {
    /// 0-based index of the document in the stream (empty documents count).
    pub index: usize,
    /// 1-based line the document starts on.
    pub line: usize,
    pub result: Result<Manifest, ParseError>,
}

/// Parses a single-document YAML string into one of the accepted kinds, checking
/// `apiVersion` and `kind`.
pub fn from_yaml_str(s: &str) -> Result<Manifest, ParseError> {
    let mut docs = parse_all(s);
    match docs.len() {
        0 => Err(ParseError::Empty),
        1 => docs
            .pop()
            .map(|d| d.result)
            .unwrap_or(Err(ParseError::Empty)),
        count => Err(ParseError::MultipleDocuments { count }),
    }
}

/// Parses every document of a (`---`-separated) YAML stream; one bad document does not
/// stop the others. Empty documents are skipped (but keep their index).
pub fn parse_all(s: &str) -> Vec<ParsedDocument> {
    parse::split_documents(s)
        .into_iter()
        .enumerate()
        .filter_map(|(index, chunk)| {
            let result = parse_document(chunk.text, chunk.first_line)?;
            Some(ParsedDocument {
                index,
                line: chunk.first_line + 1,
                result,
            })
        })
        .collect()
}

/// `None` for an empty document.
fn parse_document(text: &str, first_line: usize) -> Option<Result<Manifest, ParseError>> {
    let value: serde_yaml_ng::Value = match typed(text, first_line) {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if value.is_null() {
        return None;
    }
    Some((|| {
        let map = value.as_mapping().ok_or(ParseError::NotAMapping)?;
        let field = |name: &'static str| {
            map.get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .ok_or(ParseError::MissingField { field: name })
        };
        let api_version = field("apiVersion")?;
        let kind = field("kind")?;
        match (api_version, kind) {
            (API_VERSION, "Application") => Ok(Manifest::Application(typed(text, first_line)?)),
            (API_VERSION, "AppProject") => Ok(Manifest::AppProject(typed(text, first_line)?)),
            (API_VERSION, "ApplicationSet") => {
                Ok(Manifest::ApplicationSet(typed(text, first_line)?))
            }
            (_, k) if ACCEPTED_KINDS.contains(&k) => Err(ParseError::UnsupportedApiVersion {
                kind: k.to_owned(),
                api_version: api_version.to_owned(),
            }),
            ("v1", "Secret") => {
                let secret: SecretManifest = typed(text, first_line)?;
                match secret.secret_type() {
                    Some("cluster") => {
                        Ok(Manifest::Cluster(Box::new(Cluster::from_secret(&secret)?)))
                    }
                    Some("repository") => Ok(Manifest::Repository(Box::new(
                        Repository::from_secret(&secret)?,
                    ))),
                    Some("repo-creds") => Ok(Manifest::RepoCreds(Box::new(
                        Repository::from_creds_secret(&secret)?,
                    ))),
                    None if SETTINGS_SECRETS.contains(&secret.metadata.name.as_str()) => {
                        Ok(Manifest::Settings(Box::new(SettingsDocument {
                            name: secret.metadata.name.clone(),
                            secret: true,
                            data: secret.decoded()?,
                        })))
                    }
                    None if secret
                        .metadata
                        .labels
                        .get(PART_OF_LABEL)
                        .is_some_and(|v| v == "argocd") =>
                    {
                        Ok(Manifest::Secret(Box::new(SettingsDocument {
                            name: secret.metadata.name.clone(),
                            secret: true,
                            data: secret.decoded()?,
                        })))
                    }
                    other => Err(ParseError::UnsupportedSecret {
                        name: secret.metadata.name.clone(),
                        secret_type: other.unwrap_or_default().to_owned(),
                    }),
                }
            }
            ("v1", "ConfigMap") => {
                let map: ConfigMapManifest = typed(text, first_line)?;
                if !SETTINGS_CONFIG_MAPS.contains(&map.metadata.name.as_str()) {
                    return Err(ParseError::UnsupportedConfigMap {
                        name: map.metadata.name,
                    });
                }
                Ok(Manifest::Settings(Box::new(SettingsDocument {
                    name: map.metadata.name,
                    secret: false,
                    data: map
                        .data
                        .into_iter()
                        .map(|(k, v)| (k, Redacted::new(v)))
                        .collect(),
                })))
            }
            _ => Err(ParseError::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            }),
        }
    })())
}

fn typed<T: serde::de::DeserializeOwned>(text: &str, first_line: usize) -> Result<T, ParseError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (at, message) = parse::yaml_error(&e, first_line);
        ParseError::Yaml { at, message }
    })
}
