//! The API over raw HTTP: bad input gets a Kubernetes-shaped Status and changes nothing;
//! faults, the write log and persistence behave as documented.

mod common;

use std::time::{Duration, Instant};

use cluster_sim::{Faults, Sim, SimConfig};
use common::eventually;
use serde_json::{Value, json};

struct Http {
    base: String,
    token: String,
    c: reqwest::Client,
}

impl Http {
    fn new(sim: &Sim, i: usize) -> Http {
        Http {
            base: sim.url(i),
            token: sim.cluster(i).token.clone(),
            c: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        ct: &str,
        body: Vec<u8>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .c
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let code = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        (
            code,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            headers,
        )
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (c, v, _) = self
            .send(
                method,
                path,
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        (c, v)
    }
}

async fn sim() -> Sim {
    Sim::start(SimConfig::default()).await.unwrap()
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}})
}

#[track_caller]
fn assert_status(code: u16, v: &Value, want_code: u16, reason: &str, message_part: &str) {
    assert_eq!(code, want_code, "{v}");
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["code"], want_code);
    assert_eq!(v["reason"], reason, "{v}");
    let m = v["message"].as_str().unwrap_or("");
    assert!(
        m.contains(message_part),
        "message {m:?} lacks {message_part:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_and_changes_nothing() {
    // No simulated controllers: nothing but this test writes, so "changes nothing" is exact.
    let sim = Sim::start(SimConfig {
        cluster: cluster_sim::ClusterConfig {
            controllers: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http::new(&sim, 0);
    assert_eq!(
        h.json(
            "POST",
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}})
        )
        .await
        .0,
        201
    );
    let deps = "/apis/apps/v1/namespaces/d/deployments";
    let (c, created) = h.json("POST", deps, deployment("web")).await;
    assert_eq!(c, 201, "{created}");
    let rv_before = sim.cluster(0).state.lock().rv;
    let count_before = sim.cluster(0).object_count();

    let (c, v, _) = h
        .send(
            "POST",
            deps,
            "application/json",
            b"{\"apiVersion\": \"apps/v1\", ".to_vec(),
        )
        .await;
    assert_status(c, &v, 400, "BadRequest", "not valid JSON");
    let (c, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web?fieldManager=t"),
            "application/apply-patch+yaml",
            b"spec: [unclosed".to_vec(),
        )
        .await;
    assert_status(c, &v, 400, "BadRequest", "not valid YAML");
    let (c, v) = h
        .json(
            "POST",
            deps,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .await;
    assert_status(c, &v, 400, "BadRequest", "must be of type Deployment");
    let mut nameless = deployment("x");
    nameless["metadata"] = json!({});
    let (c, v) = h.json("POST", deps, nameless).await;
    assert_status(c, &v, 422, "Invalid", "name or generateName is required");
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
    let (c, v) = h
        .json(
            "GET",
            &format!("{deps}?labelSelector=app%3D%3Dweb%20x"),
            Value::Null,
        )
        .await;
    assert_status(c, &v, 400, "BadRequest", "invalid label value");
    let mut unknown = deployment("y");
    unknown["spec"]["replicaz"] = json!(3);
    let (c, v) = h
        .json("POST", &format!("{deps}?fieldValidation=Strict"), unknown)
        .await;
    assert_status(c, &v, 400, "BadRequest", "unknown field \"spec.replicaz\"");
    let (c, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/missing"),
            "application/merge-patch+json",
            b"{\"spec\":{}}".to_vec(),
        )
        .await;
    assert_status(
        c,
        &v,
        404,
        "NotFound",
        "deployments.apps \"missing\" not found",
    );
    assert_eq!(v["details"]["name"], "missing");
    assert_eq!(v["details"]["group"], "apps");
    assert_eq!(v["details"]["kind"], "deployments");
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["replicas"] = json!(5);
    let (c, v) = h.json("PUT", &format!("{deps}/web"), stale).await;
    assert_status(c, &v, 409, "Conflict", "the object has been modified");
    let huge = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "y".repeat(3 * 1024 * 1024 + 10)}});
    let (c, v) = h
        .json("POST", "/api/v1/namespaces/d/configmaps", huge)
        .await;
    assert_status(c, &v, 413, "RequestEntityTooLarge", "limit is 3145728");
    let (c, v) = h
        .json(
            "POST",
            "/api/v1/namespaces/nope/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .await;
    assert_status(c, &v, 404, "NotFound", "namespaces \"nope\" not found");
    let (c, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web"),
            "application/json-patch+json",
            b"[{\"op\":\"remove\",\"path\":\"/spec/nothing\"}]".to_vec(),
        )
        .await;
    assert_status(c, &v, 400, "BadRequest", "/spec/nothing");
    let (c, v) = h
        .json("GET", "/apis/apps/v1/namespaces/d/widgets", Value::Null)
        .await;
    assert_status(
        c,
        &v,
        404,
        "NotFound",
        "could not find the requested resource",
    );

    assert_eq!(
        sim.cluster(0).state.lock().rv,
        rv_before,
        "no bad request wrote anything"
    );
    assert_eq!(sim.cluster(0).object_count(), count_before);
    let (_, live) = h.json("GET", &format!("{deps}/web"), Value::Null).await;
    assert_eq!(
        live["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_refused_and_dry_run_stores_nothing() {
    let sim = sim().await;
    let mut h = Http::new(&sim, 0);
    h.token = "wrong".into();
    let (c, v) = h.json("GET", "/api/v1/namespaces", Value::Null).await;
    assert_status(c, &v, 401, "Unauthorized", "Unauthorized");
    let h = Http::new(&sim, 0);
    let before = sim.cluster(0).object_count();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}});
    let (c, v) = h
        .json("POST", "/api/v1/namespaces?dryRun=All", ns.clone())
        .await;
    assert_eq!(c, 201);
    assert_eq!(
        v["status"]["phase"], "Active",
        "dry-run answers with the would-be object"
    );
    // Only what a new cluster holds: system namespaces and their objects.
    assert_eq!(sim.cluster(0).object_count(), before);
    let log = sim.cluster(0).write_log();
    assert_eq!(log.len(), 1);
    assert!(log[0].dry_run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_bumps_on_spec_change_only_and_finalizers_hold_deletion() {
    let sim = sim().await;
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    let deps = "/apis/apps/v1/namespaces/d/deployments";
    let mut d = deployment("web");
    d["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (_, v) = h.json("POST", deps, d).await;
    assert_eq!(v["metadata"]["generation"], 1);
    assert_eq!(v["spec"]["replicas"], 1, "defaulted");
    let (_, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web"),
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"x":"y"}}}"#.to_vec(),
        )
        .await;
    assert_eq!(
        v["metadata"]["generation"], 1,
        "metadata changes keep generation"
    );
    let (_, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web"),
            "application/merge-patch+json",
            br#"{"spec":{"replicas":3}}"#.to_vec(),
        )
        .await;
    assert_eq!(v["metadata"]["generation"], 2);
    let (c, v) = h.json("DELETE", &format!("{deps}/web"), Value::Null).await;
    assert_eq!(c, 200);
    assert!(
        v["metadata"]["deletionTimestamp"].is_string(),
        "finalizer holds the object: {v}"
    );
    let (c, _) = h.json("GET", &format!("{deps}/web"), Value::Null).await;
    assert_eq!(c, 200);
    let (_, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web"),
            "application/merge-patch+json",
            br#"{"metadata":{"finalizers":null}}"#.to_vec(),
        )
        .await;
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    let (c, _) = h.json("GET", &format!("{deps}/web"), Value::Null).await;
    assert_eq!(c, 404, "removing the last finalizer completes the deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_and_propagation_policies() {
    let sim = Sim::start(SimConfig {
        cluster: cluster_sim::ClusterConfig {
            ready_delay: Duration::from_millis(50),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    let deps = "/apis/apps/v1/namespaces/d/deployments";
    let count = |plural: &'static str, group: &'static str| {
        let c = sim.cluster(0).clone();
        move || {
            let st = c.state.lock();
            st.objects
                .iter()
                .filter(|(k, _)| k.plural == plural && k.group == group)
                .map(|(_, m)| m.len())
                .sum::<usize>()
        }
    };
    let pods = count("pods", "");
    let rs = count("replicasets", "apps");
    h.json("POST", deps, deployment("a")).await;
    eventually(30, "pods of a", || async { (pods() == 1).then_some(()) }).await;
    // Orphan: the ReplicaSet and pod stay, without owner references to the deployment.
    let (c, _) = h
        .json(
            "DELETE",
            &format!("{deps}/a"),
            json!({"propagationPolicy": "Orphan"}),
        )
        .await;
    assert_eq!(c, 200);
    assert_eq!((rs(), pods()), (1, 1));
    let (_, list) = h
        .json("GET", "/apis/apps/v1/namespaces/d/replicasets", Value::Null)
        .await;
    assert!(
        list["items"][0]["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{list}"
    );
    // Background (default): deleting the ReplicaSet collects its pod.
    let rs_name = list["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    h.json(
        "DELETE",
        &format!("/apis/apps/v1/namespaces/d/replicasets/{rs_name}"),
        Value::Null,
    )
    .await;
    eventually(10, "pod collected", || async {
        (pods() == 0).then_some(())
    })
    .await;
    // Foreground: the deployment and everything it owns go.
    h.json("POST", deps, deployment("b")).await;
    eventually(30, "pods of b", || async { (pods() == 1).then_some(()) }).await;
    h.json(
        "DELETE",
        &format!("{deps}/b"),
        json!({"propagationPolicy": "Foreground"}),
    )
    .await;
    eventually(10, "b and its dependents gone", || async {
        (rs() == 0
            && pods() == 0
            && h.json("GET", &format!("{deps}/b"), Value::Null).await.0 == 404)
            .then_some(())
    })
    .await;
    let (c, v) = h
        .json(
            "DELETE",
            &format!("{deps}/zzz"),
            json!({"propagationPolicy": "Sideways"}),
        )
        .await;
    assert_status(c, &v, 400, "BadRequest", "Unsupported value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_selectors_and_pagination() {
    let sim = sim().await;
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    for i in 0..25 {
        let tier = if i % 2 == 0 { "fe" } else { "be" };
        h.json("POST", "/api/v1/namespaces/d/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:02}"), "labels": {"tier": tier}}})).await;
    }
    let names = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Every namespace also holds the unlabeled kube-root-ca.crt the controllers publish.
    eventually(30, "kube-root-ca.crt in d", || async {
        (h.json(
            "GET",
            "/api/v1/namespaces/d/configmaps/kube-root-ca.crt",
            Value::Null,
        )
        .await
        .0 == 200)
            .then_some(())
    })
    .await;
    let (_, v) = h
        .json(
            "GET",
            "/api/v1/namespaces/d/configmaps?labelSelector=tier%20in%20(fe)",
            Value::Null,
        )
        .await;
    assert_eq!(names(&v).len(), 13);
    let (_, v) = h
        .json(
            "GET",
            "/api/v1/namespaces/d/configmaps?labelSelector=tier!%3Dfe",
            Value::Null,
        )
        .await;
    let not_fe = names(&v);
    assert_eq!(
        not_fe.len(),
        13,
        "12 `be` and the unlabeled one: {not_fe:?}"
    );
    assert!(not_fe.contains(&"kube-root-ca.crt".to_string()));
    let (_, v) = h
        .json(
            "GET",
            "/api/v1/configmaps?fieldSelector=metadata.name%3Dcm-07",
            Value::Null,
        )
        .await;
    assert_eq!(names(&v), vec!["cm-07"]);
    let mut all = Vec::new();
    let mut cont = String::new();
    loop {
        let (_, v) = h
            .json(
                "GET",
                &format!("/api/v1/namespaces/d/configmaps?limit=10&continue={cont}"),
                Value::Null,
            )
            .await;
        all.extend(names(&v));
        match v["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    let mut want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    want.push("kube-root-ca.crt".into());
    assert_eq!(all, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_latency_errors_rate_limit_and_down() {
    let sim = Sim::start(SimConfig {
        clusters: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http::new(&sim, 0);
    let other = Http::new(&sim, 1);
    let c = sim.cluster(0);

    c.set_faults(Faults {
        latency_ms: 150,
        ..Default::default()
    });
    let t = Instant::now();
    assert_eq!(
        h.json("GET", "/api/v1/namespaces", Value::Null).await.0,
        200
    );
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "latency applied: {:?}",
        t.elapsed()
    );

    c.set_faults(Faults {
        error_rate: 1.0,
        error_code: Some(429),
        ..Default::default()
    });
    let (code, v, headers) = h
        .send("GET", "/api/v1/namespaces", "application/json", vec![])
        .await;
    assert_status(code, &v, 429, "TooManyRequests", "try again later");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    c.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(
        h.json("GET", "/api/v1/namespaces", Value::Null).await.0,
        500
    );
    assert_eq!(
        other.json("GET", "/api/v1/namespaces", Value::Null).await.0,
        200,
        "faults are per cluster"
    );

    c.set_faults(Faults {
        rate_limit_qps: Some(5.0),
        ..Default::default()
    });
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(h.json("GET", "/api/v1/namespaces", Value::Null).await.0);
    }
    assert!(codes.contains(&200) && codes.contains(&429), "{codes:?}");

    c.set_faults(Faults {
        down: true,
        ..Default::default()
    });
    let err = eventually(10, "connection refused", || async {
        let r = reqwest::Client::new()
            .get(format!("{}/version", sim.url(0)))
            .send()
            .await;
        r.err().filter(|e| e.is_connect())
    })
    .await;
    assert!(err.is_connect());
    assert_eq!(
        other.json("GET", "/api/v1/namespaces", Value::Null).await.0,
        200
    );
    c.set_faults(Faults::default());
    eventually(10, "cluster back up", || async {
        (h.c.get(format!("{}/version", h.base)).send().await.is_ok()).then_some(())
    })
    .await;
}

/// A mutating webhook changes what every write of its kind stores, dry runs included, and
/// no manager owns what it sets: the applier keeps owning a field the webhook overrode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_webhooks_change_writes_and_own_nothing() {
    let sim = sim().await;
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    sim.cluster(0).set_faults(Faults {
        mutating_webhooks: vec![
            cluster_sim::MutatingWebhook {
                kind: "Deployment".into(),
                pointer: "/spec/template/spec/containers/0/imagePullPolicy".into(),
                value: json!("Always"),
            },
            cluster_sim::MutatingWebhook {
                kind: "Deployment".into(),
                pointer: "/metadata/labels/injected-by".into(),
                value: json!("policy"),
            },
        ],
        ..Default::default()
    });
    let mut applied = deployment("w");
    applied["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    for query in ["&dryRun=All", ""] {
        let (code, v, _) = h
            .send(
                "PATCH",
                &format!("/apis/apps/v1/namespaces/d/deployments/w?fieldManager=argocd-controller&force=true{query}"),
                "application/apply-patch+yaml",
                serde_json::to_vec(&applied).unwrap(),
            )
            .await;
        assert!(code == 200 || code == 201, "{code} {v}");
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always",
            "{query}"
        );
        assert_eq!(v["metadata"]["labels"]["injected-by"], "policy", "{query}");
        let owned = v["metadata"]["managedFields"][0]["fieldsV1"].to_string();
        assert!(owned.contains("f:imagePullPolicy"), "{owned}");
        assert!(!owned.contains("injected-by"), "{owned}");
    }
    let (_, other) = h
        .json(
            "POST",
            "/api/v1/namespaces/d/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        )
        .await;
    assert!(other["metadata"].get("labels").is_none(), "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cut_ends_streams() {
    let sim = sim().await;
    sim.cluster(0).set_faults(Faults {
        watch_cut_seconds: Some(1),
        ..Default::default()
    });
    let h = Http::new(&sim, 0);
    let t = Instant::now();
    let r =
        h.c.get(format!("{}/api/v1/configmaps?watch=true", h.base))
            .bearer_auth(&h.token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let _ = tokio::time::timeout(Duration::from_secs(20), r.bytes())
        .await
        .expect("the stream ends");
    assert!(t.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_log_records_every_mutation_in_order() {
    let sim = sim().await;
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    h.json(
        "POST",
        "/apis/apps/v1/namespaces/d/deployments?fieldManager=argocd-controller",
        deployment("w"),
    )
    .await;
    h.send(
        "PATCH",
        "/apis/apps/v1/namespaces/d/deployments/w?fieldManager=argocd-controller&force=true",
        "application/apply-patch+yaml",
        serde_json::to_vec(&deployment("w")).unwrap(),
    )
    .await;
    h.json(
        "POST",
        "/api/v1/namespaces/d/configmaps?dryRun=All",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    )
    .await;
    h.json(
        "DELETE",
        "/apis/apps/v1/namespaces/d/deployments/nope",
        Value::Null,
    )
    .await;
    h.json("GET", "/api/v1/namespaces", Value::Null).await;
    let log = sim.cluster(0).write_log();
    type Row<'a> = (
        u64,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        bool,
        u16,
    );
    let rows: Vec<Row> = log
        .iter()
        .map(|r| {
            (
                r.seq,
                r.verb.as_str(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.field_manager.as_deref(),
                r.dry_run,
                r.code,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                0,
                "create",
                "namespaces",
                Some("d"),
                Some("unknown"),
                false,
                201
            ),
            (
                1,
                "create",
                "deployments.apps",
                Some("w"),
                Some("argocd-controller"),
                false,
                201
            ),
            (
                2,
                "apply",
                "deployments.apps",
                Some("w"),
                Some("argocd-controller"),
                false,
                200
            ),
            (
                3,
                "create",
                "configmaps",
                Some("c"),
                Some("unknown"),
                true,
                201
            ),
            (
                4,
                "delete",
                "deployments.apps",
                Some("nope"),
                None,
                false,
                404
            ),
        ],
        "GETs are not logged; controller writes are not logged"
    );
    // The same log through the admin endpoint.
    let admin: Value = reqwest::get(format!("{}/clusters/c0/writes", sim.admin_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin.as_array().unwrap().len(), 5);
    assert_eq!(admin[2]["verb"], "apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_sets_faults() {
    let sim = sim().await;
    let url = format!("{}/clusters/c0/faults", sim.admin_url());
    let r = reqwest::Client::new()
        .put(&url)
        .json(&json!({"latencyMs": 20, "errorRate": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sim.cluster(0).faults(),
        Faults {
            latency_ms: 20,
            error_rate: 0.5,
            ..Default::default()
        }
    );
    let r = reqwest::Client::new()
        .put(format!("{}/clusters/c9/faults", sim.admin_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dir_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let sim = Sim::start(cfg.clone()).await.unwrap();
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keep"}}),
    )
    .await;
    let (_, cm) = h.json("POST", "/api/v1/namespaces/keep/configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})).await;
    let token = sim.cluster(0).token.clone();
    sim.shutdown().await;
    let sim = Sim::start(cfg).await.unwrap();
    assert_eq!(
        sim.cluster(0).token,
        token,
        "the token survives so kubeconfigs stay valid"
    );
    let h = Http::new(&sim, 0);
    let (c, v) = h
        .json("GET", "/api/v1/namespaces/keep/configmaps/c", Value::Null)
        .await;
    assert_eq!(c, 200);
    assert_eq!(v, cm);
    let (_, v) = h
        .json(
            "POST",
            "/api/v1/namespaces/keep/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}),
        )
        .await;
    let rv: u64 = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let old: u64 = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > old, "resourceVersions keep growing across restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_separates_spec_and_status_writes() {
    let sim = Sim::start(SimConfig {
        cluster: cluster_sim::ClusterConfig {
            controllers: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    let deps = "/apis/apps/v1/namespaces/d/deployments";
    let mut d = deployment("web");
    d["status"] = json!({"replicas": 9});
    let (_, v) = h.json("POST", deps, d).await;
    assert!(
        v.get("status").is_none(),
        "status is dropped on create: {v}"
    );
    let (c, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web/status"),
            "application/merge-patch+json",
            br#"{"status":{"replicas":2},"spec":{"replicas":7}}"#.to_vec(),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["status"]["replicas"], 2);
    assert_eq!(v["spec"]["replicas"], 1, "a status write leaves spec alone");
    assert_eq!(v["metadata"]["generation"], 1);
    let (_, v, _) = h
        .send(
            "PATCH",
            &format!("{deps}/web"),
            "application/merge-patch+json",
            br#"{"status":{"replicas":5},"spec":{"replicas":3}}"#.to_vec(),
        )
        .await;
    assert_eq!(v["spec"]["replicas"], 3);
    assert_eq!(
        v["status"]["replicas"], 2,
        "a main-resource write leaves status alone"
    );
    let (c, _) = h
        .json(
            "GET",
            "/api/v1/namespaces/d/configmaps/x/status",
            Value::Null,
        )
        .await;
    assert_eq!(c, 404, "kinds without a status subresource have no /status");
    let (c, v) = h
        .json("DELETE", &format!("{deps}/web/status"), Value::Null)
        .await;
    assert_status(c, &v, 405, "MethodNotAllowed", "does not allow this method");
    assert_eq!(
        h.json("GET", &format!("{deps}/web"), Value::Null).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_reads_and_writes_the_parent() {
    let sim = Sim::start(SimConfig {
        cluster: cluster_sim::ClusterConfig {
            controllers: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http::new(&sim, 0);
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let (c, created) = h.json("POST", deps, deployment("web")).await;
    assert_eq!(c, 201, "{created}");
    let (c, scale) = h
        .json("GET", &format!("{deps}/web/scale"), Value::Null)
        .await;
    assert_eq!(c, 200, "{scale}");
    assert_eq!(
        scale,
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "web", "namespace": "default", "uid": created["metadata"]["uid"],
                "resourceVersion": created["metadata"]["resourceVersion"],
                "creationTimestamp": created["metadata"]["creationTimestamp"]},
            "spec": {"replicas": 1}, "status": {"replicas": 0, "selector": "app=web"}})
    );
    let mut put = scale.clone();
    put["spec"]["replicas"] = json!(4);
    let (c, v) = h
        .json("PUT", &format!("{deps}/web/scale"), put.clone())
        .await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["spec"]["replicas"], 4);
    let (_, d) = h.json("GET", &format!("{deps}/web"), Value::Null).await;
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
    let scaler = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subresource"] == "scale")
        .expect("a managedFields entry for the scale subresource");
    assert!(
        scaler["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{scaler}"
    );
    // The old resourceVersion is stale now.
    let (c, v) = h.json("PUT", &format!("{deps}/web/scale"), put).await;
    assert_status(c, &v, 409, "Conflict", "the object has been modified");
    let (c, v) = h
        .json(
            "POST",
            &format!("{deps}/web/scale"),
            json!({"spec": {"replicas": 1}}),
        )
        .await;
    assert_status(c, &v, 405, "MethodNotAllowed", "does not allow this method");
    let (c, _) = h
        .json(
            "GET",
            "/apis/apps/v1/namespaces/default/daemonsets/x/scale",
            Value::Null,
        )
        .await;
    assert_eq!(c, 404, "DaemonSets have no /scale");
    let (c, v) = h
        .json(
            "POST",
            "/api/v1/namespaces/default/pods/p/eviction",
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}),
        )
        .await;
    assert_status(
        c,
        &v,
        404,
        "NotFound",
        "could not find the requested resource",
    );
    let log = sim.cluster(0).write_log();
    let scale_writes: Vec<(&str, Option<&str>, u16)> = log
        .iter()
        .filter(|w| w.subresource.as_deref() == Some("scale"))
        .map(|w| (w.verb.as_str(), w.name.as_deref(), w.code))
        .collect();
    assert_eq!(
        scale_writes,
        [("update", Some("web"), 200), ("update", Some("web"), 409)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watches_get_bookmarks_with_the_current_resource_version() {
    let cfg = cluster_sim::ClusterConfig {
        bookmark_interval: Duration::from_millis(200),
        controllers: false,
        ..Default::default()
    };
    let sim = Sim::start(SimConfig {
        cluster: cfg,
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Http::new(&sim, 0);
    h.json(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}),
    )
    .await;
    let rv = sim.cluster(0).state.lock().rv;
    let r =
        h.c.get(format!(
            "{}/api/v1/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rv}",
            h.base
        ))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    use futures::StreamExt;
    let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("a bookmark arrives")
        .unwrap()
        .unwrap();
    let ev: Value = serde_json::from_slice(chunk.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(ev["object"]["kind"], "ConfigMap");
    assert_eq!(ev["object"]["apiVersion"], "v1");
    assert_eq!(ev["object"]["metadata"]["resourceVersion"], rv.to_string());
}
