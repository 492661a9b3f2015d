//! Optional on-disk state (`--state-dir`): each cluster's objects and token in one JSON
//! file, written atomically, so a demo cluster survives a restart.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::resources::ResourceKey;
use crate::store::{ClusterState, Stored};

#[derive(Serialize, Deserialize)]
pub struct Saved {
    pub token: String,
    pub rv: u64,
    pub objects: Vec<(ResourceKey, Value)>,
}

fn path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.json"))
}

pub fn load(dir: &Path, name: &str) -> anyhow::Result<Option<Saved>> {
    let p = path(dir, name);
    match std::fs::read(&p) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("reading saved cluster state {}", p.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

pub fn restore(state: &mut ClusterState, saved: Saved) {
    state.rv = saved.rv;
    for (key, v) in saved.objects {
        let s = Stored::new(v);
        state
            .objects
            .entry(key)
            .or_default()
            .insert((s.namespace().to_string(), s.name().to_string()), s);
    }
    state.refresh_registry();
}

pub fn save(dir: &Path, c: &Cluster) -> anyhow::Result<()> {
    let saved = {
        let mut st = c.state.lock();
        st.dirty = false;
        Saved {
            token: c.token.clone(),
            rv: st.rv,
            objects: st
                .objects
                .iter()
                .flat_map(|(k, m)| m.values().map(|s| (k.clone(), s.value.clone())))
                .collect(),
        }
    };
    let p = path(dir, &c.name);
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&saved)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("renaming {} into place", tmp.display()))?;
    Ok(())
}

pub fn save_if_dirty(dir: &Path, c: &Cluster) -> anyhow::Result<()> {
    if c.state.lock().dirty {
        save(dir, c)
    } else {
        Ok(())
    }
}
