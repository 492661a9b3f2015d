//! The emulated clusters as the driver sees them: read from cluster-sim's kubeconfig
//! through `kube::config`, registered in KV `clusters` the way Argo CD keeps cluster
//! secrets, and reached through the Kubernetes API as any client would.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use gitfleet_bus::{Bucket, Bus, subject_token};
use gitfleet_model::Redacted;
use k8s_openapi::api::batch::v1::Job;
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
            // The label is what the ApplicationSet of `--appset-services` selects.
            let v = json!({"name": c.name, "server": c.server, "labels": {"fleet": "load"}, "config": {"bearerToken": c.token.expose(), "tlsClientConfig": {"caData": c.ca_data}}});
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

    /// Jobs named `name` over all clusters (hooks deleted on success leave none).
    pub async fn count_jobs(&self, name: &str) -> Result<usize> {
        let mut n = 0;
        for c in &self.list {
            let list = kube::Api::<Job>::all(self.client(&c.name).await?)
                .list(&kube::api::ListParams::default())
                .await
                .with_context(|| format!("listing Jobs in {}", c.name))?;
            n += list
                .items
                .iter()
                .filter(|j| j.metadata.name.as_deref() == Some(name))
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

/// What cluster-sim's write logs say was done to the Jobs named `job`, per namespace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobWrites {
    /// Writes that created the Job (create, or apply answered 201), dry runs left out.
    pub created: BTreeMap<String, usize>,
    /// Every write to it that was not a dry run nor a delete (creates included).
    pub writes: usize,
    /// Deletes that succeeded.
    pub deleted: usize,
}

/// Reads every cluster's write log from cluster-sim's admin endpoint.
pub async fn job_writes(admin_url: &str, clusters: &[String], job: &str) -> Result<JobWrites> {
    let mut log = Vec::new();
    for c in clusters {
        let records: Vec<Value> = reqwest::get(format!("{admin_url}/clusters/{c}/writes"))
            .await?
            .error_for_status()
            .with_context(|| format!("write log of {c}"))?
            .json()
            .await?;
        log.extend(records);
    }
    Ok(count_job_writes(&log, job))
}

fn count_job_writes(log: &[Value], job: &str) -> JobWrites {
    let mut out = JobWrites::default();
    for w in log {
        if w["resource"] != "jobs.batch"
            || w["name"] != job
            || w["dryRun"] == true
            || !w["subresource"].is_null()
        {
            continue;
        }
        let (verb, code) = (w["verb"].as_str().unwrap_or(""), w["code"].as_u64());
        let ns = w["namespace"].as_str().unwrap_or("").to_string();
        if verb == "delete" {
            if code.is_some_and(|c| c < 300) {
                out.deleted += 1;
            }
            continue;
        }
        out.writes += 1;
        if code == Some(201) && (verb == "create" || verb == "apply") {
            *out.created.entry(ns).or_default() += 1;
        }
    }
    out
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
    fn job_creations_are_counted_per_namespace_without_dry_runs() {
        let w = |verb: &str, ns: &str, name: &str, dry_run: bool, code: u16| {
            json!({"seq": 0, "time": "", "verb": verb, "resource": "jobs.batch", "subresource": null,
                "namespace": ns, "name": name, "fieldManager": "gitfleet", "dryRun": dry_run, "code": code})
        };
        let log = [
            w("apply", "a", "presync", true, 201),
            w("apply", "a", "presync", false, 201),
            w("apply", "a", "presync", false, 200),
            w("delete", "a", "presync", false, 200),
            w("create", "b", "presync", false, 201),
            w("apply", "b", "other", false, 201),
            w("apply", "c", "presync", false, 409),
        ];
        let got = count_job_writes(&log, "presync");
        assert_eq!(
            got.created,
            BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 1)])
        );
        assert_eq!((got.writes, got.deleted), (4, 1));
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
