//! gitfleet's `dependsOn` (`gitfleet.dev/depends-on`): a three-app chain created last app
//! first syncs first app first, each waiting (a condition says for what) until the one it
//! depends on is Synced and Healthy; a cycle never syncs and is named.

use std::time::Duration;

use gitfleet_e2e::{AUTOMATED, CONFIGMAP, DEPLOYMENT, Sandbox, Timings, application};
use serde_json::Value;

fn with_dependencies(name: &str, repo: &str, deps: &str) -> String {
    application(name, repo, name, Some(AUTOMATED)).replace(
        "  namespace: argocd\n",
        &format!("  namespace: argocd\n  annotations:\n    gitfleet.dev/depends-on: \"{deps}\"\n"),
    )
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a str> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["message"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_syncs_in_order_and_a_cycle_never() {
    Box::pin(async {
        let sb = Sandbox::start(
            &[
                ("first/deploy.yaml", DEPLOYMENT),
                ("second/deploy.yaml", DEPLOYMENT),
                ("third/deploy.yaml", DEPLOYMENT),
                ("ping/cm.yaml", CONFIGMAP),
                ("pong/cm.yaml", CONFIGMAP),
            ],
            Timings::default(),
        )
        .await;
        let repo = sb.repo_url();
        // Last first: without the annotation the third would sync at once.
        sb.create_app("third", &with_dependencies("third", &repo, "second"))
            .await;
        sb.create_app("second", &with_dependencies("second", &repo, "first"))
            .await;
        let waiting = sb
            .until_status("third", 60, "waiting for second", |s| {
                condition(s, "WaitingForDependencies").is_some()
            })
            .await;
        let message = condition(&waiting, "WaitingForDependencies").unwrap();
        assert!(message.contains("second ("), "{message}");
        assert!(sb.live("apps", "deployments", "third", "web").is_none());
        // Second is compared on its own time: wait for its verdict before reading it.
        sb.until_status("second", 60, "waiting for first", |s| {
            condition(s, "WaitingForDependencies").is_some()
        })
        .await;
        let out = sb.cli(&["app", "get", "second"]).await;
        assert!(
            out.stdout.contains("Depends On:") && out.stdout.contains("first"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("WaitingForDependencies")
                && out.stdout.contains("first (not found)"),
            "{}",
            out.stdout
        );

        sb.create_app(
            "first",
            &application("first", &repo, "first", Some(AUTOMATED)),
        )
        .await;
        for name in ["first", "second", "third"] {
            sb.until_status(name, 120, "Synced and Healthy", |s| {
                Sandbox::sync_status(s) == "Synced"
                    && Sandbox::health(s) == "Healthy"
                    && condition(s, "WaitingForDependencies").is_none()
            })
            .await;
        }
        // The write log: each Deployment applied after the one before it was ready.
        let applied = |ns: &str| sb.first_apply("deployments.apps", ns);
        let (a, b, c) = (applied("first"), applied("second"), applied("third"));
        assert!(
            a < b && b < c,
            "applied in order first {a}, second {b}, third {c}"
        );

        // A cycle is refused where it is made, the cycle named.
        sb.create_app("ping", &with_dependencies("ping", &repo, "pong"))
            .await;
        let f = sb.file("pong.yaml", &with_dependencies("pong", &repo, "ping"));
        let out = sb.cli(&["app", "create", "-f", &f]).await;
        assert_ne!(out.code, 0, "a cycle was created: {}", out.stdout);
        assert!(
            out.stdout.contains("dependency cycle pong -> ping -> pong"),
            "{}",
            out.stdout
        );
        // One made another way (written to the store, as an ApplicationSet or a parent app
        // writes apps) never syncs: the diff workers name it too.
        let pong = sb.file(
            "pong-plain.yaml",
            &application("pong", &repo, "pong", Some(AUTOMATED)),
        );
        let out = sb
            .cli(&["app", "create", "-f", &pong, "--depends-on", "ping"])
            .await;
        assert_ne!(
            out.code, 0,
            "--depends-on made the same cycle: {}",
            out.stdout
        );
        let mut app: gitfleet_model::Application =
            match gitfleet_model::from_yaml_str(&with_dependencies("pong", &repo, "ping")).unwrap()
            {
                gitfleet_model::Manifest::Application(a) => *a,
                other => panic!("{other:?}"),
            };
        app.status = None;
        let kv = sb.bus.kv(gitfleet_bus::Bucket::Applications).await.unwrap();
        kv.put(
            gitfleet_bus::subject_token("pong"),
            serde_json::to_vec(&app).unwrap().into(),
        )
        .await
        .unwrap();
        for (name, cycle) in [
            ("ping", "ping -> pong -> ping"),
            ("pong", "pong -> ping -> pong"),
        ] {
            let status = sb
                .until_status(name, 60, "the cycle named", |s| {
                    condition(s, "InvalidSpecError").is_some_and(|m| m.contains("cycle"))
                })
                .await;
            let message = condition(&status, "InvalidSpecError").unwrap();
            assert!(message.contains(cycle), "{message}");
        }
        // Given time to have synced, had it been allowed to.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(sb.live("", "configmaps", "ping", "web-config").is_none());
        assert!(sb.live("", "configmaps", "pong", "web-config").is_none());
    })
    .await;
}
