//! Running an external tool for a render (Kustomize, a config management plugin): in a
//! private scratch copy, with none of the renderer's environment but what the render gives
//! it, bounded in time and output, killed when abandoned; its messages read with the
//! scratch directory's path taken out, so file names read as in the repository.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gitfleet_messages::ServiceError;
use tokio::io::AsyncReadExt;

/// One run of a tool.
pub struct ToolRun<'a> {
    /// What messages call the run: `kustomize build apps/x`, `plugin cmp-1 generate`.
    pub what: &'a str,
    pub program: &'a str,
    pub args: Vec<OsString>,
    /// The working directory, inside `scratch`.
    pub cwd: &'a Path,
    /// The scratch copy, also the tool's `HOME`; its path is left out of messages.
    pub scratch: &'a Path,
    /// Environment beyond `PATH` and `HOME`.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

/// The tool's standard output, when it exits 0 within the limits.
pub async fn run(tool: ToolRun<'_>) -> Result<String, ServiceError> {
    let what = tool.what;
    let mut child = tokio::process::Command::new(tool.program)
        .args(&tool.args)
        .current_dir(tool.cwd)
        // Nothing of the renderer's environment (credentials) reaches the tool.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", tool.scratch)
        .envs(tool.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| {
            ServiceError::unavailable(format!("{what}: cannot run {}: {err}", tool.program))
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let limit = tool.max_output_bytes;
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let reading =
            |e: std::io::Error| ServiceError::internal(format!("{what}: reading its output: {e}"));
        let read_out = async {
            (&mut stdout)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map_err(reading)?;
            if out.len() > limit {
                // Stop here, not at the timeout: the tool is killed when dropped.
                return Err(ServiceError::invalid(format!(
                    "{what}: output is over the limit of {limit} bytes"
                )));
            }
            Ok(())
        };
        // The first 64 KiB say what went wrong; the rest is drained so the tool never
        // blocks on a full pipe.
        let read_err = async {
            (&mut stderr)
                .take(64 << 10)
                .read_to_end(&mut err)
                .await
                .map_err(reading)?;
            tokio::io::copy(&mut stderr, &mut tokio::io::sink())
                .await
                .map_err(reading)
        };
        tokio::try_join!(read_out, read_err)?;
        let status = child
            .wait()
            .await
            .map_err(|e| ServiceError::internal(format!("{what}: waiting for it: {e}")))?;
        Ok((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(tool.timeout, run)
        .await
        .map_err(|_| {
            ServiceError::deadline(format!("{what} took longer than {:?}", tool.timeout))
        })??;
    if !status.success() {
        let scratch_prefix = format!("{}/", tool.scratch.display());
        let message = String::from_utf8_lossy(&err)
            .replace(&scratch_prefix, "")
            .replace(&tool.scratch.display().to_string(), ".")
            .trim()
            .to_owned();
        let status = status
            .code()
            .map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
        return Err(ServiceError::invalid(if message.is_empty() {
            format!("{what} failed: it {status}")
        } else {
            format!("{what} failed: {message}")
        }));
    }
    String::from_utf8(out)
        .map_err(|_| ServiceError::invalid(format!("{what}: output is not UTF-8")))
}
