//! Argo CD's Lua contract for resource customizations, run in a sandbox: a health script
//! gets the live object as the global `obj` and returns `{status = ..., message = ...}`; a
//! `discovery.lua` returns the actions it offers; an `action.lua` gets `obj` and
//! `actionParams` and returns the changed object or a list of impacted resources (Argo
//! CD's `util/lua`).
//!
//! Scripts are users' code run inside the diff worker and the sync executor, so every call
//! gets a fresh state (nothing one object's run leaves behind is seen by the next):
//! - Lua 5.2, closest to Argo CD's gopher-lua: 5.1 with `goto` (which Argo CD's script
//!   library uses), numbers all doubles; the 5.1 functions scripts call (`table.getn`,
//!   `unpack`) are there;
//! - the base library without what reads files, loads code or escapes the limits
//!   (`dofile`, `loadfile`, `load`, `loadstring`, `coroutine`, `collectgarbage`,
//!   `getfenv`, `setfenv`, `newproxy`, `gcinfo`; `print` writes nowhere), `table`,
//!   `string` (without `dump`), `math`, and the `os` Argo CD offers: `time` and `date`
//!   only; `require` answers `os`, `string`, `table` and `math`, nothing else;
//! - a time limit (Argo CD's 1 s) checked every 1,000 VM instructions, and a memory limit
//!   on every allocation.
//!
//! A script stopped by a limit is not run again (it would stop again, and every run costs
//! its whole limit); a new [`Script`] (a changed `argocd-cm`) runs afresh. Not bounded: the
//! time spent inside one C library call, such as a pathological `string.find` pattern over
//! a large string (gopher-lua has the same gap).

mod library;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mlua::serde::SerializeOptions;
use mlua::{HookTriggers, Lua, LuaOptions, LuaSerdeExt, StdLib, VmState};
use serde_json::Value;

pub use library::{Library, LibraryActions, LibraryError};

/// The health codes a script may return, as Argo CD accepts them.
pub const HEALTH_STATUSES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

/// How long and how much memory one call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

impl Default for Limits {
    /// Argo CD's 1 s per script; 64 MiB holds the Lua copy of a large custom resource.
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            memory_bytes: 64 << 20,
        }
    }
}

/// A script's health verdict: `status` is one of [`HEALTH_STATUSES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthVerdict {
    pub status: String,
    pub message: String,
}

/// Why a script gave no verdict; each names the script by its origin (the `argocd-cm` key
/// or the library file it came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LuaError {
    #[error("Lua script {origin}: syntax error: {message}")]
    Syntax { origin: String, message: String },
    #[error("Lua script {origin}: {message}")]
    Runtime { origin: String, message: String },
    #[error("Lua script {origin}: stopped at the time limit of {limit:?}")]
    TimeLimit { origin: String, limit: Duration },
    #[error("Lua script {origin}: stopped at the memory limit of {limit} bytes")]
    MemoryLimit { origin: String, limit: usize },
    #[error("Lua script {origin}: expected a table or nil, got {got}")]
    Return { origin: String, got: String },
    #[error(
        "Lua script {origin}: returned the health status {status:?}, expected one of Healthy, Progressing, Degraded, Suspended, Missing, Unknown"
    )]
    InvalidStatus { origin: String, status: String },
}

/// One script, checked for syntax once; cheap to clone.
#[derive(Clone)]
pub struct Script {
    inner: Arc<Inner>,
}

struct Inner {
    origin: String,
    source: String,
    syntax_error: Option<String>,
    /// The limit a run hit; later runs give this error without running.
    stopped: OnceLock<LuaError>,
    /// States with the script compiled, each used by one call at a time: a fresh state
    /// per call cost about 100 µs, most of a call.
    idle: Mutex<Vec<Prepared>>,
}

/// States kept per script (more are made under more concurrent calls, then dropped).
const IDLE_STATES: usize = 4;

/// One sandbox with the script compiled in it. Each call runs the script in a new global
/// table whose reads fall through to the sandbox's libraries, so nothing a call assigns
/// is seen by the next; a script that alters a library table (`string.x = ...`) alters
/// it for its own later calls only.
struct Prepared {
    lua: Lua,
    function: mlua::Function,
    /// `{__index = <the sandbox's globals>}`.
    fallthrough: mlua::Table,
    clock: Arc<Clock>,
}

/// The running call's deadline, read by the instruction hook.
struct Clock {
    deadline: Mutex<Instant>,
    timed_out: AtomicBool,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("origin", &self.inner.origin)
            .finish_non_exhaustive()
    }
}

/// Scripts are equal when they come from the same place with the same text.
impl PartialEq for Script {
    fn eq(&self, other: &Self) -> bool {
        self.inner.origin == other.inner.origin && self.inner.source == other.inner.source
    }
}

impl Script {
    /// `origin` says where the script comes from, for errors. A syntax error is kept and
    /// reported by every call, so the objects the script judges show it.
    pub fn new(origin: impl Into<String>, source: impl Into<String>) -> Self {
        let origin = origin.into();
        let source = source.into();
        let syntax_error = sandbox(Limits::default().memory_bytes)
            .and_then(|lua| {
                lua.load(&source)
                    .set_name(chunk_name(&origin))
                    .into_function()
            })
            .err()
            .map(|e| first_line_of(&e));
        Script {
            inner: Arc::new(Inner {
                origin,
                source,
                syntax_error,
                stopped: OnceLock::new(),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Runs a health script on `obj`: `None` when it returns nil or an empty table (no
    /// verdict, as Argo CD), else the verdict.
    pub fn health(&self, obj: &Value, limits: &Limits) -> Result<Option<HealthVerdict>, LuaError> {
        self.call(obj, None, limits, read_health)
    }

    /// Runs a `discovery.lua` on `obj`: the actions it offers, by name.
    pub fn discover_actions(
        &self,
        obj: &Value,
        limits: &Limits,
    ) -> Result<Vec<ActionInfo>, LuaError> {
        self.call(obj, None, limits, read_actions)
    }

    /// Runs an `action.lua` on `obj` with `params` as `actionParams`: what it changes.
    /// A returned object (Argo CD's first form) is a patch of `obj`; a list of
    /// `{operation = "patch"|"create", resource = ...}` says each.
    pub fn run_action(
        &self,
        obj: &Value,
        params: &std::collections::BTreeMap<String, String>,
        limits: &Limits,
    ) -> Result<Vec<Impacted>, LuaError> {
        let params = Value::Object(
            params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
        self.call(obj, Some(&params), limits, |origin, value| {
            read_impacted(origin, value, obj)
        })
    }

    fn call<T>(
        &self,
        obj: &Value,
        params: Option<&Value>,
        limits: &Limits,
        read: impl FnOnce(&str, mlua::Value) -> Result<T, LuaError>,
    ) -> Result<T, LuaError> {
        let origin = self.inner.origin.as_str();
        if let Some(message) = &self.inner.syntax_error {
            return Err(LuaError::Syntax {
                origin: origin.to_owned(),
                message: message.clone(),
            });
        }
        if let Some(stopped) = self.inner.stopped.get() {
            return Err(stopped.clone());
        }
        let prepared = match self.take_prepared(limits) {
            Ok(prepared) => prepared,
            Err(err) => return Err(self.failed(err, false, limits)),
        };
        match self.run(&prepared, obj, params, limits) {
            Ok(value) => {
                let result = read(origin, value);
                let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < IDLE_STATES {
                    idle.push(prepared);
                }
                result
            }
            // The state is dropped: a limit may have left it mid-way.
            Err(err) => Err(self.failed(
                err,
                prepared.clock.timed_out.load(Ordering::Relaxed),
                limits,
            )),
        }
    }

    /// What a failed call reports; a limit stops the script for good.
    fn failed(&self, err: mlua::Error, timed_out: bool, limits: &Limits) -> LuaError {
        let origin = self.inner.origin.clone();
        let stopped = if timed_out {
            LuaError::TimeLimit {
                origin,
                limit: limits.timeout,
            }
        } else if is_memory_error(&err) {
            LuaError::MemoryLimit {
                origin,
                limit: limits.memory_bytes,
            }
        } else {
            return LuaError::Runtime {
                origin,
                message: first_line_of(&err),
            };
        };
        let _ = self.inner.stopped.set(stopped.clone());
        stopped
    }

    fn take_prepared(&self, limits: &Limits) -> mlua::Result<Prepared> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        if let Some(prepared) = idle {
            return Ok(prepared);
        }
        let lua = sandbox(limits.memory_bytes)?;
        let clock = Arc::new(Clock {
            deadline: Mutex::new(Instant::now()),
            timed_out: AtomicBool::new(false),
        });
        let hook_clock = clock.clone();
        // A global hook: threads a script might create inherit it.
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(1_000),
            move |_, _| {
                let deadline = *hook_clock
                    .deadline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if Instant::now() >= deadline {
                    hook_clock.timed_out.store(true, Ordering::Relaxed);
                    Err(mlua::Error::runtime("time limit"))
                } else {
                    Ok(VmState::Continue)
                }
            },
        )?;
        let function = lua
            .load(&self.inner.source)
            .set_name(chunk_name(&self.inner.origin))
            .into_function()?;
        let fallthrough = lua.create_table()?;
        fallthrough.raw_set("__index", lua.globals())?;
        Ok(Prepared {
            lua,
            function,
            fallthrough,
            clock,
        })
    }

    fn run(
        &self,
        prepared: &Prepared,
        obj: &Value,
        params: Option<&Value>,
        limits: &Limits,
    ) -> mlua::Result<mlua::Value> {
        let lua = &prepared.lua;
        lua.set_memory_limit(limits.memory_bytes)?;
        *prepared
            .clock
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now() + limits.timeout;
        prepared.clock.timed_out.store(false, Ordering::Relaxed);
        let env = lua.create_table()?;
        env.set_metatable(Some(prepared.fallthrough.clone()))?;
        env.raw_set("_G", &env)?;
        // JSON null is nil, as Argo CD decodes objects; lists are plain tables.
        let options = SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false)
            .set_array_metatable(false);
        env.raw_set("obj", lua.to_value_with(obj, options)?)?;
        if let Some(params) = params {
            env.raw_set("actionParams", lua.to_value_with(params, options)?)?;
        }
        prepared.function.set_environment(env)?;
        prepared.function.call::<mlua::Value>(())
    }
}

/// `=` makes Lua name the chunk by the text as given (`origin:3: ...`). Lua cuts names
/// at 60 bytes, so a long one (a library path) is named by its file name: the error names
/// the whole origin anyway.
fn chunk_name(origin: &str) -> String {
    if origin.len() <= 50 {
        return format!("={origin}");
    }
    format!("={}", origin.rsplit('/').next().unwrap_or(origin))
}

/// The message without mlua's stack traceback (which names Rust internals).
fn first_line_of(err: &mlua::Error) -> String {
    let text = match err {
        mlua::Error::SyntaxError { message, .. } | mlua::Error::RuntimeError(message) => {
            message.clone()
        }
        mlua::Error::CallbackError { cause, .. } => return first_line_of(cause),
        other => other.to_string(),
    };
    match text.split_once("\nstack traceback:") {
        Some((head, _)) => head.to_owned(),
        None => text,
    }
}

fn is_memory_error(err: &mlua::Error) -> bool {
    match err {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        _ => false,
    }
}

/// The name Lua's `type()` gives (mlua tells integers apart; Lua 5.2 does not).
fn lua_type(value: &mlua::Value) -> &'static str {
    match value {
        mlua::Value::Integer(_) | mlua::Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// Argo CD's reading: nil or an empty table is no verdict; otherwise `status` must be one
/// of [`HEALTH_STATUSES`] and `message` a string when given.
fn read_health(origin: &str, value: mlua::Value) -> Result<Option<HealthVerdict>, LuaError> {
    let table = match value {
        mlua::Value::Nil => return Ok(None),
        mlua::Value::Table(t) => t,
        other => {
            return Err(LuaError::Return {
                origin: origin.to_owned(),
                got: lua_type(&other).to_owned(),
            });
        }
    };
    let field = |name: &str| -> Result<Option<String>, LuaError> {
        match table.raw_get::<mlua::Value>(name) {
            Ok(mlua::Value::Nil) => Ok(None),
            Ok(mlua::Value::String(s)) => Ok(Some(s.to_string_lossy())),
            Ok(other) => Err(LuaError::Return {
                origin: origin.to_owned(),
                got: format!("a table whose {name} is a {}", lua_type(&other)),
            }),
            Err(e) => Err(LuaError::Runtime {
                origin: origin.to_owned(),
                message: first_line_of(&e),
            }),
        }
    };
    let status = field("status")?;
    let message = field("message")?.unwrap_or_default();
    let empty = table.pairs::<mlua::Value, mlua::Value>().next().is_none();
    match status {
        None if empty => Ok(None),
        Some(status) if HEALTH_STATUSES.contains(&status.as_str()) => {
            Ok(Some(HealthVerdict { status, message }))
        }
        status => Err(LuaError::InvalidStatus {
            origin: origin.to_owned(),
            status: status.unwrap_or_default(),
        }),
    }
}

/// An action a discovery script offers (Argo CD's `ResourceAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    pub name: String,
    pub disabled: bool,
    pub display_name: String,
    pub icon_class: String,
    /// The names of the parameters the action takes (`actionParams`).
    pub params: Vec<String>,
}

/// What an action does to one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Impacted {
    pub operation: ActionOperation,
    pub object: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOperation {
    /// The object, changed: applied over the live one.
    Patch,
    /// A new object.
    Create,
}

fn to_json(origin: &str, value: mlua::Value) -> Result<Value, LuaError> {
    use serde::Deserialize as _;
    let json = Value::deserialize(mlua::serde::Deserializer::new(value)).map_err(|e| {
        LuaError::Return {
            origin: origin.to_owned(),
            got: format!("a value that is not JSON ({e})"),
        }
    })?;
    Ok(integral(json))
}

/// Lua 5.2 numbers are doubles: whole ones go back to JSON as integers, as Argo CD's
/// gopher-json writes them (`3`, not `3.0`).
fn integral(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

/// Lua cannot tell an empty map from an empty list: where the original object had a map,
/// an empty list coming back is that map (Argo CD's `cleanReturnedObj`).
fn clean_returned(new: &mut Value, old: &Value) {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            for (key, value) in n.iter_mut() {
                if let Some(before) = o.get(key) {
                    if value.as_array().is_some_and(Vec::is_empty) && before.is_object() {
                        *value = Value::Object(Default::default());
                    } else {
                        clean_returned(value, before);
                    }
                }
            }
        }
        (Value::Array(n), Value::Array(o)) => {
            for (value, before) in n.iter_mut().zip(o) {
                clean_returned(value, before);
            }
        }
        _ => {}
    }
}

/// A discovery script's table: action name to `{disabled, displayName, iconClass}`.
fn read_actions(origin: &str, value: mlua::Value) -> Result<Vec<ActionInfo>, LuaError> {
    let json = match value {
        mlua::Value::Table(_) => to_json(origin, value)?,
        mlua::Value::Nil => return Ok(Vec::new()),
        other => {
            return Err(LuaError::Return {
                origin: origin.to_owned(),
                got: lua_type(&other).to_owned(),
            });
        }
    };
    let Value::Object(actions) = json else {
        // An empty table reads as a list.
        return Ok(Vec::new());
    };
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out: Vec<ActionInfo> = actions
        .iter()
        .map(|(name, v)| ActionInfo {
            name: name.clone(),
            disabled: v.get("disabled").and_then(Value::as_bool).unwrap_or(false),
            display_name: text(v, "displayName"),
            icon_class: text(v, "iconClass"),
            params: v
                .get("params")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn read_impacted(
    origin: &str,
    value: mlua::Value,
    original: &Value,
) -> Result<Vec<Impacted>, LuaError> {
    let returned = |got: &str| LuaError::Return {
        origin: origin.to_owned(),
        got: got.to_owned(),
    };
    let json = match value {
        mlua::Value::Table(_) => to_json(origin, value)?,
        other => return Err(returned(lua_type(&other))),
    };
    match json {
        Value::Object(_) => {
            let mut object = json;
            clean_returned(&mut object, original);
            Ok(vec![Impacted {
                operation: ActionOperation::Patch,
                object,
            }])
        }
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let operation = match item.get("operation").and_then(Value::as_str) {
                    Some("patch") => ActionOperation::Patch,
                    Some("create") => ActionOperation::Create,
                    _ => {
                        return Err(returned(
                            "a list item whose operation is not \"patch\" or \"create\"",
                        ));
                    }
                };
                let mut object = item
                    .get("resource")
                    .filter(|r| r.is_object())
                    .cloned()
                    .ok_or_else(|| returned("a list item without a resource"))?;
                if operation == ActionOperation::Patch {
                    clean_returned(&mut object, original);
                }
                Ok(Impacted { operation, object })
            })
            .collect(),
        _ => Err(returned("a table that is neither an object nor a list")),
    }
}

/// Lua's own `require`, for the sandbox's four modules.
const PRELUDE: &str = r#"
table.getn = function(t) return #t end
unpack = table.unpack
local safe_os = { time = os.time, date = os.date }
os = safe_os
string.dump = nil
local modules = { os = safe_os, string = string, table = table, math = math }
require = function(name)
  local m = modules[name]
  if m == nil then
    error("module '" .. tostring(name) .. "' is not in gitfleet's Lua sandbox (os, string, table and math are)", 2)
  end
  return m
end
print = function() end
"#;

/// A fresh state with the sandbox's libraries (see the crate docs) and `memory` as its
/// allocation limit.
fn sandbox(memory: usize) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS,
        LuaOptions::new(),
    )?;
    let globals = lua.globals();
    for name in [
        "dofile",
        "loadfile",
        "load",
        "loadstring",
        "module",
        "coroutine",
        "collectgarbage",
        "getfenv",
        "setfenv",
        "newproxy",
        "gcinfo",
    ] {
        globals.raw_remove(name)?;
    }
    lua.load(PRELUDE).set_name("=sandbox").exec()?;
    lua.set_memory_limit(memory)?;
    Ok(lua)
}

#[cfg(test)]
mod tests;
