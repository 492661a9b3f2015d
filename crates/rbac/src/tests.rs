//! Each rule form of Argo CD's RBAC, decided as Argo CD decides it.

use gitfleet_model::{AppProject, JwtToken, ObjectMeta, ProjectRole};
use proptest::prelude::*;

use super::*;

async fn rbac(csv: &str, default_role: &str) -> Rbac {
    Rbac::new("policy.csv", csv, default_role, Vec::new())
        .await
        .unwrap()
}

fn user(name: &str, groups: &[&str]) -> Identity {
    Identity {
        subject: name.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// The seed's project, as Argo CD's overview writes it.
fn platform() -> AppProject {
    let mut p = AppProject {
        metadata: ObjectMeta::named("platform"),
        ..AppProject::default()
    };
    p.spec.roles = vec![ProjectRole {
        name: "app-developer".into(),
        policies: vec![
            "p, proj:platform:app-developer, applications, sync, platform/*, allow".into(),
            "p, proj:platform:app-developer, applications, get, platform/*, allow".into(),
        ],
        groups: vec!["myorg:platform-developers".into()],
        jwt_tokens: vec![JwtToken {
            iat: 1_700_000_000,
            exp: 0,
            id: "token-1".into(),
        }],
        ..ProjectRole::default()
    }];
    p
}

#[tokio::test]
async fn built_in_roles() {
    let r = rbac("", "").await;
    let admin = user("admin", &[]);
    assert!(r.enforce(&admin, None, "applications", "delete", "any/app"));
    assert!(r.enforce(&admin, None, "clusters", "update", "https://x"));
    let nobody = user("alice", &[]);
    assert!(!r.enforce(&nobody, None, "applications", "get", "p/a"));
    let r = rbac("g, alice, role:readonly", "").await;
    assert!(r.enforce(&nobody, None, "applications", "get", "p/a"));
    assert!(!r.enforce(&nobody, None, "applications", "sync", "p/a"));
}

#[tokio::test]
async fn deny_overrides_allow() {
    let r = rbac(
        "p, role:ops, applications, *, */*, allow\n\
         p, role:ops, applications, delete, prod/*, deny\n\
         g, bob, role:ops",
        "",
    )
    .await;
    let bob = user("bob", &[]);
    assert!(r.enforce(&bob, None, "applications", "delete", "staging/web"));
    assert!(!r.enforce(&bob, None, "applications", "delete", "prod/web"));
    assert!(r.enforce(&bob, None, "applications", "sync", "prod/web"));
    // A deny for the subject wins over role:admin's allow.
    let r = rbac("p, admin, clusters, delete, *, deny", "").await;
    assert!(!r.enforce(&user("admin", &[]), None, "clusters", "delete", "https://x"));
    assert!(r.enforce(&user("admin", &[]), None, "clusters", "create", "https://x"));
}

#[tokio::test]
async fn glob_objects() {
    let r = rbac(
        "p, carol, applications, get, team-*/*, allow\n\
         p, carol, applications, sync, team-a/web-?, allow\n\
         p, carol, applications, action/*, team-a/*, allow",
        "",
    )
    .await;
    let carol = user("carol", &[]);
    assert!(r.enforce(&carol, None, "applications", "get", "team-b/anything"));
    assert!(!r.enforce(&carol, None, "applications", "get", "other/anything"));
    assert!(r.enforce(&carol, None, "applications", "sync", "team-a/web-1"));
    assert!(!r.enforce(&carol, None, "applications", "sync", "team-a/web-10"));
    assert!(r.enforce(
        &carol,
        None,
        "applications",
        "action/apps/Deployment/restart",
        "team-a/web"
    ));
}

#[tokio::test]
async fn the_default_role_applies_to_everyone() {
    let r = rbac("", "role:readonly").await;
    let anyone = user("someone", &[]);
    assert!(r.enforce(&anyone, None, "projects", "get", "default"));
    assert!(!r.enforce(&anyone, None, "projects", "delete", "default"));
    let r = rbac("", "").await;
    assert!(!r.enforce(&anyone, None, "projects", "get", "default"));
}

#[tokio::test]
async fn sso_groups_map_to_roles() {
    let r = rbac(
        "g, myorg:admins, role:admin\np, myorg:viewers, applications, get, */*, allow",
        "",
    )
    .await;
    assert!(r.enforce(
        &user("dave@example.com", &["myorg:admins"]),
        None,
        "clusters",
        "delete",
        "https://x"
    ));
    // A group that is only a policy subject (no g line) is not tried, as in Argo CD.
    assert!(!r.enforce(
        &user("erin@example.com", &["myorg:viewers"]),
        None,
        "applications",
        "get",
        "p/a"
    ));
    assert!(!r.enforce(
        &user("frank@example.com", &["myorg:other"]),
        None,
        "clusters",
        "delete",
        "https://x"
    ));
}

/// Acceptance 3 of the front-door issue, at the policy level: a token of the seed's
/// `platform` project role `app-developer` can sync and get `platform/*` apps and
/// nothing else; an SSO group bound to the role gets the same.
#[tokio::test]
async fn a_project_role_token_acts_only_within_its_project() {
    let r = rbac("g, myorg:sre, role:readonly", "").await;
    let project = platform();
    let platform = r.for_project(&project).await.unwrap();
    let token = user("proj:platform:app-developer", &[]);
    assert!(r.enforce(
        &token,
        Some(&platform),
        "applications",
        "sync",
        "platform/web"
    ));
    assert!(r.enforce(
        &token,
        Some(&platform),
        "applications",
        "get",
        "platform/web"
    ));
    assert!(r.enforce(&token, Some(&platform), "projects", "get", "platform"));
    for action in ["delete", "create", "update", "override", "rollback"] {
        assert!(
            !r.enforce(
                &token,
                Some(&platform),
                "applications",
                action,
                "platform/web"
            ),
            "{action}"
        );
    }
    let mut other = AppProject::default_project("argocd");
    other.spec.roles = vec![];
    let other = r.for_project(&other).await.unwrap();
    assert!(!r.enforce(&token, Some(&other), "applications", "get", "default/web"));
    assert!(!r.enforce(&token, None, "clusters", "get", "https://x"));
    assert!(!r.enforce(&token, None, "projects", "delete", "platform"));

    let member = user("gina@example.com", &["myorg:platform-developers"]);
    assert!(r.enforce(
        &member,
        Some(&platform),
        "applications",
        "sync",
        "platform/web"
    ));
    assert!(!r.enforce(
        &member,
        Some(&platform),
        "applications",
        "delete",
        "platform/web"
    ));
    assert!(!r.enforce(&member, Some(&other), "applications", "sync", "default/web"));

    assert!(project_token_listed(
        &project,
        "app-developer",
        "token-1",
        0
    ));
    assert!(!project_token_listed(
        &project,
        "app-developer",
        "revoked",
        0
    ));
    assert!(!project_token_listed(&project, "nope", "token-1", 0));
}

#[tokio::test]
async fn user_denies_hold_against_project_roles() {
    let r = rbac(
        "p, proj:platform:app-developer, applications, sync, platform/frozen, deny",
        "",
    )
    .await;
    let platform = r.for_project(&platform()).await.unwrap();
    let token = user("proj:platform:app-developer", &[]);
    assert!(!r.enforce(
        &token,
        Some(&platform),
        "applications",
        "sync",
        "platform/frozen"
    ));
    assert!(r.enforce(
        &token,
        Some(&platform),
        "applications",
        "sync",
        "platform/web"
    ));
}

#[tokio::test]
async fn bad_policy_lines_are_named() {
    let err = Rbac::new(
        "argocd-rbac-cm policy.csv",
        "p, role:a, applications, get, */*, allow\n\n# fine\np, role:a, applications, get\n",
        "",
        Vec::new(),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.line, 4);
    assert_eq!(
        err.to_string(),
        "argocd-rbac-cm policy.csv line 4: a p line has 6 fields (p, subject, resource, action, object, effect), this one 4: \"p, role:a, applications, get\""
    );
    for (bad, message) in [
        ("x, a, b", "a line starts with p or g"),
        (
            "g, a",
            "a g line has 3 fields (g, member, role), this one 2",
        ),
        (
            "p, a, b, c, d, maybe",
            "the effect must be allow or deny, not \"maybe\"",
        ),
        ("p, \"a, b, c, d, allow", "a quoted field is not closed"),
    ] {
        let err = parse_policy("csv", bad).unwrap_err();
        assert_eq!(err.message, message, "{bad}");
    }
    // Quotes keep a comma inside a field.
    let rules = parse_policy("csv", "p, \"a,b\", applications, get, */*, allow").unwrap();
    assert_eq!(
        rules,
        [Rule::Policy([
            "a,b".into(),
            "applications".into(),
            "get".into(),
            "*/*".into(),
            "allow".into()
        ])]
    );
}

#[test]
fn the_project_of_a_request() {
    assert_eq!(project_of("applications", "platform/web"), Some("platform"));
    assert_eq!(project_of("applications", "web"), None);
    assert_eq!(project_of("projects", "platform"), Some("platform"));
    assert_eq!(
        project_of("clusters", "platform/https://x"),
        Some("platform")
    );
    assert_eq!(project_of("accounts", "a/b"), None);
    assert_eq!(
        project_role("proj:platform:app-developer"),
        Some(("platform", "app-developer"))
    );
    assert_eq!(project_role("proj:platform"), None);
    assert_eq!(project_role("admin"), None);
}

proptest! {
    #[test]
    fn the_policy_parser_never_panics(text in "\\PC*") {
        let _ = parse_policy("fuzz", &text);
    }

    #[test]
    fn policy_like_lines_never_panic(
        fields in prop::collection::vec("[a-z\"*/, :#-]{0,12}", 0..8)
    ) {
        let _ = parse_policy("fuzz", &fields.join(","));
    }
}
