//! The visible part of kube-controller-manager and the kubelet: Deployments make
//! ReplicaSets make Pods; Pods, StatefulSets, DaemonSets, Jobs, PVCs and LoadBalancer
//! Services reach the status a real cluster reports, after the cluster's ready delay;
//! every namespace gets (and keeps) its `default` ServiceAccount and `kube-root-ca.crt`
//! ConfigMap.
//!
//! Pod outcomes are steered by the annotation `sim.gitfleet.dev/outcome` on the Pod or
//! its template (or on the Job): `fail` (containers exit 1: Jobs fail, restartPolicy
//! Always pods crash-loop) and `crashloop` (CrashLoopBackOff). Absent: pods get Ready,
//! Job pods succeed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::now;
use crate::cluster::Cluster;
use crate::gc::{self, Propagation};
use crate::resources::ResourceKey;
use crate::store::{ClusterState, EventType, Stored};

pub const OUTCOME_ANNOTATION: &str = "sim.gitfleet.dev/outcome";
const NODE: &str = "sim-node-0";
/// The ServiceAccount the serviceaccounts controller keeps in every namespace.
pub const DEFAULT_SA: &str = "default";
/// The ConfigMap the root-ca-cert-publisher keeps in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What `kube-root-ca.crt` holds when the cluster serves plain HTTP and has no CA: shaped
/// like a PEM certificate, and saying that it is none.
pub fn placeholder_ca_pem() -> String {
    use base64::Engine as _;
    let text = "cluster-sim serves plain HTTP: it has no CA, and this is not a certificate.";
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    // PEM wraps its base64 at 64 columns.
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Something changed: look at this object (and what it owns or is owned by).
#[derive(Debug, Clone)]
pub struct Work {
    pub key: ResourceKey,
    pub namespace: String,
    pub name: String,
}

fn key(group: &str, plural: &str) -> ResourceKey {
    ResourceKey {
        group: group.into(),
        plural: plural.into(),
    }
}

/// Runs until the cluster is dropped.
pub async fn run(cluster: Weak<Cluster>, mut rx: mpsc::UnboundedReceiver<Work>) {
    while let Some(w) = rx.recv().await {
        let Some(c) = cluster.upgrade() else { return };
        reconcile(&c, &w);
    }
}

/// The first pass a new cluster's controllers make: every namespace gets its `default`
/// ServiceAccount and `kube-root-ca.crt` ConfigMap before the first client arrives.
pub fn initial_pass(c: &Arc<Cluster>) {
    let names: Vec<String> = c
        .state
        .lock()
        .list(&key("", "namespaces"))
        .map(|m| m.values().map(|s| s.name().to_string()).collect())
        .unwrap_or_default();
    for name in names {
        reconcile(
            c,
            &Work {
                key: key("", "namespaces"),
                namespace: String::new(),
                name,
            },
        );
    }
}

fn reconcile(c: &Arc<Cluster>, w: &Work) {
    let mut st = c.state.lock();
    let obj = st.get(&w.key, &w.namespace, &w.name).cloned();
    let mut ctx = Ctx {
        c,
        st: &mut st,
        followups: Vec::new(),
        later: Vec::new(),
    };
    // What the system keeps per namespace comes back when deleted or changed.
    match (w.key.group.as_str(), w.key.plural.as_str(), w.name.as_str()) {
        ("", "serviceaccounts", DEFAULT_SA) | ("", "configmaps", ROOT_CA_CONFIGMAP) => {
            ctx.namespace_objects(&w.namespace);
        }
        ("", "services", "kubernetes") if w.namespace == "default" && obj.is_none() => {
            crate::bootstrap::ensure_kubernetes_service(ctx.st);
        }
        _ => {}
    }
    let Some(obj) = obj else {
        let Ctx { followups, .. } = ctx;
        drop(st);
        for f in followups {
            let _ = c.controller_tx.send(f);
        }
        return;
    };
    match (w.key.group.as_str(), w.key.plural.as_str()) {
        ("", "namespaces") => ctx.namespace_objects(obj.name()),
        ("apps", "deployments") => ctx.deployment(&obj),
        ("apps", "replicasets") => ctx.replicaset(&obj),
        ("apps", "statefulsets") => ctx.statefulset(&obj),
        ("apps", "daemonsets") => ctx.daemonset(&obj),
        ("batch", "jobs") => ctx.job(&obj),
        ("", "pods") => ctx.pod(&obj),
        ("", "persistentvolumeclaims") => ctx.pvc(&obj),
        ("", "services") => ctx.service(&obj),
        ("networking.k8s.io", "ingresses") => ctx.ingress(&obj),
        ("autoscaling", "horizontalpodautoscalers") => ctx.hpa(&obj),
        _ => {}
    }
    let Ctx {
        followups, later, ..
    } = ctx;
    drop(st);
    for f in followups {
        let _ = c.controller_tx.send(f);
    }
    for (delay, f) in later {
        let tx = c.controller_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(f);
        });
    }
}

struct Ctx<'a> {
    c: &'a Arc<Cluster>,
    st: &'a mut ClusterState,
    followups: Vec<Work>,
    later: Vec<(Duration, Work)>,
}

fn age(field: &Value) -> Duration {
    field
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

fn outcome(obj: &Value, template: Option<&Value>) -> Option<String> {
    let a = |v: &Value| {
        v["metadata"]["annotations"][OUTCOME_ANNOTATION]
            .as_str()
            .map(String::from)
    };
    a(obj).or_else(|| template.and_then(a))
}

fn fnv_hex(v: &Value) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in v.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    // Kubernetes renders pod-template-hash with a consonant-and-digit alphabet.
    const CH: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    let mut n = h;
    for _ in 0..10 {
        out.push(CH[(n % CH.len() as u32) as usize] as char);
        n = (n / CH.len() as u32) ^ h.rotate_left(7);
    }
    out
}

fn owner_ref(owner: &Value) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn owned_by<'v>(objs: impl Iterator<Item = &'v Arc<Stored>>, uid: &str) -> Vec<Arc<Stored>> {
    objs.filter(|s| {
        s.value["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| r.iter().any(|o| o["uid"].as_str() == Some(uid)))
    })
    .cloned()
    .collect()
}

fn condition(t: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": now})
}

/// Keeps `lastTransitionTime` of conditions whose status did not change, as controllers do.
/// A status without conditions keeps having none (not `"conditions": null`).
fn keep_transitions(status: &mut Value, old: &Value) {
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conds {
        if let Some(o) = old
            .as_array()
            .and_then(|a| a.iter().find(|o| o["type"] == c["type"]))
            && o["status"] == c["status"]
        {
            c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            if o["reason"] == c["reason"] {
                c["lastUpdateTime"] = o["lastUpdateTime"].clone();
            }
        }
    }
}

impl Ctx<'_> {
    fn objects(&self, k: &ResourceKey, ns: &str) -> Vec<Arc<Stored>> {
        self.st
            .list(k)
            .map(|m| {
                m.range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes an object as a controller would (no write-log entry), if it changed.
    fn put(&mut self, k: &ResourceKey, old: Option<&Arc<Stored>>, mut v: Value) {
        // Go's omitempty: what the real controllers write never holds a null.
        strip_nulls(&mut v);
        if old.is_some_and(|o| o.value == v) {
            return;
        }
        let rv = self.st.next_rv();
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        if old.is_none() {
            v["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            v["metadata"]["creationTimestamp"] = json!(now());
        }
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let s = self.st.commit(k, v, kind);
        self.followups.push(Work {
            key: k.clone(),
            namespace: s.namespace().into(),
            name: s.name().into(),
        });
    }

    fn set_status(&mut self, k: &ResourceKey, obj: &Arc<Stored>, mut status: Value) {
        keep_transitions(&mut status, &obj.value["status"]["conditions"]);
        let mut v = obj.value.clone();
        v["status"] = status;
        self.put(k, Some(obj), v);
    }

    fn remove(&mut self, k: &ResourceKey, obj: &Arc<Stored>) {
        gc::delete_object(self.st, k, obj, Propagation::Background);
        gc::sweep(self.st);
    }

    fn wake_owner(&mut self, obj: &Value) {
        if let Some(refs) = obj["metadata"]["ownerReferences"].as_array() {
            for r in refs {
                let (g, plural) = match r["kind"].as_str() {
                    Some("ReplicaSet") => ("apps", "replicasets"),
                    Some("Deployment") => ("apps", "deployments"),
                    Some("StatefulSet") => ("apps", "statefulsets"),
                    Some("DaemonSet") => ("apps", "daemonsets"),
                    Some("Job") => ("batch", "jobs"),
                    _ => continue,
                };
                self.followups.push(Work {
                    key: key(g, plural),
                    namespace: obj["metadata"]["namespace"].as_str().unwrap_or("").into(),
                    name: r["name"].as_str().unwrap_or("").into(),
                });
            }
        }
    }

    fn deleting(obj: &Value) -> bool {
        obj["metadata"]["deletionTimestamp"].is_string()
    }

    /// Pods for a workload: creates missing ones named by `names`, removes the rest.
    fn sync_pods(
        &mut self,
        owner: &Arc<Stored>,
        template: &Value,
        names: &[String],
        extra_labels: Value,
    ) {
        let ns = owner.namespace().to_string();
        let pk = key("", "pods");
        let pods = owned_by(self.objects(&pk, &ns).iter(), owner.uid());
        for p in &pods {
            if !names.iter().any(|n| n == p.name()) && !Self::deleting(&p.value) {
                self.remove(&pk, p);
            }
        }
        for n in names {
            if pods.iter().any(|p| p.name() == n) {
                continue;
            }
            let mut meta = template["metadata"].clone();
            if !meta.is_object() {
                meta = json!({});
            }
            meta["name"] = json!(n);
            meta["namespace"] = json!(ns);
            meta["ownerReferences"] = json!([owner_ref(&owner.value)]);
            if let (Some(l), Some(extra)) = (
                meta["labels"].as_object_mut().or(None),
                extra_labels.as_object(),
            ) {
                for (k, v) in extra {
                    l.insert(k.clone(), v.clone());
                }
            } else if extra_labels.is_object() && !meta["labels"].is_object() {
                meta["labels"] = extra_labels.clone();
            }
            if let Some(o) = outcome(&owner.value, None) {
                meta["annotations"][OUTCOME_ANNOTATION] = json!(o);
            }
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"],
                "status": {"phase": "Pending", "qosClass": "BestEffort"}});
            self.put(&pk, None, pod);
        }
    }

    fn pod_counts(&self, owner: &Arc<Stored>) -> (i64, i64, i64, i64) {
        let pods = owned_by(
            self.objects(&key("", "pods"), owner.namespace()).iter(),
            owner.uid(),
        );
        let live: Vec<_> = pods.iter().filter(|p| !Self::deleting(&p.value)).collect();
        let ready = live.iter().filter(|p| pod_ready(&p.value)).count() as i64;
        let succeeded = live
            .iter()
            .filter(|p| p.value["status"]["phase"] == "Succeeded")
            .count() as i64;
        let failed = live
            .iter()
            .filter(|p| p.value["status"]["phase"] == "Failed")
            .count() as i64;
        (live.len() as i64, ready, succeeded, failed)
    }

    /// The serviceaccounts controller and the root-ca-cert-publisher: every live namespace
    /// has a `default` ServiceAccount and a `kube-root-ca.crt` ConfigMap with the CA.
    fn namespace_objects(&mut self, ns: &str) {
        let live = self
            .st
            .get(&key("", "namespaces"), "", ns)
            .is_some_and(|n| !Self::deleting(&n.value));
        if !live {
            return;
        }
        let sk = key("", "serviceaccounts");
        if self.st.get(&sk, ns, DEFAULT_SA).is_none() {
            let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SA, "namespace": ns}});
            managed_by(&mut sa, "kube-controller-manager");
            self.put(&sk, None, sa);
        }
        let ck = key("", "configmaps");
        let ca = self.c.ca_pem.clone().unwrap_or_else(placeholder_ca_pem);
        let data = json!({"ca.crt": ca});
        match self.st.get(&ck, ns, ROOT_CA_CONFIGMAP).cloned() {
            None => {
                let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns,
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                    "data": data});
                managed_by(&mut cm, "kube-controller-manager");
                self.put(&ck, None, cm);
            }
            Some(cm) if cm.value["data"] != data || cm.value.get("binaryData").is_some() => {
                let mut v = cm.value.clone();
                v["data"] = data;
                if let Some(m) = v.as_object_mut() {
                    m.remove("binaryData");
                }
                self.put(&ck, Some(&cm), v);
            }
            Some(_) => {}
        }
    }

    fn deployment(&mut self, d: &Arc<Stored>) {
        if Self::deleting(&d.value) {
            return;
        }
        let v = &d.value;
        let ns = d.namespace().to_string();
        let rk = key("apps", "replicasets");
        let replicas = v["spec"]["replicas"].as_i64().unwrap_or(1);
        let template = &v["spec"]["template"];
        let hash = fnv_hex(template);
        let rs_name = format!("{}-{}", d.name(), hash);
        let owned = owned_by(self.objects(&rk, &ns).iter(), d.uid());
        if !v["spec"]["paused"].as_bool().unwrap_or(false) {
            for rs in &owned {
                if rs.name() != rs_name && rs.value["spec"]["replicas"].as_i64() != Some(0) {
                    let mut nv = rs.value.clone();
                    nv["spec"]["replicas"] = json!(0);
                    self.put(&rk, Some(rs), nv);
                }
            }
            let current = owned.iter().find(|r| r.name() == rs_name).cloned();
            let mut labels = template["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["pod-template-hash"] = json!(hash);
            let mut tpl = template.clone();
            tpl["metadata"]["labels"] = labels.clone();
            let mut selector = v["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let revision = owned.len() as i64 + if current.is_some() { 0 } else { 1 };
            let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                        "deployment.kubernetes.io/revision": revision.to_string()},
                    "ownerReferences": [owner_ref(v)]},
                "spec": {"replicas": replicas, "selector": selector, "template": tpl}});
            match current {
                None => self.put(&rk, None, rs),
                Some(cur) if cur.value["spec"]["replicas"].as_i64() != Some(replicas) => {
                    let mut nv = cur.value.clone();
                    nv["spec"]["replicas"] = json!(replicas);
                    self.put(&rk, Some(&cur), nv);
                }
                Some(_) => {}
            }
        }
        // Status from the ReplicaSets as they are now.
        let owned = owned_by(self.objects(&rk, &ns).iter(), d.uid());
        let sum = |f: &str| {
            owned
                .iter()
                .map(|r| r.value["status"][f].as_i64().unwrap_or(0))
                .sum::<i64>()
        };
        let new_rs = owned.iter().find(|r| r.name() == rs_name);
        let updated = new_rs
            .map(|r| r.value["status"]["replicas"].as_i64().unwrap_or(0))
            .unwrap_or(0);
        let new_available = new_rs
            .map(|r| r.value["status"]["availableReplicas"].as_i64().unwrap_or(0))
            .unwrap_or(0);
        let (total, ready, available) = (
            sum("replicas"),
            sum("readyReplicas"),
            sum("availableReplicas"),
        );
        let t = now();
        let complete = updated == replicas && total == replicas && new_available == replicas;
        let deadline = v["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600);
        let old_progress = v["status"]["conditions"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["type"] == "Progressing"))
            .cloned()
            .unwrap_or(Value::Null);
        let same_generation = v["status"]["observedGeneration"] == v["metadata"]["generation"];
        let progressing = if complete {
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                &t,
            )
        } else if same_generation
            && (old_progress["reason"] == "ProgressDeadlineExceeded"
                || (old_progress["reason"] != "NewReplicaSetAvailable"
                    && age(&old_progress["lastUpdateTime"]) >= Duration::from_secs(deadline)))
        {
            // Once exceeded, a rollout stays failed until it completes or its spec changes.
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                &t,
            )
        } else {
            if !Self::deleting(v) {
                self.later.push((
                    Duration::from_secs(deadline) + Duration::from_millis(100),
                    Work {
                        key: key("apps", "deployments"),
                        namespace: ns.clone(),
                        name: d.name().into(),
                    },
                ));
            }
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
                &t,
            )
        };
        let min_available = replicas - max_unavailable(v, replicas);
        let available_cond = if available >= min_available {
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                &t,
            )
        } else {
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                &t,
            )
        };
        let mut status = json!({"observedGeneration": v["metadata"]["generation"], "replicas": total,
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
            "conditions": [available_cond, progressing]});
        if total - available > 0 {
            status["unavailableReplicas"] = json!(total - available);
        }
        for f in [
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
            "replicas",
        ] {
            if status[f] == 0 {
                status
                    .as_object_mut()
                    .expect("status is an object")
                    .remove(f);
            }
        }
        let dk = key("apps", "deployments");
        self.set_status(&dk, d, status);
    }

    fn replicaset(&mut self, rs: &Arc<Stored>) {
        if Self::deleting(&rs.value) {
            return;
        }
        let replicas = rs.value["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let names: Vec<String> = {
            let pk = key("", "pods");
            let mut existing: Vec<String> =
                owned_by(self.objects(&pk, rs.namespace()).iter(), rs.uid())
                    .iter()
                    .filter(|p| !Self::deleting(&p.value))
                    .map(|p| p.name().to_string())
                    .collect();
            existing.sort();
            existing.truncate(replicas as usize);
            while existing.len() < replicas as usize {
                existing.push(format!(
                    "{}-{}",
                    rs.name(),
                    &fnv_hex(&json!([rs.uid(), existing.len()]))[..5]
                ));
            }
            existing
        };
        let template = rs.value["spec"]["template"].clone();
        self.sync_pods(rs, &template, &names, json!({}));
        let (count, ready, _, _) = self.pod_counts(rs);
        let mut status = json!({"replicas": count, "fullyLabeledReplicas": count, "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": rs.value["metadata"]["generation"]});
        for f in ["readyReplicas", "availableReplicas", "fullyLabeledReplicas"] {
            if status[f] == 0 {
                status
                    .as_object_mut()
                    .expect("status is an object")
                    .remove(f);
            }
        }
        self.set_status(&key("apps", "replicasets"), rs, status);
        self.wake_owner(&rs.value);
    }

    fn statefulset(&mut self, s: &Arc<Stored>) {
        if Self::deleting(&s.value) {
            return;
        }
        let replicas = s.value["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let names: Vec<String> = (0..replicas).map(|i| format!("{}-{i}", s.name())).collect();
        let revision = format!("{}-{}", s.name(), fnv_hex(&s.value["spec"]["template"]));
        let template = s.value["spec"]["template"].clone();
        self.sync_pods(
            s,
            &template,
            &names,
            json!({"controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": ""}),
        );
        let (count, ready, _, _) = self.pod_counts(s);
        let status = json!({"observedGeneration": s.value["metadata"]["generation"], "replicas": count,
            "readyReplicas": ready, "currentReplicas": count, "updatedReplicas": count, "availableReplicas": ready,
            "currentRevision": revision, "updateRevision": revision, "collisionCount": 0});
        self.set_status(&key("apps", "statefulsets"), s, status);
    }

    fn daemonset(&mut self, ds: &Arc<Stored>) {
        if Self::deleting(&ds.value) {
            return;
        }
        // One simulated node: one pod.
        let names = vec![format!("{}-{}", ds.name(), &fnv_hex(&json!(ds.uid()))[..5])];
        let template = ds.value["spec"]["template"].clone();
        self.sync_pods(ds, &template, &names, json!({}));
        let (count, ready, _, _) = self.pod_counts(ds);
        let status = json!({"observedGeneration": ds.value["metadata"]["generation"], "desiredNumberScheduled": 1,
            "currentNumberScheduled": count, "updatedNumberScheduled": count, "numberReady": ready,
            "numberAvailable": ready, "numberMisscheduled": 0});
        self.set_status(&key("apps", "daemonsets"), ds, status);
    }

    fn job(&mut self, j: &Arc<Stored>) {
        let v = &j.value;
        if Self::deleting(v) || v["spec"]["suspend"] == true {
            if v["spec"]["suspend"] == true && !Self::deleting(v) {
                let t = now();
                let status = json!({"conditions": [condition("Suspended", "True", "JobSuspended", "Job suspended", &t)]});
                self.set_status(&key("batch", "jobs"), j, status);
            }
            return;
        }
        let done = v["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        });
        if done {
            return;
        }
        let completions = v["spec"]["completions"].as_i64().unwrap_or(1);
        let (_, _, succeeded, failed) = self.pod_counts(j);
        let t = now();
        let start = v["status"]["startTime"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| t.clone());
        // active, succeeded and failed are omitempty; ready and terminating are pointers.
        let mut status = json!({"startTime": start, "terminating": 0, "ready": 0,
            "uncountedTerminatedPods": {}});
        if succeeded > 0 {
            status["succeeded"] = json!(succeeded);
        }
        if failed > 0 {
            status["failed"] = json!(failed);
        }
        let backoff = v["spec"]["backoffLimit"].as_i64().unwrap_or(6);
        if failed > 0
            && (failed > backoff
                || outcome(v, Some(&v["spec"]["template"])).as_deref() == Some("fail"))
        {
            status["conditions"] = json!([
                condition(
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    &t
                ),
                condition(
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    &t
                ),
            ]);
        } else if succeeded >= completions {
            status["completionTime"] = json!(t);
            status["conditions"] = json!([
                condition(
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &t
                ),
                condition(
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &t
                ),
            ]);
        } else {
            let name = format!("{}-{}", j.name(), &fnv_hex(&json!([j.uid(), failed]))[..5]);
            let template = v["spec"]["template"].clone();
            let mut names: Vec<String> = owned_by(
                self.objects(&key("", "pods"), j.namespace()).iter(),
                j.uid(),
            )
            .iter()
            .filter(|p| p.value["status"]["phase"] == "Failed")
            .map(|p| p.name().to_string())
            .collect();
            names.push(name);
            self.sync_pods(
                j,
                &template,
                &names,
                json!({"batch.kubernetes.io/job-name": j.name(), "job-name": j.name()}),
            );
            status["active"] = json!(1);
        }
        self.set_status(&key("batch", "jobs"), j, status);
    }

    fn pod(&mut self, p: &Arc<Stored>) {
        let v = &p.value;
        let pk = key("", "pods");
        if Self::deleting(v) {
            self.wake_owner(v);
            return;
        }
        let phase = v["status"]["phase"].as_str().unwrap_or("Pending");
        if phase != "Pending" {
            self.wake_owner(v);
            return;
        }
        let created = &v["metadata"]["creationTimestamp"];
        let delay = self.c.config.ready_delay;
        let waited = age(created);
        if waited < delay {
            if v["spec"]["nodeName"].is_null() {
                let mut nv = v.clone();
                nv["spec"]["nodeName"] = json!(NODE);
                nv["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]);
                self.put(&pk, Some(p), nv);
            }
            self.later.push((
                delay - waited + Duration::from_millis(5),
                Work {
                    key: pk,
                    namespace: p.namespace().into(),
                    name: p.name().into(),
                },
            ));
            return;
        }
        let t = now();
        let restart = v["spec"]["restartPolicy"].as_str().unwrap_or("Always");
        let job_pod = v["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| r.iter().any(|o| o["kind"] == "Job"));
        let outcome = outcome(v, None);
        let containers: Vec<Value> = v["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let statuses = |state: Value, ready: bool, restarts: i64, last: Value| -> Value {
            Value::Array(
                containers
                    .iter()
                    .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": format!("sim://{}", c["image"].as_str().unwrap_or("")),
                        "containerID": format!("sim://{}", uuid::Uuid::new_v4().simple()),
                        "ready": ready, "started": ready, "restartCount": restarts, "state": state, "lastState": last}))
                    .collect(),
            )
        };
        let mut nv = v.clone();
        nv["spec"]["nodeName"] = json!(NODE);
        nv["status"]["startTime"] = json!(created);
        nv["status"]["hostIP"] = json!("10.0.0.1");
        nv["status"]["podIP"] = json!(format!(
            "10.244.0.{}",
            2 + (fnv_hex(&json!(p.uid())).len() % 200)
        ));
        let ready_cond = |s: &str| {
            json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                {"type": "ContainersReady", "status": s, "lastTransitionTime": t},
                {"type": "Ready", "status": s, "lastTransitionTime": t}])
        };
        let failing = outcome.as_deref() == Some("fail") || outcome.as_deref() == Some("crashloop");
        if job_pod || restart != "Always" {
            let ok = !failing;
            nv["status"]["phase"] = json!(if ok { "Succeeded" } else { "Failed" });
            nv["status"]["conditions"] = ready_cond("False");
            nv["status"]["containerStatuses"] = statuses(
                json!({"terminated": {"exitCode": if ok { 0 } else { 1 }, "reason": if ok { "Completed" } else { "Error" }, "startedAt": created, "finishedAt": t}}),
                false,
                0,
                json!({}),
            );
        } else if failing {
            nv["status"]["phase"] = json!("Running");
            nv["status"]["conditions"] = ready_cond("False");
            nv["status"]["containerStatuses"] = statuses(
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}}),
                false,
                3,
                json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": created, "finishedAt": t}}),
            );
        } else {
            nv["status"]["phase"] = json!("Running");
            nv["status"]["conditions"] = ready_cond("True");
            nv["status"]["containerStatuses"] =
                statuses(json!({"running": {"startedAt": t}}), true, 0, json!({}));
        }
        self.put(&pk, Some(p), nv);
        self.wake_owner(v);
    }

    fn after_delay(&mut self, obj: &Arc<Stored>, k: ResourceKey) -> bool {
        let delay = self.c.config.ready_delay;
        let waited = age(&obj.value["metadata"]["creationTimestamp"]);
        if waited < delay {
            self.later.push((
                delay - waited + Duration::from_millis(5),
                Work {
                    key: k,
                    namespace: obj.namespace().into(),
                    name: obj.name().into(),
                },
            ));
            return false;
        }
        true
    }

    fn pvc(&mut self, p: &Arc<Stored>) {
        if p.value["status"]["phase"] == "Bound"
            || !self.after_delay(p, key("", "persistentvolumeclaims"))
        {
            return;
        }
        let mut v = p.value.clone();
        let size = v["spec"]["resources"]["requests"]["storage"].clone();
        v["spec"]["volumeName"] = json!(format!("pvc-{}", p.uid()));
        v["status"] = json!({"phase": "Bound", "accessModes": v["spec"]["accessModes"], "capacity": {"storage": size}});
        self.put(&key("", "persistentvolumeclaims"), Some(p), v);
    }

    fn service(&mut self, s: &Arc<Stored>) {
        let lb = s.value["spec"]["type"] == "LoadBalancer";
        let has = s.value["status"]["loadBalancer"]["ingress"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if !lb || has || !self.after_delay(s, key("", "services")) {
            return;
        }
        let mut v = s.value.clone();
        v["status"]["loadBalancer"] = json!({"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]});
        self.put(&key("", "services"), Some(s), v);
    }

    fn ingress(&mut self, i: &Arc<Stored>) {
        let has = i.value["status"]["loadBalancer"]["ingress"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if has || !self.after_delay(i, key("networking.k8s.io", "ingresses")) {
            return;
        }
        let mut v = i.value.clone();
        v["status"]["loadBalancer"] = json!({"ingress": [{"ip": "192.0.2.20"}]});
        self.put(&key("networking.k8s.io", "ingresses"), Some(i), v);
    }

    fn hpa(&mut self, h: &Arc<Stored>) {
        if h.value["status"]["conditions"].is_array() {
            return;
        }
        let t = now();
        let min = h.value["spec"]["minReplicas"].as_i64().unwrap_or(1);
        let mut v = h.value.clone();
        v["status"] = json!({"currentReplicas": min, "desiredReplicas": min, "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": t},
            {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "lastTransitionTime": t},
            {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange", "lastTransitionTime": t}]});
        self.put(&key("autoscaling", "horizontalpodautoscalers"), Some(h), v);
    }
}

/// Records `manager` as the writer of every field of a new object (an Update entry).
fn managed_by(v: &mut Value, manager: &str) {
    let kind = v["kind"].as_str().unwrap_or("").to_string();
    let av = v["apiVersion"].as_str().unwrap_or("").to_string();
    field_manager::record_update(
        None,
        v,
        &field_manager::ObjectInfo {
            kind: &kind,
            api_version: &av,
            builtin: true,
            has_status_subresource: false,
            subresource: None,
        },
        &field_manager::Operation {
            manager,
            time: &now(),
        },
    );
}

/// Removes every null member of every object, recursively.
pub(crate) fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                strip_nulls(x);
            }
        }
        Value::Array(a) => {
            for x in a {
                strip_nulls(x);
            }
        }
        _ => {}
    }
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn max_unavailable(d: &Value, replicas: i64) -> i64 {
    let ru = &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"];
    match ru {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) if s.ends_with('%') => s
            .trim_end_matches('%')
            .parse::<i64>()
            .map(|p| replicas * p / 100)
            .unwrap_or(0),
        _ => 0,
    }
}
