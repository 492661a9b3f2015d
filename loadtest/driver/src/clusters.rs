//! The emulated clusters as the driver sees them: read from cluster-sim's kubeconfig
//! through `kube::config`, registered in KV `clusters` the way Argo CD keeps cluster
//! secrets, and reached through the Kubernetes API as any client would.

use std::path::Path;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus, subject_token};
use gitfleet_model::Redacted;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// One kubeconfig context: what a cluster registration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The context's name, which is also the Argo CD cluster name apps point at.
    pub name: String,
    pub server: String,
    pub token: Redacted<String>,
    /// Base64 of the CA's PEM, as kubeconfig and Argo CD's `caData` both carry it.
    pub ca_data: String,
}

#[derive(Debug)]
pub struct Clusters {
    kubeconfig: Kubeconfig,
    /// In the kubeconfig's context order (c0, c1, ...), which apps are spread over.
    pub list: Vec<Cluster>,
}

impl Clusters {
    pub fn read(path: &Path) -> Result<Clusters> {
        let kubeconfig = Kubeconfig::read_from(path)
            .with_context(|| format!("reading cluster-sim's kubeconfig {}", path.display()))?;
        Clusters::from_kubeconfig(kubeconfig)
    }

    pub fn from_kubeconfig(kubeconfig: Kubeconfig) -> Result<Clusters> {
        let list = kubeconfig
            .contexts
            .iter()
            .map(|ctx| cluster_of(&kubeconfig, &ctx.name))
            .collect::<Result<_>>()?;
        Ok(Clusters { kubeconfig, list })
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|c| c.name.clone()).collect()
    }

    /// Writes every cluster into KV `clusters`, checked against the model first.
    pub async fn register(&self, bus: &Bus) -> Result<()> {
        let kv = bus.kv(Bucket::Clusters).await?;
        for c in &self.list {
            let v = json!({"name": c.name, "server": c.server, "config": {"bearerToken": c.token.expose(), "tlsClientConfig": {"caData": c.ca_data}}});
            serde_json::from_value::<gitfleet_model::Cluster>(v.clone())
                .context("cluster document")?;
            kv.put(subject_token(&c.name), serde_json::to_vec(&v)?.into())
                .await
                .with_context(|| format!("registering cluster {}", c.name))?;
        }
        Ok(())
    }

    /// ConfigMaps named `load` over all clusters.
    pub async fn count_config_maps(&self) -> Result<usize> {
        let mut n = 0;
        for c in &self.list {
            let list = kube::Api::<ConfigMap>::all(self.client(&c.name).await?)
                .list(&kube::api::ListParams::default())
                .await
                .with_context(|| format!("listing ConfigMaps in {}", c.name))?;
            n += list
                .items
                .iter()
                .filter(|cm| cm.metadata.name.as_deref() == Some("load"))
                .count();
        }
        Ok(n)
    }

    /// Creates namespace `namespaces[i]` in cluster `i mod N`: where app `i` is sent.
    pub async fn precreate_namespaces(&self, namespaces: &[String]) -> Result<()> {
        let mut apis = Vec::new();
        for c in &self.list {
            apis.push(kube::Api::<Namespace>::all(self.client(&c.name).await?));
        }
        let results: Vec<Result<()>> = futures::stream::iter(namespaces.iter().enumerate())
            .map(|(i, name)| {
                let api = apis[i % apis.len()].clone();
                async move {
                    let ns: Namespace =
                        serde_json::from_value(json!({"metadata": {"name": name}}))?;
                    api.create(&kube::api::PostParams::default(), &ns)
                        .await
                        .with_context(|| format!("creating namespace {name}"))?;
                    Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn client(&self, context: &str) -> Result<kube::Client> {
        let opts = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &opts)
            .await
            .with_context(|| format!("client config for {context}"))?;
        Ok(kube::Client::try_from(config)?)
    }
}

fn cluster_of(kc: &Kubeconfig, context: &str) -> Result<Cluster> {
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .with_context(|| format!("context {context} is empty"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| {
            format!(
                "context {context} names cluster {}, which is not in the kubeconfig",
                ctx.cluster
            )
        })?;
    let user = ctx
        .user
        .as_deref()
        .with_context(|| format!("context {context} has no user"))?;
    let token = kc
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.token.as_ref())
        .with_context(|| format!("user {user} of context {context} has no token"))?;
    let Some(ca_data) = cluster.certificate_authority_data.clone() else {
        bail!(
            "cluster {} has no certificate-authority-data (is --tls on?)",
            ctx.cluster
        );
    };
    Ok(Cluster {
        name: context.to_string(),
        server: cluster
            .server
            .clone()
            .with_context(|| format!("cluster {} has no server", ctx.cluster))?,
        token: token.expose_secret().to_string().into(),
        ca_data,
    })
}

/// Objects cluster-sim holds over all clusters, from its admin endpoint.
pub async fn admin_object_count(admin_url: &str) -> Result<u64> {
    let v: Value = reqwest::get(format!("{admin_url}/clusters"))
        .await?
        .json()
        .await?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["objects"].as_u64())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape cluster-sim writes: a cluster, a user and a context per cluster, named alike.
    const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
current-context: c0
clusters:
- name: c0
  cluster: {server: 'https://127.0.0.1:40001', certificate-authority-data: Q0EK}
- name: c1
  cluster: {server: 'https://127.0.0.1:40002', certificate-authority-data: Q0EK}
users:
- name: c0
  user: {token: t0}
- name: c1
  user: {token: t1}
contexts:
- name: c0
  context: {cluster: c0, user: c0, namespace: default}
- name: c1
  context: {cluster: c1, user: c1, namespace: default}
";

    fn clusters(yaml: &str) -> Result<Clusters> {
        Clusters::from_kubeconfig(Kubeconfig::from_yaml(yaml)?)
    }

    #[test]
    fn every_context_is_a_cluster_with_its_token_and_ca() {
        let c = clusters(KUBECONFIG).unwrap();
        assert_eq!(c.names(), ["c0", "c1"]);
        assert_eq!(
            c.list[1],
            Cluster {
                name: "c1".into(),
                server: "https://127.0.0.1:40002".into(),
                token: Redacted::new("t1".into()),
                ca_data: "Q0EK".into(),
            }
        );
    }

    #[test]
    fn what_a_registration_needs_is_required() {
        let no_ca = KUBECONFIG.replace(", certificate-authority-data: Q0EK", "");
        let err = clusters(&no_ca).unwrap_err().to_string();
        assert!(err.contains("is --tls on?"), "{err}");
        let no_token = KUBECONFIG.replace("{token: t1}", "{}");
        let err = clusters(&no_token).unwrap_err().to_string();
        assert_eq!(err, "user c1 of context c1 has no token");
    }
}
