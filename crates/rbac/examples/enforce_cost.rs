//! What one RBAC decision costs (casbin's matcher per policy line), for BENCHMARKS.md:
//! `cargo run --release -p gitfleet-rbac --example enforce_cost`.

use gitfleet_rbac::{Identity, Rbac};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rbac = Rbac::new(
        "policy.csv",
        "p, role:dev, applications, sync, team-*/*, allow\n\
         p, role:dev, applications, get, team-*/*, allow\n\
         g, myorg:devs, role:dev\n",
        "",
        Vec::new(),
    )
    .await
    .expect("the policy parses");
    // Allowed through a group: the subject is tried first, then the group.
    let who = Identity {
        subject: "dana".into(),
        groups: vec!["myorg:devs".into()],
    };
    let n: u32 = 50_000;
    let start = std::time::Instant::now();
    let mut allowed = 0;
    for i in 0..n {
        let object = format!("team-{}/app-{i}", i % 50);
        if rbac.enforce(&who, None, "applications", "get", &object) {
            allowed += 1;
        }
    }
    let took = start.elapsed();
    println!(
        "{n} decisions in {took:?} ({:?} each), {allowed} allowed",
        took / n
    );
}
