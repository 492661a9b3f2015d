//! Credentials never reach `Debug` output (and so never a log line), while serde still
//! carries them.

use gitfleet_model::*;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.very-secret-token";
const KEY: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCmtleQ==";
const PASSWORD: &str = "correct-horse-battery-staple";
const SSH_KEY: &str =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----";

fn assert_hidden(debug: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !debug.contains(secret),
            "secret {secret:?} printed in {debug}"
        );
    }
    assert!(debug.contains(REDACTED), "{debug}");
}

#[test]
fn cluster_debug_hides_token_and_key() {
    let yaml = format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: prod
  labels: {{argocd.argoproj.io/secret-type: cluster}}
stringData:
  server: https://prod.example.com
  config: '{{\"username\": \"admin\", \"password\": \"{PASSWORD}\", \"bearerToken\": \"{TOKEN}\", \"tlsClientConfig\": {{\"keyData\": \"{KEY}\", \"caData\": \"Q0E=\"}}}}'
"
    );
    let cluster = from_yaml_str(&yaml).unwrap().into_cluster().unwrap();
    assert_eq!(
        cluster.config.bearer_token.as_ref().unwrap().expose(),
        TOKEN
    );
    assert_eq!(
        cluster
            .config
            .tls_client_config
            .key_data
            .as_ref()
            .unwrap()
            .expose(),
        KEY
    );
    assert_eq!(cluster.config.password.as_ref().unwrap().expose(), PASSWORD);
    let debug = format!("{cluster:?} {cluster:#?}");
    assert_hidden(&debug, &[TOKEN, KEY, PASSWORD]);
    assert!(
        debug.contains("Q0E="),
        "non-secret fields still print: {debug}"
    );
    assert!(debug.contains("admin"), "{debug}");
    // The manifest wrapper and the raw Secret hide them too.
    let manifest = from_yaml_str(&yaml).unwrap();
    assert_hidden(&format!("{manifest:?}"), &[TOKEN, KEY, PASSWORD]);
    let raw: SecretManifest = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_hidden(&format!("{raw:?}"), &[TOKEN, KEY, PASSWORD]);
    // Serde keeps the real values.
    let json = serde_json::to_string(&cluster).unwrap();
    assert!(json.contains(TOKEN) && json.contains(KEY) && json.contains(PASSWORD));
}

#[test]
fn repository_debug_hides_credentials() {
    let repo = Repository {
        repo: "git@github.com:org/repo.git".into(),
        username: "git".into(),
        password: Some(Redacted::new(PASSWORD.to_owned())),
        ssh_private_key: Some(Redacted::new(SSH_KEY.to_owned())),
        tls_client_cert_key: Some(Redacted::new(KEY.to_owned())),
        bearer_token: Some(Redacted::new(TOKEN.to_owned())),
        ..Repository::default()
    };
    let debug = format!("{repo:?} {repo:#?}");
    assert_hidden(&debug, &[PASSWORD, SSH_KEY, "OPENSSH", KEY, TOKEN]);
    assert!(debug.contains("git@github.com:org/repo.git"), "{debug}");
    let yaml = serde_yaml_ng::to_string(&repo).unwrap();
    assert!(yaml.contains(PASSWORD), "{yaml}");
    assert_eq!(serde_yaml_ng::from_str::<Repository>(&yaml).unwrap(), repo);
}

#[test]
fn secret_errors_do_not_quote_credentials() {
    let yaml = format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: prod
  labels: {{argocd.argoproj.io/secret-type: cluster}}
stringData:
  server: https://prod.example.com
  config: '{{\"bearerToken\": \"{TOKEN}\", \"tlsClientConfig\": {{\"insecure\": \"{TOKEN}\"}}}}'
"
    );
    let err = from_yaml_str(&yaml).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(TOKEN), "{err}");
}
