//! TLS for https repositories, as Argo CD sets it up: a repository's client certificate
//! (`tlsClientCertData` and `tlsClientCertKey`), extra CA certificates per server name
//! (Argo CD's `argocd-tls-certs-cm`, mounted as one PEM file per host name), and `insecure`
//! to skip verification. Applied to the HTTP client of one mirror's fetches only.

use std::path::{Path, PathBuf};

use gitfleet_model::{Redacted, Repository};

/// Where Argo CD mounts `argocd-tls-certs-cm`: `$ARGOCD_TLS_DATA_PATH`, else
/// `/app/config/tls` (Argo CD's `util/cert` default). Each file is named by a server's host
/// name and holds PEM certificates trusted for it, besides the system's.
pub fn default_certs_dir() -> PathBuf {
    match std::env::var_os("ARGOCD_TLS_DATA_PATH") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/app/config/tls"),
    }
}

/// A repository's TLS settings: its client certificate and whether the server's
/// certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsCredentials {
    /// The client certificate chain (PEM) and its private key (PEM, [`Redacted`]).
    client: Option<(String, Redacted<String>)>,
    /// Argo CD's `insecure`: the server's certificate is not verified.
    insecure: bool,
}

/// Why the TLS settings could not be used; never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("tlsClientCertData and tlsClientCertKey are not a usable PEM certificate and key")]
    ClientCertificate,
    #[error("the CA certificates for {host} in {path} are not usable PEM: {message}")]
    CaFile {
        host: String,
        path: String,
        message: String,
    },
}

impl TlsCredentials {
    /// The TLS settings of a `repositories` entry or credential template; `None` when it
    /// has neither a client certificate nor `insecure`.
    pub fn of_repository(entry: &Repository) -> Option<Self> {
        let key = entry
            .tls_client_cert_key
            .as_ref()
            .map(|k| k.expose().clone())
            .unwrap_or_default();
        let client = (!entry.tls_client_cert_data.trim().is_empty() && !key.trim().is_empty())
            .then(|| (entry.tls_client_cert_data.clone(), Redacted::new(key)));
        let credentials = TlsCredentials {
            client,
            insecure: entry.insecure,
        };
        (credentials != TlsCredentials::default()).then_some(credentials)
    }

    pub fn with_client_certificate(cert_pem: &str, key_pem: &str) -> Self {
        TlsCredentials {
            client: Some((cert_pem.to_owned(), Redacted::new(key_pem.to_owned()))),
            insecure: false,
        }
    }

    pub fn insecure() -> Self {
        TlsCredentials {
            client: None,
            insecure: true,
        }
    }
}

/// Sets up `builder` for a fetch from `host`: the CA certificates of `certs_dir/<host>`
/// (if that file exists) trusted besides the system's, the client certificate presented,
/// verification off when `insecure`.
pub fn configure(
    mut builder: reqwest::blocking::ClientBuilder,
    host: &str,
    certs_dir: &Path,
    credentials: Option<&TlsCredentials>,
) -> Result<reqwest::blocking::ClientBuilder, TlsError> {
    let ca_path = certs_dir.join(host);
    // A host name with a path separator cannot name a file of the folder.
    if !host.is_empty() && !host.contains('/') && ca_path.is_file() {
        let ca_error = |message: String| TlsError::CaFile {
            host: host.to_owned(),
            path: ca_path.display().to_string(),
            message,
        };
        let pem = std::fs::read(&ca_path).map_err(|e| ca_error(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no certificate in it".to_owned()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if let Some(credentials) = credentials {
        if let Some((cert, key)) = &credentials.client {
            // reqwest's error would not echo the key, but there is nothing in it worth the
            // risk: the message says which fields to check.
            let pem = format!("{}\n{}\n", cert.trim_end(), key.expose().trim_end());
            let identity = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|_| TlsError::ClientCertificate)?;
            builder = builder.identity(identity);
        }
        if credentials.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_give_client_certificates_and_insecure() {
        let mut entry = Repository {
            repo: "https://git.example.com/org/repo.git".into(),
            ..Repository::default()
        };
        assert_eq!(TlsCredentials::of_repository(&entry), None);
        entry.tls_client_cert_data = "CERT".into();
        // A certificate without its key is no client certificate.
        assert_eq!(TlsCredentials::of_repository(&entry), None);
        entry.tls_client_cert_key = Some(Redacted::new("SECRET-KEY".into()));
        let tls = TlsCredentials::of_repository(&entry).unwrap();
        assert!(!format!("{tls:?}").contains("SECRET-KEY"));
        entry.tls_client_cert_data.clear();
        entry.insecure = true;
        assert_eq!(
            TlsCredentials::of_repository(&entry),
            Some(TlsCredentials::insecure())
        );
    }

    #[test]
    fn unusable_pem_is_an_error_without_the_key() {
        let tls = TlsCredentials::with_client_certificate("not a cert", "SECRET-KEY");
        let err = configure(
            reqwest::blocking::ClientBuilder::new(),
            "h",
            Path::new("/nonexistent"),
            Some(&tls),
        )
        .unwrap_err();
        assert_eq!(err, TlsError::ClientCertificate);
        assert!(!err.to_string().contains("SECRET-KEY"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("git.example.com"), "garbage").unwrap();
        let err = configure(
            reqwest::blocking::ClientBuilder::new(),
            "git.example.com",
            dir.path(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("git.example.com"), "{err}");
    }
}
