//! Git fixtures of the git-watcher's tests: the shared ones from `gitfleet-gitkit`, plus
//! a typical repository.

#![allow(dead_code)]

pub use gitfleet_gitkit::*;

/// A typical repository: two apps, a branch, a lightweight and an annotated tag.
pub struct Fixture {
    pub upstream: Upstream,
    pub first: String,
    pub second: String,
    pub feature: String,
}

pub fn fixture() -> Fixture {
    let upstream = Upstream::new();
    upstream.write("apps/a/deploy.yaml", "kind: Deployment\n");
    upstream.write("apps/b/cm.yaml", "kind: ConfigMap\n");
    upstream.write("README.md", "hello\n");
    let first = upstream.commit("first");
    upstream.git(&["tag", "v1-light"]);
    upstream.git(&["tag", "-a", "v1", "-m", "release 1"]);
    upstream.write("apps/a/deploy.yaml", "kind: Deployment\nspec: {}\n");
    let second = upstream.commit("second");
    upstream.git(&["checkout", "--quiet", "-b", "feature"]);
    upstream.write("apps/b/extra.yaml", "kind: Service\n");
    let feature = upstream.commit("feature work");
    upstream.git(&["checkout", "--quiet", "main"]);
    upstream.push_all();
    Fixture {
        upstream,
        first,
        second,
        feature,
    }
}
