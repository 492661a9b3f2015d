//! `gitfleet apply` and `gitfleet export`: Argo CD's declarative setup in and out.
//! `apply` sends every file at once to the gateway, which applies the objects in the order
//! they rely on each other and authorises each as its own call; `export` reads the
//! control plane's state from the bus (as `argocd admin export` reads the cluster) and
//! writes the same kinds back out, credentials included, so applying it again gives the
//! same state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use gitfleet_bus::cli::BusArgs;
use gitfleet_bus::{Bucket, Bus};
use gitfleet_model::{
    AppProject, Application, ApplicationSet, Cluster, Repository, SecretManifest,
};
use gitfleet_proto::v1::apply_service_client::ApplyServiceClient;
use gitfleet_proto::v1::{ApplyRequest, ManifestFile};
use serde::Serialize;

use crate::Conn;
use crate::error::{Error, Result};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them (`.yaml`, `.yml`, `.json`), or `-` for stdin
    /// (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

fn collect(path: &Path, recursive: bool, top: bool, out: &mut Vec<ManifestFile>) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Error::io("reading manifests from stdin", e))?;
        out.push(ManifestFile {
            source: "stdin".into(),
            manifests_yaml: text,
        });
        return Ok(());
    }
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if meta.is_dir() {
        if !top && !recursive {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let is_manifest = entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if entry.is_dir() || is_manifest {
                collect(&entry, recursive, false, out)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    out.push(ManifestFile {
        source: path.display().to_string(),
        manifests_yaml: text,
    });
    Ok(())
}

/// Applies; exit code 1 when any object failed (the others are applied all the same).
pub async fn apply(args: &ApplyArgs, conn: Conn, out: &mut dyn Write) -> Result<i32> {
    let mut files = Vec::new();
    for path in &args.files {
        collect(path, args.recursive, true, &mut files)?;
    }
    if files.is_empty() {
        return Err(Error::Usage("no manifest files found".into()));
    }
    let objects = ApplyServiceClient::new(conn)
        .apply(ApplyRequest { files })
        .await?
        .into_inner()
        .objects;
    let mut failed = 0;
    for o in &objects {
        let what = if o.kind.is_empty() {
            o.name.clone()
        } else {
            format!("{} {}", o.kind, o.name)
        };
        if o.result == "failed" {
            failed += 1;
            output::write(out, &format!("{what} failed: {}\n", o.message))?;
        } else {
            output::write(out, &format!("{what} {}\n", o.result))?;
        }
        for w in &o.warnings {
            output::write(out, &format!("  warning: {w}\n"))?;
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Every value of a KV bucket, in key order.
async fn values<T: serde::de::DeserializeOwned>(bus: &Bus, bucket: Bucket) -> Result<Vec<T>> {
    Ok(named_values(bus, bucket)
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Every document of `bucket` with the name it is kept under, in name order.
async fn named_values<T: serde::de::DeserializeOwned>(
    bus: &Bus,
    bucket: Bucket,
) -> Result<Vec<(String, T)>> {
    use futures::StreamExt as _;
    let kv = bus
        .kv(bucket)
        .await
        .map_err(|e| Error::Usage(format!("opening {bucket:?}: {e}")))?;
    let mut keys: Vec<String> = Vec::new();
    let mut stream = kv
        .keys()
        .await
        .map_err(|e| Error::Usage(format!("listing {bucket:?}: {e}")))?;
    while let Some(key) = stream.next().await {
        keys.push(key.map_err(|e| Error::Usage(format!("listing {bucket:?}: {e}")))?);
    }
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        if let Some(body) = kv
            .get(&key)
            .await
            .map_err(|e| Error::Usage(format!("reading {key}: {e}")))?
        {
            out.push((key, body));
        }
    }
    out.into_iter()
        .map(|(key, body)| {
            let name = gitfleet_bus::token_to_name(&key).unwrap_or_else(|| key.clone());
            bus.decode_document(bucket, &name, &body)
                .map(|v| (name, v))
                .map_err(|e| Error::Usage(format!("{key}: {e}")))
        })
        .collect()
}

/// A stable, short name for a Secret made from a URL (FNV-1a; Secret names cannot hold
/// a URL).
fn short_hash(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// A Kubernetes name from anything: lowercase alphanumerics and `-`.
fn dns_name(text: &str) -> String {
    let name: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.trim_matches('-').chars().take(40).collect()
}

fn document<T: Serialize>(out: &mut String, value: &T) -> Result<()> {
    let yaml =
        serde_yaml_ng::to_string(value).map_err(|e| Error::Usage(format!("writing yaml: {e}")))?;
    out.push_str("---\n");
    out.push_str(&yaml);
    Ok(())
}

fn settings_object(name: &str, data: &BTreeMap<String, String>) -> serde_json::Value {
    let secret = name.ends_with("-secret");
    settings_document(name, data, secret)
}

/// A ConfigMap or (`secret`) Secret labelled as Argo CD's, holding `data`.
fn settings_document(
    name: &str,
    data: &BTreeMap<String, String>,
    secret: bool,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "apiVersion": "v1",
        "kind": if secret { "Secret" } else { "ConfigMap" },
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "argocd"}},
    });
    v[if secret { "stringData" } else { "data" }] = serde_json::json!(data);
    v
}

pub async fn export(args: &ExportArgs, out: &mut dyn Write) -> Result<i32> {
    let bus = crate::session::operator_bus(&args.bus, "gitfleet-export").await?;
    let mut text = String::new();
    let settings_kv = bus
        .kv(Bucket::Settings)
        .await
        .map_err(|e| Error::Usage(format!("opening the settings: {e}")))?;
    for name in gitfleet_model::SETTINGS_CONFIG_MAPS
        .iter()
        .chain(gitfleet_model::SETTINGS_SECRETS.iter())
    {
        let body = settings_kv
            .get(gitfleet_bus::subject_token(name))
            .await
            .map_err(|e| Error::Usage(format!("reading {name}: {e}")))?;
        if let Some(body) = body {
            let data: BTreeMap<String, String> = bus
                .decode_document(Bucket::Settings, name, &body)
                .map_err(|e| Error::Usage(format!("{name}: {e}")))?;
            document(&mut text, &settings_object(name, &data))?;
        }
    }
    // The Secrets generators name (`tokenRef`), labelled as Argo CD's so they read back.
    for (name, data) in named_values::<BTreeMap<String, String>>(&bus, Bucket::Secrets).await? {
        document(&mut text, &settings_document(&name, &data, true))?;
    }
    for mut project in values::<AppProject>(&bus, Bucket::Projects).await? {
        project.status = None;
        document(&mut text, &project)?;
    }
    for cluster in values::<Cluster>(&bus, Bucket::Clusters).await? {
        let id = if cluster.name.is_empty() {
            &cluster.server
        } else {
            &cluster.name
        };
        let name = format!("cluster-{}-{}", dns_name(id), short_hash(&cluster.server));
        document(&mut text, &SecretManifest::from_cluster(&cluster, &name))?;
    }
    for repo in values::<Repository>(&bus, Bucket::Repositories).await? {
        let name = format!("repo-{}", short_hash(&repo.repo));
        document(
            &mut text,
            &SecretManifest::from_repository(&repo, "repository", &name),
        )?;
    }
    for creds in values::<Repository>(&bus, Bucket::RepoCreds).await? {
        let name = format!("creds-{}", short_hash(&creds.repo));
        document(
            &mut text,
            &SecretManifest::from_repository(&creds, "repo-creds", &name),
        )?;
    }
    for set in values::<ApplicationSet>(&bus, Bucket::AppSets).await? {
        document(&mut text, &set)?;
    }
    for mut app in values::<Application>(&bus, Bucket::Applications).await? {
        app.status = None;
        document(&mut text, &app)?;
    }
    output::write(out, &text)?;
    Ok(0)
}
