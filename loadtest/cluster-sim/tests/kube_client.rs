//! The same behaviours through the `kube` crate the engine uses: watcher order, relist
//! after a forced 410, and server-side apply through `Patch::Apply`.

mod common;

use std::time::Duration;

use common::{Env, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;

async fn client(env: &Env) -> kube::Client {
    let kc = Kubeconfig::from_yaml(&env.sim.kubeconfig()).expect("kubeconfig parses");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(cfg).expect("kube client")
}

async fn namespace(client: &kube::Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .expect("namespace");
}

fn cm(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": v}})).unwrap()
}

/// Renders watcher events as short strings: `apply a=1`, `delete a`, `init`, `init-apply b=2`, `init-done`.
fn spawn_watcher(api: Api<ConfigMap>, cfg: watcher::Config) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = watcher(api, cfg).boxed();
        while let Some(e) = s.next().await {
            let line = match e {
                Ok(watcher::Event::Apply(o)) => format!(
                    "apply {}={}",
                    o.metadata.name.unwrap(),
                    o.data.unwrap()["v"]
                ),
                Ok(watcher::Event::Delete(o)) => format!("delete {}", o.metadata.name.unwrap()),
                Ok(watcher::Event::Init) => "init".into(),
                Ok(watcher::Event::InitApply(o)) => format!(
                    "init-apply {}={}",
                    o.metadata.name.unwrap(),
                    o.data.unwrap()["v"]
                ),
                Ok(watcher::Event::InitDone) => "init-done".into(),
                Err(e) => format!("error {e}"),
            };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next_lines(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(l)) if l.starts_with("error") => continue,
            Ok(Some(l)) => out.push(l),
            other => panic!("watcher stopped early ({other:?}); got {out:?}"),
        }
    }
    out
}

async fn watcher_sees_every_change_and_relists_after_410(strategy: watcher::InitialListStrategy) {
    let env = Env::start(true).await;
    let c = client(&env).await;
    namespace(&c, "w").await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "w");
    api.create(&PostParams::default(), &cm("a", "0"))
        .await
        .unwrap();
    // The test's own ConfigMaps, not the kube-root-ca.crt every namespace holds.
    let mut rx = spawn_watcher(
        api.clone(),
        watcher::Config {
            initial_list_strategy: strategy,
            ..Default::default()
        }
        .fields("metadata.name!=kube-root-ca.crt"),
    );
    assert_eq!(
        next_lines(&mut rx, 3).await,
        vec!["init", "init-apply a=0", "init-done"]
    );
    eventually(30, "the watch to open", || async {
        (env.sim.cluster(0).active_watches() > 0).then_some(())
    })
    .await;

    for i in 1..=3 {
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    api.create(&PostParams::default(), &cm("b", "9"))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        next_lines(&mut rx, 5).await,
        vec![
            "apply a=1",
            "apply a=2",
            "apply a=3",
            "apply b=9",
            "delete a"
        ]
    );

    // Compaction: the open watch gets 410 in-stream, and resuming is refused too.
    env.sim.cluster(0).compact();
    assert_eq!(
        next_lines(&mut rx, 3).await,
        vec!["init", "init-apply b=9", "init-done"],
        "relist after 410"
    );
    api.create(&PostParams::default(), &cm("c", "1"))
        .await
        .unwrap();
    assert_eq!(next_lines(&mut rx, 1).await, vec!["apply c=1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_list_watch() {
    watcher_sees_every_change_and_relists_after_410(watcher::InitialListStrategy::ListWatch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_streaming_list() {
    watcher_sees_every_change_and_relists_after_410(watcher::InitialListStrategy::StreamingList)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_records_managed_fields_and_conflicts() {
    let env = Env::start(true).await;
    let c = client(&env).await;
    namespace(&c, "s").await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "s");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"owned": "a", "shared": "s"}});
    let created = api
        .patch(
            "x",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&body),
        )
        .await
        .expect("apply creates");
    let mf = created.metadata.managed_fields.expect("managedFields");
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("argocd-controller"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&mf[0].fields_v1).unwrap();
    assert!(
        fields["f:data"]["f:owned"].is_object() && fields["f:data"]["f:shared"].is_object(),
        "{fields}"
    );

    // Another manager with the same value co-owns; a different value conflicts.
    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"shared": "s"}});
    api.patch("x", &PatchParams::apply("other"), &Patch::Apply(&same))
        .await
        .expect("co-ownership is no conflict");
    let clash = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"owned": "b"}});
    let err = api
        .patch("x", &PatchParams::apply("other"), &Patch::Apply(&clash))
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(
                s.message.contains("conflict with \"argocd-controller\"")
                    && s.message.contains(".data.owned"),
                "{}",
                s.message
            );
        }
        e => panic!("expected an API conflict, got {e}"),
    }
    assert_eq!(
        api.get("x").await.unwrap().data.unwrap()["owned"],
        "a",
        "a refused apply changes nothing"
    );
    let forced = api
        .patch(
            "x",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&clash),
        )
        .await
        .expect("force wins");
    assert_eq!(forced.data.unwrap()["owned"], "b");

    // Dropping a field from the applied set removes it when nobody else owns it.
    let fewer = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"shared": "s"}});
    let after = api
        .patch(
            "x",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&fewer),
        )
        .await
        .unwrap();
    let data = after.data.unwrap();
    assert_eq!(
        data.get("owned").map(String::as_str),
        Some("b"),
        "owned by `other` now, so kept"
    );
    assert_eq!(data["shared"], "s");
}
