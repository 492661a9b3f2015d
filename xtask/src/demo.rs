//! The demo that `cargo xtask up` serves: a Git repository holding the guestbook, and
//! the Argo CD Application that points at it.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Creates the demo repository once (a bare repo served by git daemon, and a work tree
/// to edit and push from); returns its URL.
pub fn repo(state: &Path) -> Result<String> {
    let bare = state.join("git/demo.git");
    let work = state.join("demo-work");
    let url = "git://127.0.0.1:9418/demo.git".to_string();
    if bare.exists() {
        return Ok(url);
    }
    let git = |dir: &Path, args: &[&str]| -> Result<()> {
        let s = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=gitfleet demo",
                "-c",
                "user.email=demo@gitfleet.invalid",
            ])
            .args(args)
            .status()
            .with_context(|| format!("cannot run git {args:?}"))?;
        if !s.success() {
            bail!("git {args:?} failed in {}", dir.display());
        }
        Ok(())
    };
    git(
        &state.join("git"),
        &["init", "-q", "--bare", "--initial-branch=main", "demo.git"],
    )?;
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("guestbook"))?;
    for (file, body) in FILES {
        fs::write(work.join("guestbook").join(file), body)?;
    }
    git(&work, &["init", "-q", "--initial-branch=main"])?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-qm", "guestbook: first version"])?;
    git(
        &work,
        &[
            "remote",
            "add",
            "origin",
            bare.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    git(&work, &["push", "-q", "-u", "origin", "main"])?;
    Ok(url)
}

pub fn application(repo_url: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {repo_url}\n    targetRevision: main\n    path: guestbook\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n    syncOptions:\n    - CreateNamespace=true\n"
    )
}

const FILES: &[(&str, &str)] = &[
    (
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook-ui\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: guestbook-ui}\n  template:\n    metadata:\n      labels: {app: guestbook-ui}\n    spec:\n      containers:\n      - name: guestbook-ui\n        image: gcr.io/heptio-images/ks-guestbook-demo:0.2\n        ports:\n        - containerPort: 80\n",
    ),
    (
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: guestbook-ui\nspec:\n  selector: {app: guestbook-ui}\n  ports:\n  - port: 80\n    targetPort: 80\n",
    ),
    (
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: guestbook-config\ndata:\n  greeting: hello from gitfleet\n",
    ),
];
