//! Reading one context of a kubeconfig: the API server, its CA and the user's token, as
//! `argocd cluster add` does (gitfleet stores the token; it creates no service account).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What `cluster add` sends for a context. The token is only ever sent, never printed.
pub struct ContextCredentials {
    pub server: String,
    pub bearer_token: String,
    /// PEM, base64-encoded.
    pub ca_data: String,
    pub insecure: bool,
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    #[serde(default)]
    cluster: KubeCluster,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: KubeUser,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    #[serde(default)]
    context: KubeContext,
}

#[derive(Deserialize, Default)]
struct KubeCluster {
    #[serde(default)]
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca_data: String,
    #[serde(rename = "certificate-authority", default)]
    ca_file: String,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure: bool,
}

#[derive(Deserialize, Default)]
struct KubeUser {
    #[serde(default)]
    token: String,
    #[serde(rename = "tokenFile", default)]
    token_file: String,
    #[serde(rename = "client-certificate-data", default)]
    client_cert: String,
}

#[derive(Deserialize, Default)]
struct KubeContext {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    user: String,
}

/// `--kubeconfig`, else the first path of `$KUBECONFIG`, else `~/.kube/config`.
pub fn default_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return first;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".kube").join("config")
}

pub fn read_context(path: &Path, context: &str) -> Result<ContextCredentials> {
    let shown = path.display().to_string();
    let err = |message: String| Error::Kubeconfig {
        path: shown.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let config: Kubeconfig =
        serde_yaml_ng::from_str(&text).map_err(|e| err(format!("invalid yaml: {e}")))?;
    let ctx = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .map(|c| &c.context)
        .ok_or_else(|| err(format!("context {context:?} not found")))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .map(|c| &c.cluster)
        .ok_or_else(|| {
            err(format!(
                "cluster {:?} of context {context:?} not found",
                ctx.cluster
            ))
        })?;
    let user = config
        .users
        .iter()
        .find(|u| u.name == ctx.user)
        .map(|u| &u.user)
        .ok_or_else(|| {
            err(format!(
                "user {:?} of context {context:?} not found",
                ctx.user
            ))
        })?;
    if cluster.server.is_empty() {
        return Err(err(format!("cluster {:?} has no server", ctx.cluster)));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let bearer_token = if !user.token.is_empty() {
        user.token.clone()
    } else if !user.token_file.is_empty() {
        let file = base.join(&user.token_file);
        std::fs::read_to_string(&file)
            .map(|t| t.trim().to_string())
            .map_err(|e| err(format!("reading tokenFile {}: {e}", file.display())))?
    } else if !user.client_cert.is_empty() {
        return Err(err(format!(
            "user {:?} authenticates with a client certificate; only bearer tokens are supported",
            ctx.user
        )));
    } else {
        return Err(err(format!("user {:?} has no token", ctx.user)));
    };
    let ca_data = if !cluster.ca_data.is_empty() {
        cluster.ca_data.clone()
    } else if !cluster.ca_file.is_empty() {
        let file = base.join(&cluster.ca_file);
        let pem = std::fs::read(&file).map_err(|e| {
            err(format!(
                "reading certificate-authority {}: {e}",
                file.display()
            ))
        })?;
        base64::engine::general_purpose::STANDARD.encode(pem)
    } else {
        String::new()
    };
    Ok(ContextCredentials {
        server: cluster.server.clone(),
        bearer_token,
        ca_data,
        insecure: cluster.insecure,
    })
}
