//! Smart HTTP against the real `git http-backend`, behind a minimal CGI server written
//! here, with and without basic authentication.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::fixture;
use git_watcher::{GitError, Mirrors, MirrorsConfig, RepoCredentials, TlsCredentials};
use tokio_rustls::rustls;

/// Serves `git http-backend` for a directory on a loopback port until the test process ends.
struct HttpGit {
    port: u16,
    /// Requests answered with 401, to prove the credentials path was taken.
    challenged: Arc<AtomicUsize>,
}

impl HttpGit {
    fn serve(root: &Path, basic_auth: Option<(&str, &str)>) -> HttpGit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let root = root.to_owned();
        let expected =
            basic_auth.map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));
        let challenged = Arc::new(AtomicUsize::new(0));
        let counter = challenged.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (root, expected, counter) = (root.clone(), expected.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &root, expected.as_deref(), &counter);
                });
            }
        });
        HttpGit { port, challenged }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// The same over TLS: every connection a handshake with `tls` first (one that fails
    /// ends the connection).
    fn serve_tls(root: &Path, tls: Arc<rustls::ServerConfig>) -> HttpGit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let root = root.to_owned();
        let challenged = Arc::new(AtomicUsize::new(0));
        let counter = challenged.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (root, tls, counter) = (root.clone(), tls.clone(), counter.clone());
                std::thread::spawn(move || {
                    let Ok(connection) = rustls::ServerConnection::new(tls) else {
                        return;
                    };
                    let stream = rustls::StreamOwned::new(connection, stream);
                    let _ = handle(stream, &root, None, &counter);
                });
            }
        });
        HttpGit { port, challenged }
    }
}

/// A CA the system does not know, a server certificate for 127.0.0.1 and a client
/// certificate, both signed by it.
struct TestPki {
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    fn generate() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gitfleet test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "gitfleet");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![server_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let server = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            server: Arc::new(server),
        }
    }
}

fn handle(
    stream: impl Read + Write,
    root: &Path,
    expected_auth: Option<&str>,
    challenged: &AtomicUsize,
) -> std::io::Result<()> {
    // One request at a time: the answer is written before the next request is read.
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            read_chunked(&mut reader)?
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            body
        };

        if let Some(expected) = expected_auth
            && header("authorization").as_deref() != Some(expected)
        {
            challenged.fetch_add(1, Ordering::SeqCst);
            reader.get_mut().write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n",
            )?;
            continue;
        }

        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
            .env(
                "HTTP_CONTENT_ENCODING",
                header("content-encoding").unwrap_or_default(),
            )
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let writer_thread = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let output = child.wait_with_output()?;
        let _ = writer_thread.join();

        let cgi = output.stdout;
        let split = find(&cgi, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(&cgi, b"\n\n").map(|i| (i, 2)));
        let Some((end, sep)) = split else {
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        let mut status = "200 OK".to_owned();
        let mut response_headers = String::new();
        for line in String::from_utf8_lossy(&cgi[..end]).lines() {
            match line.split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                    status = value.trim().to_owned()
                }
                Some(_) => response_headers.push_str(&format!("{line}\r\n")),
                None => {}
            }
        }
        let body = &cgi[end + sep..];
        reader.get_mut().write_all(
            format!(
                "HTTP/1.1 {status}\r\n{response_headers}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )?;
        reader.get_mut().write_all(body)?;
        reader.get_mut().flush()?;
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        if size == 0 {
            // Trailer section: read up to the empty line.
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 && !line.trim_end().is_empty() {
                line.clear();
            }
            return Ok(body);
        }
        reader.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk[..size]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn fetches_over_smart_http() {
    let fx = fixture();
    let server = HttpGit::serve(&fx.upstream.base(), None);
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(root.path());
    let mirror = mirrors.mirror(&server.url("origin.git")).unwrap();

    let outcome = mirror.fetch().await.unwrap();
    assert_eq!(outcome.default_branch.as_deref(), Some("refs/heads/main"));
    assert_eq!(mirror.resolve("HEAD").unwrap().commit, fx.second);
    assert_eq!(mirror.resolve("v1").unwrap().commit, fx.first);

    fx.upstream.write("apps/a/more.yaml", "x: 1\n");
    let next = fx.upstream.commit("more");
    fx.upstream.push_all();
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("main").unwrap().commit, next);
    assert_eq!(
        mirror.changed_paths(&fx.second, &next).unwrap(),
        ["apps/a/more.yaml"]
    );
}

#[tokio::test]
async fn basic_auth_uses_the_given_credentials_and_never_shows_them() {
    let fx = fixture();
    let server = HttpGit::serve(&fx.upstream.base(), Some(("alice", "s3cret")));
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(root.path());
    let url = server.url("origin.git");
    let mirror = mirrors.mirror(&url).unwrap();

    // No credentials: refused, and no prompt or host credential helper is consulted.
    let err = mirror.fetch().await.unwrap_err();
    assert!(
        matches!(err, GitError::FetchFailed { ref repo, .. } if *repo == url),
        "{err}"
    );

    mirror.set_credentials(Some(RepoCredentials::new("alice", "wrong")));
    let err = mirror.fetch().await.unwrap_err();
    assert!(matches!(err, GitError::FetchFailed { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    assert!(err.to_string().contains("not accepted"), "{err}");

    let creds = RepoCredentials::new("alice", "s3cret");
    assert!(!format!("{creds:?}").contains("s3cret"));
    mirror.set_credentials(Some(creds));
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("main").unwrap().commit, fx.second);
    assert!(server.challenged.load(Ordering::SeqCst) >= 2);

    // Credentials written into the URL work the same, and stay out of names and messages.
    let root2 = tempfile::tempdir().unwrap();
    let mirrors2 = Mirrors::new(root2.path());
    let with_secret = format!("http://alice:s3cret@127.0.0.1:{}/origin.git", server.port);
    let mirror2 = mirrors2.mirror(&with_secret).unwrap();
    assert_eq!(mirror2.url().as_str(), url);
    mirror2.fetch().await.unwrap();
    assert_eq!(mirror2.resolve("feature").unwrap().commit, fx.feature);
    let err = mirror2.resolve("nope").unwrap_err().to_string();
    assert_eq!(err, format!("revision \"nope\" not found in {url}"));
    assert!(!format!("{mirror2:?}").contains("s3cret"));
}

/// https to a server whose CA the system does not trust and that asks for a client
/// certificate: refused until the CA is in the TLS certificates folder under the host's
/// name (Argo CD's `argocd-tls-certs-cm`), then until the repository's client certificate
/// is presented; `insecure` skips the server check, not the client certificate. No message
/// shows the key.
#[tokio::test]
async fn https_with_a_private_ca_and_a_client_certificate() {
    let fx = fixture();
    let pki = TestPki::generate();
    let server = HttpGit::serve_tls(&fx.upstream.base(), pki.server.clone());
    let url = format!("https://127.0.0.1:{}/origin.git", server.port);
    let certs = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::with_config(
        root.path(),
        MirrorsConfig {
            tls_certs_dir: certs.path().to_owned(),
            ..MirrorsConfig::default()
        },
    );
    let mirror = mirrors.mirror(&url).unwrap();
    let key_line = pki.client_key_pem.lines().nth(1).unwrap().to_owned();
    let client = TlsCredentials::with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem);

    // The server's certificate is not trusted.
    let err = mirror.fetch().await.unwrap_err().to_string();
    assert!(err.contains(&url) && err.contains("UnknownIssuer"), "{err}");

    // Trusted once the CA is there for the host; refused without a client certificate.
    std::fs::write(certs.path().join("127.0.0.1"), &pki.ca_pem).unwrap();
    let err = mirror.fetch().await.unwrap_err().to_string();
    assert!(err.contains("CertificateRequired"), "{err}");

    mirror.set_tls_credentials(Some(client.clone()));
    mirror.fetch().await.unwrap();
    assert_eq!(mirror.resolve("main").unwrap().commit, fx.second);

    // A key that is not one: a clear error that names the fields and shows nothing of it.
    mirror.set_tls_credentials(Some(TlsCredentials::with_client_certificate(
        &pki.client_cert_pem,
        &pki.client_key_pem.replace("PRIVATE KEY", "NOT A KEY"),
    )));
    let err = mirror.fetch().await.unwrap_err().to_string();
    assert!(err.contains("tlsClientCertKey"), "{err}");
    assert!(!err.contains(&key_line), "{err}");

    // Without the CA: `insecure` gets through the server check, with the certificate.
    let root2 = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mirrors2 = Mirrors::with_config(
        root2.path(),
        MirrorsConfig {
            tls_certs_dir: empty.path().to_owned(),
            ..MirrorsConfig::default()
        },
    );
    let insecure = mirrors2.mirror(&url).unwrap();
    insecure.set_tls_credentials(Some(TlsCredentials::insecure()));
    let err = insecure.fetch().await.unwrap_err().to_string();
    assert!(err.contains("CertificateRequired"), "{err}");
    let both = gitfleet_model::Repository {
        tls_client_cert_data: pki.client_cert_pem.clone(),
        tls_client_cert_key: Some(gitfleet_model::Redacted::new(pki.client_key_pem.clone())),
        insecure: true,
        ..Default::default()
    };
    insecure.set_tls_credentials(TlsCredentials::of_repository(&both));
    insecure.fetch().await.unwrap();
    assert_eq!(insecure.resolve("v1").unwrap().commit, fx.first);
}

/// Argo CD's credential templates (`repo-creds`): a repository with no entry of its own
/// fetches with the template whose URL is the longest prefix of its URL (case aside), not
/// a shorter one; no password shows in any answer on the way.
#[tokio::test]
async fn credential_templates_match_by_the_longest_url_prefix() {
    use gitfleet_bus::{Bucket, testkit};
    use gitfleet_messages::{ResolveRequest, Resolved};
    use std::time::Duration;

    let fx = fixture();
    let server = HttpGit::serve(&fx.upstream.base(), Some(("alice", "s3cret")));
    let url = server.url("origin.git");
    let bus = testkit::bus().await;
    let mirrors = tempfile::tempdir().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = git_watcher::start(
        git_watcher::Config::new(mirrors.path()),
        bus.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let running = tokio::spawn(service.wait());
    let templates = bus.kv(Bucket::RepoCreds).await.unwrap();
    let put = |key: &'static str, prefix: String, password: &'static str| {
        let templates = templates.clone();
        async move {
            let value =
                serde_json::json!({"repo": prefix, "username": "alice", "password": password});
            templates
                .put(key, serde_json::to_vec(&value).unwrap().into())
                .await
                .unwrap();
        }
    };
    // The host's template is wrong; the longer one for the same host is right, and
    // spelled in another case than the app's URL, which still matches.
    put("host", format!("http://127.0.0.1:{}", server.port), "wrong").await;
    put(
        "origin",
        format!("HTTP://127.0.0.1:{}/Orig", server.port),
        "s3cret",
    )
    .await;
    let resolve = || {
        let bus = bus.clone();
        let url = url.clone();
        async move {
            bus.ask::<_, Resolved>(
                "git watcher",
                bus.topology.git_resolve_subject(),
                &ResolveRequest {
                    repo: url,
                    revision: "main".into(),
                    chart: String::new(),
                },
                Duration::from_secs(30),
            )
            .await
        }
    };
    // The watch delivers the templates shortly after they are written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let resolved = loop {
        match resolve().await {
            Ok(resolved) => break resolved,
            Err(err) => {
                assert!(
                    !err.message.contains("s3cret") && !err.message.contains("wrong"),
                    "{err}"
                );
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never resolved: {err}"
                );
                // Poll interval of a wait bounded by the deadline above.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(resolved.commit, fx.second);

    shutdown.cancel();
    let _ = running.await;
}
