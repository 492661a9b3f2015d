//! `ignoreDifferences` `jqPathExpressions`, as Argo CD evaluates them (gojq, `del(EXPR)` on
//! each side): here jaq computes `path(EXPR)` and the engine drops those paths.
//!
//! jaq has no way to stop an evaluation from outside, and an expression can loop
//! (`repeat(.)`), recurse until the stack overflows (`def f: 1 + f; f`, which would abort
//! the process) or build gigabytes (`[range(1e10)]`). So expressions run in a helper
//! process (`gitfleet-jq`, built beside the services), one per process that compares,
//! spoken to over stdin/stdout in JSON lines: the caller waits at most the time limit
//! (Argo CD's 1 s) and kills the helper when it is reached, and the helper holds its own
//! address space to a limit, so a flood or a stack overflow ends the helper alone. A
//! stopped expression is refused from then on without running (each run would cost its
//! whole limit); the next expression gets a fresh helper. At most `max_paths` paths per
//! expression and object.

mod eval;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The helper's file name, looked for beside the running executable.
pub const HELPER: &str = "gitfleet-jq";
/// Overrides where the helper is.
pub const HELPER_ENV: &str = "GITFLEET_JQ_HELPER";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per expression and object (Argo CD's `ignore.normalizer.jq.timeout` default).
    pub timeout: Duration,
    /// The helper's address space.
    pub memory_bytes: u64,
    /// Paths one expression may select in one object.
    pub max_paths: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            memory_bytes: 1 << 30,
            max_paths: 10_000,
        }
    }
}

/// One question to the helper.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub expression: String,
    pub objects: Vec<Value>,
    pub max_paths: usize,
}

/// Its answer: each object's paths, or why there are none.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Paths(Vec<Vec<Vec<Value>>>),
    Error(String),
}

/// The helper's loop: one [`Request`] per line in, one [`Answer`] per line out, until
/// stdin closes.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let mut programs = eval::Programs::default();
    for line in input.lines() {
        let line = line?;
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let each: Result<Vec<_>, String> = request
                    .objects
                    .iter()
                    .map(|object| programs.paths(&request.expression, object, request.max_paths))
                    .collect();
                match each {
                    Ok(paths) => Answer::Paths(paths),
                    Err(e) => Answer::Error(e),
                }
            }
            Err(e) => Answer::Error(format!("unreadable request: {e}")),
        };
        serde_json::to_writer(&mut output, &answer)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

/// The caller's side: evaluates through a helper it starts when first needed and again
/// after one is killed. Calls are serialized (one helper); each is short.
pub struct Evaluator {
    helper: Result<PathBuf, String>,
    limits: Limits,
    running: Mutex<Option<Running>>,
    /// Expressions stopped by a limit, with what stopped them.
    stopped: Mutex<HashMap<String, String>>,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Evaluator {
    /// With the helper found beside this executable (or one directory up, where cargo puts
    /// binaries for test executables in `deps/`), or at `$GITFLEET_JQ_HELPER`. A missing
    /// helper is reported by each evaluation.
    pub fn new(limits: Limits) -> Self {
        Evaluator {
            helper: locate(),
            limits,
            running: Mutex::new(None),
            stopped: Mutex::new(HashMap::new()),
        }
    }

    /// The helper at `path`.
    pub fn with_helper(path: &Path, limits: Limits) -> Self {
        Evaluator {
            helper: Ok(path.to_owned()),
            ..Self::new(limits)
        }
    }

    /// The paths `expression` selects in `object`.
    pub fn evaluate(&self, expression: &str, object: &Value) -> Result<Vec<Vec<Value>>, String> {
        Ok(self
            .evaluate_each(expression, &[object])?
            .pop()
            .unwrap_or_default())
    }

    /// The paths `expression` selects in each of `objects`, in one round trip.
    pub fn evaluate_each(
        &self,
        expression: &str,
        objects: &[&Value],
    ) -> Result<Vec<Vec<Vec<Value>>>, String> {
        if let Some(why) = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(expression)
        {
            return Err(why.clone());
        }
        let helper = self.helper.as_ref().map_err(Clone::clone)?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_none() {
            *running = Some(self.start(helper)?);
        }
        let Some(current) = running.as_mut() else {
            return Err("the jq helper did not start".into());
        };
        let request = Request {
            expression: expression.to_owned(),
            objects: objects.iter().map(|o| (*o).clone()).collect(),
            max_paths: self.limits.max_paths,
        };
        let mut line = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let sent = current
            .stdin
            .write_all(&line)
            .and_then(|()| current.stdin.flush());
        let answer = match sent {
            Ok(()) => current.answers.recv_timeout(self.limits.timeout),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        let why = match answer {
            Ok(text) => {
                return match serde_json::from_str::<Answer>(&text) {
                    Ok(Answer::Paths(paths)) if paths.len() == objects.len() => Ok(paths),
                    Ok(Answer::Paths(_)) => Err("the jq helper answered for other objects".into()),
                    Ok(Answer::Error(e)) => Err(e),
                    Err(e) => Err(format!("unreadable answer from the jq helper: {e}")),
                };
            }
            Err(RecvTimeoutError::Timeout) => {
                format!("stopped at the time limit of {:?}", self.limits.timeout)
            }
            Err(RecvTimeoutError::Disconnected) => format!(
                "stopped: the evaluation ended its helper (the memory limit of {} MiB, or a stack overflow)",
                self.limits.memory_bytes >> 20
            ),
        };
        // Killed and waited for; the next call starts a new helper.
        *running = None;
        tracing::warn!(%expression, %why, "a jqPathExpression was stopped");
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(expression.to_owned(), why.clone());
        Err(why)
    }

    fn start(&self, helper: &Path) -> Result<Running, String> {
        // No environment: nothing of the service's (credentials included) for `$ENV`.
        let mut child = Command::new(helper)
            .env_clear()
            .arg("--memory-bytes")
            .arg(self.limits.memory_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the jq helper {}: {e}", helper.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("the jq helper has no pipes".into());
        };
        let (tx, answers) = channel();
        std::thread::Builder::new()
            .name("jq-helper-reader".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("reading the jq helper: {e}"))?;
        Ok(Running {
            child,
            stdin,
            answers,
        })
    }
}

impl gitfleet_engine::diff::JqPaths for Evaluator {
    fn paths(&self, expression: &str, objects: &[&Value]) -> Result<Vec<Vec<Vec<Value>>>, String> {
        self.evaluate_each(expression, objects)
    }
}

/// Installs an evaluator with the default limits as the engine's, once per process.
pub fn install() {
    gitfleet_engine::diff::install_jq(Box::new(Evaluator::new(Limits::default())));
}

fn locate() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(HELPER_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating the jq helper: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(HELPER))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "the jq helper {HELPER} is not beside {} (build it with the services, or set {HELPER_ENV})",
                exe.display()
            )
        })
}
