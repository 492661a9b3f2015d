//! Sessions, as `argocd` keeps them: `login` asks the server for a token and stores it per
//! server in the CLI's config file (mode 0600); every call carries the token, from
//! `--auth-token` (or `GITFLEET_AUTH_TOKEN` / `ARGOCD_AUTH_TOKEN`) or that file.
//! `account` and `admin initial-password` live here too.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use gitfleet_bus::cli::BusArgs;
use gitfleet_proto::v1::account_service_client::AccountServiceClient;
use gitfleet_proto::v1::session_service_client::SessionServiceClient;
use gitfleet_proto::v1::*;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::output;

/// A connection to the gateway whose calls carry the session token, if any.
pub type Conn = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    pub fn new(token: Option<&str>) -> Result<Self> {
        token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {}", t.trim()))
                    .map_err(|_| Error::Usage("the auth token is not printable ASCII".into()))
            })
            .transpose()
            .map(Self)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// The CLI's config file: a token per server.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(
        default,
        rename = "current-context",
        skip_serializing_if = "String::is_empty"
    )]
    current_context: String,
    #[serde(default)]
    contexts: BTreeMap<String, Context>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Context {
    #[serde(rename = "auth-token")]
    auth_token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    username: String,
}

/// `$GITFLEET_CONFIG`, else `~/.config/gitfleet/config`.
pub fn default_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GITFLEET_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".config").join("gitfleet").join("config")
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{}: not a gitfleet config file: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn write_config(path: &Path, config: &ConfigFile) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let text = serde_json::to_string_pretty(config)?;
    // The file holds tokens: only its owner may read it, from the first byte on.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The token stored for `server` by `login`, if any.
pub fn stored_token(path: &Path, server: &str) -> Result<Option<String>> {
    Ok(read_config(path)?
        .contexts
        .remove(server)
        .map(|c| c.auth_token)
        .filter(|t| !t.is_empty()))
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Prefer `GITFLEET_PASSWORD`, or typing it on stdin: arguments show in `ps`.
    #[arg(long, env = "GITFLEET_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

pub async fn login(
    args: &LoginArgs,
    server: &str,
    config: &Path,
    conn: Conn,
    out: &mut dyn Write,
) -> Result<i32> {
    let password = match &args.password {
        Some(p) => p.clone(),
        None => {
            output::write(out, "Password: ")?;
            out.flush().ok();
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Error::io("reading the password from stdin", e))?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    let token = SessionServiceClient::new(conn)
        .create(SessionCreateRequest {
            username: args.username.clone(),
            password,
        })
        .await?
        .into_inner()
        .token;
    let mut file = read_config(config)?;
    file.contexts.insert(
        server.to_owned(),
        Context {
            auth_token: token,
            username: args.username.clone(),
        },
    );
    file.current_context = server.to_owned();
    write_config(config, &file)?;
    output::write(
        out,
        &format!(
            "'{}:login' logged in successfully\nContext '{server}' updated\n",
            args.username
        ),
    )?;
    Ok(0)
}

/// Ends the stored session on the server (its token is refused from then on, as Argo
/// CD's `logout` revokes it), then forgets it here, even when the server cannot be
/// reached (said, not hidden).
pub async fn logout(server: &str, config: &Path, out: &mut dyn Write) -> Result<i32> {
    let mut file = read_config(config)?;
    let Some(token) = stored_token(config, server)? else {
        return Err(Error::Usage(format!("not logged in to {server}")));
    };
    let revoked = match crate::connect(server, Some(&token)).await {
        Ok(conn) => SessionServiceClient::new(conn)
            .delete(SessionDeleteRequest {})
            .await
            .map(drop)
            .map_err(|s| s.message().to_owned()),
        Err(e) => Err(e.to_string()),
    };
    file.contexts.remove(server);
    write_config(config, &file)?;
    if let Err(why) = revoked {
        output::write(
            out,
            &format!(
                "warning: the session could not be ended on the server ({why}); forgotten here only\n"
            ),
        )?;
    }
    output::write(out, &format!("Logged out from '{server}'\n"))?;
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Who the current session is.
    GetUserInfo,
    /// Whether the current session may ACTION the RESOURCE SUBRESOURCE, e.g.
    /// `can-i sync applications 'default/*'`: prints yes or no.
    CanI {
        action: String,
        resource: String,
        subresource: String,
    },
    /// Change a local account's password (your own by default); your sessions from
    /// before stop working: log in again.
    UpdatePassword {
        #[arg(long)]
        account: Option<String>,
        /// Prefer `GITFLEET_CURRENT_PASSWORD`: arguments show in `ps`.
        #[arg(long, env = "GITFLEET_CURRENT_PASSWORD", hide_env_values = true)]
        current_password: String,
        /// Prefer `GITFLEET_NEW_PASSWORD`.
        #[arg(long, env = "GITFLEET_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// Print a new API token for a local account with the apiKey capability (your own by
    /// default).
    GenerateToken {
        #[arg(short = 'a', long)]
        account: Option<String>,
        /// How long it lasts (e.g. `24h`, `30d`); never expires by default.
        #[arg(short = 'e', long)]
        expires_in: Option<String>,
        /// The token's id (generated by default); `delete-token` takes it.
        #[arg(long)]
        id: Option<String>,
    },
    /// Revoke an account's API token by id (your own account by default).
    DeleteToken {
        #[arg(short = 'a', long)]
        account: Option<String>,
        id: String,
    },
}

pub async fn account(cmd: &AccountCommand, conn: Conn, out: &mut dyn Write) -> Result<i32> {
    match cmd {
        AccountCommand::GetUserInfo => {
            let info = SessionServiceClient::new(conn)
                .get_user_info(GetUserInfoRequest {})
                .await?
                .into_inner();
            output::write(
                out,
                &format!(
                    "Logged In: {}\nUsername: {}\nIssuer: {}\nGroups: {}\n",
                    info.logged_in,
                    info.username,
                    info.iss,
                    info.groups.join(",")
                ),
            )?;
        }
        AccountCommand::CanI {
            action,
            resource,
            subresource,
        } => {
            let answer = AccountServiceClient::new(conn)
                .can_i(CanIRequest {
                    resource: resource.clone(),
                    action: action.clone(),
                    subresource: subresource.clone(),
                })
                .await?
                .into_inner();
            output::write(out, &format!("{}\n", answer.value))?;
        }
        AccountCommand::UpdatePassword {
            account,
            current_password,
            new_password,
        } => {
            AccountServiceClient::new(conn)
                .update_password(UpdatePasswordRequest {
                    name: account.clone().unwrap_or_default(),
                    current_password: current_password.clone(),
                    new_password: new_password.clone(),
                })
                .await?;
            output::write(out, "Password updated\n")?;
        }
        AccountCommand::GenerateToken {
            account,
            expires_in,
            id,
        } => {
            let expires_in = expires_in
                .as_deref()
                .map(crate::proj::parse_expires_in)
                .transpose()?
                .unwrap_or(0);
            let token = AccountServiceClient::new(conn)
                .create_token(CreateTokenRequest {
                    name: account.clone().unwrap_or_default(),
                    expires_in,
                    id: id.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .token;
            output::write(out, &format!("{token}\n"))?;
        }
        AccountCommand::DeleteToken { account, id } => {
            AccountServiceClient::new(conn)
                .delete_token(DeleteTokenRequest {
                    name: account.clone().unwrap_or_default(),
                    id: id.clone(),
                })
                .await?;
            output::write(out, &format!("Token {id} deleted\n"))?;
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print the admin password generated at the first start (as `argocd admin
    /// initial-password`): for whoever can read the control plane's state on the bus.
    InitialPassword {
        #[command(flatten)]
        bus: BusArgs,
    },
    /// Print the audit trail (who did what, when, from where, how it ended), oldest first.
    Audit {
        #[command(flatten)]
        bus: BusArgs,
        /// The most recent records only.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Make (or keep) one NATS user per service, and the nats-server configuration that
    /// gives each only its role's permissions: `<role>.nk` seed files (each service's
    /// `--nats-nkey`, `gitfleet up --nats-identities DIR`) and `authorization.conf` (for
    /// `nats-server -c`, or to include in its configuration). Existing seeds are kept.
    BusIdentities {
        /// Where the seeds and the server configuration go.
        dir: std::path::PathBuf,
        /// The prefix the services use (`--prefix`): permissions name its subjects.
        #[arg(long, env = "GITFLEET_PREFIX", default_value = "gf")]
        prefix: String,
    },
}

/// The identities in `dir`, made when there are none, and the server configuration for
/// them under `prefix` written beside them.
pub fn bus_identities(dir: &std::path::Path, prefix: &str) -> Result<gitfleet_bus::Identities> {
    let topology = gitfleet_bus::Topology::new(prefix).map_err(|e| Error::Usage(e.to_string()))?;
    let identities = if dir.join("admin.nk").exists() {
        gitfleet_bus::Identities::read_or_extend_dir(dir).map_err(Error::Usage)?
    } else {
        let ids = gitfleet_bus::Identities::generate();
        ids.write_dir(dir)
            .map_err(|e| Error::Usage(format!("writing {}: {e}", dir.display())))?;
        ids
    };
    let conf = dir.join("authorization.conf");
    std::fs::write(
        &conf,
        topology.server_authorization(&identities.public_keys()),
    )
    .map_err(|e| Error::Usage(format!("writing {}: {e}", conf.display())))?;
    Ok(identities)
}

/// The admin password made at the first start, while it is kept (until changed).
pub(crate) async fn initial_password(bus: &gitfleet_bus::Bus) -> Result<Option<String>> {
    let kv = bus
        .kv(gitfleet_bus::Bucket::Settings)
        .await
        .map_err(|e| Error::Usage(format!("opening the settings: {e}")))?;
    let entry = kv
        .get(gitfleet_bus::subject_token("argocd-initial-admin-secret"))
        .await
        .map_err(|e| Error::Usage(format!("reading the initial admin secret: {e}")))?;
    let Some(body) = entry else {
        return Ok(None);
    };
    let data: BTreeMap<String, String> = bus
        .decode_document(
            gitfleet_bus::Bucket::Settings,
            "argocd-initial-admin-secret",
            &body,
        )
        .map_err(|e| Error::Usage(format!("the initial admin secret: {e}")))?;
    Ok(data.get("password").cloned())
}

/// Connects to the bus for an operator's command that reads the control plane's state,
/// and waits (up to 10 s) for the server to let it in, so a wrong address or a locked bus
/// is one clear error instead of a time-out on the first read.
pub(crate) async fn operator_bus(args: &BusArgs, name: &str) -> Result<gitfleet_bus::Bus> {
    let bus = gitfleet_bus::connect(&args.config(name))
        .await
        .map_err(|e| Error::Usage(format!("connecting to nats: {e}")))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bus.client.connection_state() != gitfleet_bus::async_nats::connection::State::Connected {
        if std::time::Instant::now() > deadline {
            let hint = if args.nats_nkey.is_none() && args.nats_creds.is_none() {
                "; on a locked bus, pass the admin's NKey (--nats-nkey or GITFLEET_NATS_NKEY, \
                 `.state/nats-identities/admin.nk` under `cargo xtask up`)"
            } else {
                "; is this NKey one of the server's users?"
            };
            return Err(Error::Usage(format!(
                "nats at {} did not let this command in within 10 s{hint}",
                args.nats_url
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(bus)
}

pub async fn admin(cmd: &AdminCommand, out: &mut dyn Write) -> Result<i32> {
    match cmd {
        AdminCommand::Audit { bus, limit } => {
            let bus = operator_bus(bus, "gitfleet-admin").await?;
            let name = bus.topology.stream(gitfleet_bus::StreamName::Audit);
            let mut stream = bus
                .js
                .get_stream(&name)
                .await
                .map_err(|e| Error::Usage(format!("opening the audit stream: {e}")))?;
            let state = stream
                .info()
                .await
                .map_err(|e| Error::Usage(format!("reading the audit stream: {e}")))?
                .state
                .clone();
            if state.messages == 0 {
                return Ok(0);
            }
            let first = state
                .first_sequence
                .max(state.last_sequence.saturating_sub(limit.saturating_sub(1)));
            for seq in first..=state.last_sequence {
                let Ok(message) = stream.get_raw_message(seq).await else {
                    continue;
                };
                let Ok(r) =
                    serde_json::from_slice::<gitfleet_messages::AuditRecord>(&message.payload)
                else {
                    continue;
                };
                let from = if r.from.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", r.from)
                };
                output::write(
                    out,
                    &format!(
                        "{} {} {} {} {}{from}: {}\n",
                        r.at, r.who, r.action, r.resource, r.object, r.result
                    ),
                )?;
            }
        }
        AdminCommand::BusIdentities { dir, prefix } => {
            bus_identities(dir, prefix)?;
            output::write(
                out,
                &format!(
                    "NATS users for every service in {d}: <role>.nk seeds, and {d}/authorization.conf for nats-server\n",
                    d = dir.display()
                ),
            )?;
        }
        AdminCommand::InitialPassword { bus } => {
            let bus = operator_bus(bus, "gitfleet-admin").await?;
            let Some(password) = initial_password(&bus).await? else {
                return Err(Error::Usage(
                    "no initial admin password: the gateway has not started yet, or the secret \
                     was deleted after the password was changed"
                        .into(),
                ));
            };
            output::write(
                out,
                &format!("{password}\n\n This password must be only used for first time login.\n"),
            )?;
        }
    }
    Ok(0)
}
