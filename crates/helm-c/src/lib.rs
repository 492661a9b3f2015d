//! Helm v4, the real engine, through its C library: `libhelm_c` from the `helm-python-sdk`
//! wheel (`cargo xtask tools` puts it in `tools/`), loaded at run time by absolute path.
//! Charts are loaded from a directory or an archive and rendered offline (no cluster;
//! `lookup` returns nothing), values files are parsed and `--set` expressions read by Helm
//! itself, so values mean exactly what they mean to `helm template`.
//!
//! # Why `unsafe` is allowed here, and only here
//! The workspace forbids `unsafe`; this crate is the one place that crosses a C ABI, and
//! every crossing is one of three shapes, each sound for the reasons given:
//! - **Calling a symbol.** Each function pointer is read from the library under the name
//!   and with the signature of `helm_c.h` (as `helm_python/_native.py` declares it; that
//!   table is checked against the header upstream). The library's version is checked on
//!   load, so a library with another ABI is refused before any call.
//! - **Passing strings in.** Inputs are `CString`s that outlive the call; the library only
//!   borrows them for the call's duration (`helm_c.h`: "borrowed for the duration of a call").
//! - **Taking strings out.** Every `char*` the library returns is owned by the caller and
//!   freed exactly once with `helm_free_string`, after it is copied ([`Helm::take`]).
//!
//! Handles (`uint64` ids into the library's registry) are freed on drop; a double or
//! unknown free is an error code in this ABI, never a crash. The library is never unloaded:
//! it holds a Go runtime, which cannot be shut down, so each library is opened once per
//! process and kept ([`Helm::load`]).
#![allow(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, c_char};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The major version of `helm_c.h` these declarations follow.
const ABI_MAJOR: &str = "0";

type Str = *mut c_char;
type Handle = u64;
type StrFn = unsafe extern "C" fn() -> Str;
type FreeFn = unsafe extern "C" fn(Str);
type LoadFn = unsafe extern "C" fn(*const c_char, *mut Handle, *mut Str) -> i32;
type LoadArchiveFn = unsafe extern "C" fn(*const u8, u64, *mut Handle, *mut Str) -> i32;
type HandleFn = unsafe extern "C" fn(Handle, *mut Str) -> i32;
type HandleOutFn = unsafe extern "C" fn(Handle, *mut Str, *mut Str) -> i32;
type RenderFn =
    unsafe extern "C" fn(Handle, *const c_char, *const c_char, *mut Str, *mut Str) -> i32;
type TextOutFn = unsafe extern "C" fn(*const c_char, *mut Str, *mut Str) -> i32;
type CountFn = unsafe extern "C" fn() -> i64;
type TwoPathsFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut Str) -> i32;

/// Why a call into Helm failed: `helm_error_code` of `helm_c.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Io,
    ChartLoad,
    ChartInvalid,
    Values,
    Render,
    /// A Go panic inside the library, recovered there.
    Panic,
    Other(i32),
}

impl ErrorKind {
    fn from_code(code: i32) -> ErrorKind {
        match code {
            -2 => ErrorKind::InvalidArgument,
            -5 => ErrorKind::Panic,
            -7 => ErrorKind::NotFound,
            -8 => ErrorKind::Io,
            -20 => ErrorKind::ChartLoad,
            -21 => ErrorKind::ChartInvalid,
            -22 => ErrorKind::Values,
            -23 => ErrorKind::Render,
            other => ErrorKind::Other(other),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("cannot load the Helm C library {path}: {message}")]
    Load { path: PathBuf, message: String },
    /// Helm's own message (template name and line for a template error).
    #[error("{message}")]
    Call { kind: ErrorKind, message: String },
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("the Helm library answered {what} with something that is not {expected}: {detail}")]
    Output {
        what: &'static str,
        expected: &'static str,
        detail: String,
    },
}

impl HelmError {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            HelmError::Call { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// A loaded Helm C library. Shared by every thread; calls may run concurrently.
pub struct Helm {
    // Never dropped: see the crate docs.
    _library: ManuallyDrop<libloading::Library>,
    path: PathBuf,
    version: String,
    sdk_version: String,
    free_string: FreeFn,
    chart_load: LoadFn,
    chart_load_archive: LoadArchiveFn,
    chart_free: HandleFn,
    chart_expand: TwoPathsFn,
    chart_metadata: HandleOutFn,
    chart_crds: HandleOutFn,
    render: RenderFn,
    values_from_yaml: TextOutFn,
    strvals_parse: TextOutFn,
    strvals_parse_string: TextOutFn,
    strvals_parse_literal: TextOutFn,
    open_handles_count: CountFn,
}

impl std::fmt::Debug for Helm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helm")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("sdk_version", &self.sdk_version)
            .finish()
    }
}

/// How a `--set` family expression reads its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// `--set`: values typed as YAML scalars (`true`, `3`), commas separate entries.
    Typed,
    /// `--set-string`: every value a string.
    String,
    /// `--set-literal`: one entry whose value is taken as is (commas and all); how
    /// `--set-file` values (a file's content) are set.
    Literal,
}

/// How a chart is rendered: what `helm template` takes as flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderOptions {
    pub release_name: String,
    pub namespace: String,
    /// `.Capabilities.KubeVersion`; Helm's default when unset.
    pub kube_version: Option<String>,
    /// Extra `.Capabilities.APIVersions` (`group/version` or `group/version/Kind`).
    pub api_versions: Vec<String>,
}

/// A file of a chart, as the library lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    /// Path within the chart that holds it (`crds/x.yaml`).
    pub name: String,
    /// Path from the top chart (`parent/charts/sub/crds/x.yaml`).
    pub filename: String,
    pub data: String,
}

/// Where the library is: `$GITFLEET_HELM_C_LIB`, else where `cargo xtask tools` installs
/// it below `$GITFLEET_TOOLS`.
pub fn configured_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GITFLEET_HELM_C_LIB") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("GITFLEET_TOOLS")
        .map(|tools| PathBuf::from(tools).join("python/helm_python/lib/libhelm_c.so"))
}

impl Helm {
    /// The library at `path`, opened once per process and kept (see the crate docs).
    pub fn load(path: &Path) -> Result<&'static Helm, HelmError> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, &'static Helm>>> = OnceLock::new();
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(helm) = loaded.get(path) {
            return Ok(helm);
        }
        let helm: &'static Helm = Box::leak(Box::new(Helm::open(path)?));
        loaded.insert(path.to_owned(), helm);
        Ok(helm)
    }

    fn open(path: &Path) -> Result<Helm, HelmError> {
        let load_error = |message: String| HelmError::Load {
            path: path.to_owned(),
            message,
        };
        if !path.is_absolute() {
            return Err(load_error(
                "the path must be absolute, so the file checked is the file loaded".into(),
            ));
        }
        // SAFETY: loading runs the library's initialisers, here the Go runtime's, which
        // are written to run inside a foreign process (Go's c-shared build mode).
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|err| load_error(err.to_string()))?;
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the type of the field this fills is the signature `helm_c.h`
                // declares for the symbol of that name.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|err| load_error(format!("{}: {err}", $name)))?
            };
        }
        let version_fn: StrFn = symbol!("helm_c_version");
        let sdk_version_fn: StrFn = symbol!("helm_sdk_version");
        let mut helm = Helm {
            path: path.to_owned(),
            version: String::new(),
            sdk_version: String::new(),
            free_string: symbol!("helm_free_string"),
            chart_load: symbol!("helm_chart_load"),
            chart_load_archive: symbol!("helm_chart_load_archive"),
            chart_free: symbol!("helm_chart_free"),
            chart_expand: symbol!("helm_chart_expand"),
            chart_metadata: symbol!("helm_chart_metadata"),
            chart_crds: symbol!("helm_chart_crds"),
            render: symbol!("helm_render"),
            values_from_yaml: symbol!("helm_values_from_yaml"),
            strvals_parse: symbol!("helm_strvals_parse"),
            strvals_parse_string: symbol!("helm_strvals_parse_string"),
            strvals_parse_literal: symbol!("helm_strvals_parse_literal"),
            open_handles_count: symbol!("helm_open_handles_count"),
            _library: ManuallyDrop::new(library),
        };
        // SAFETY: both return a caller-owned string (or NULL), taken exactly once.
        helm.version = unsafe { helm.take(version_fn()) }.unwrap_or_default();
        helm.sdk_version = unsafe { helm.take(sdk_version_fn()) }.unwrap_or_default();
        if helm.version.split('.').next() != Some(ABI_MAJOR) {
            return Err(load_error(format!(
                "library version {:?}, and these declarations follow helm_c.h {ABI_MAJOR}.x",
                helm.version
            )));
        }
        Ok(helm)
    }

    /// The library's own version (`helm-c-sdk`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The Helm Go SDK compiled into the library (`v4.2.3`).
    pub fn sdk_version(&self) -> &str {
        &self.sdk_version
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Handles alive in the library (charts not yet dropped): for leak checks.
    pub fn open_handles(&self) -> i64 {
        // SAFETY: no arguments, returns a plain integer.
        unsafe { (self.open_handles_count)() }
    }

    /// Copies a caller-owned string from the library, then frees it.
    ///
    /// # Safety
    /// `s` is NULL or a string the library returned to the caller and nobody freed yet.
    unsafe fn take(&self, s: Str) -> Option<String> {
        if s.is_null() {
            return None;
        }
        // SAFETY: per this function's contract, `s` is a live NUL-terminated string.
        let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        // SAFETY: freed once, with the library's own free, after the copy.
        unsafe { (self.free_string)(s) };
        Some(text)
    }

    /// Runs a call whose outputs are a result string and an error string.
    fn call(&self, call: impl FnOnce(*mut Str, *mut Str) -> i32) -> Result<String, HelmError> {
        let (mut out, mut err): (Str, Str) = (null_mut(), null_mut());
        let code = call(&mut out, &mut err);
        // SAFETY: both out-parameters are NULL or caller-owned strings from this call.
        let (out, err) = unsafe { (self.take(out), self.take(err)) };
        if code == 0 {
            Ok(out.unwrap_or_default())
        } else {
            Err(HelmError::Call {
                kind: ErrorKind::from_code(code),
                message: err.unwrap_or_else(|| format!("Helm failed with code {code}")),
            })
        }
    }

    /// Loads a chart from a directory (with its `charts/` dependencies) or an archive file.
    pub fn load_chart(&self, path: &Path) -> Result<Chart<'_>, HelmError> {
        let path = cstring(&path.to_string_lossy(), "the chart path")?;
        let mut handle: Handle = 0;
        self.call(|_, err| {
            // SAFETY: `path` outlives the call; `handle` and `err` are valid out-pointers.
            unsafe { (self.chart_load)(path.as_ptr(), &mut handle, err) }
        })?;
        Ok(Chart { helm: self, handle })
    }

    /// Loads a chart from the bytes of a `.tgz` archive (a chart from a Helm repository).
    pub fn load_chart_archive(&self, archive: &[u8]) -> Result<Chart<'_>, HelmError> {
        let mut handle: Handle = 0;
        self.call(|_, err| {
            // SAFETY: the slice is valid for its length for the whole call.
            unsafe {
                (self.chart_load_archive)(archive.as_ptr(), archive.len() as u64, &mut handle, err)
            }
        })?;
        Ok(Chart { helm: self, handle })
    }

    /// Unpacks the chart archive `archive` into `destination/<chart name>/` as `helm pull
    /// --untar` does (Helm refuses entries that would land outside `destination`).
    pub fn expand_archive(&self, archive: &Path, destination: &Path) -> Result<(), HelmError> {
        let destination = cstring(&destination.to_string_lossy(), "the destination")?;
        let archive = cstring(&archive.to_string_lossy(), "the archive path")?;
        self.call(|_, err| {
            // SAFETY: both paths outlive the call; `err` is a valid out-pointer.
            unsafe { (self.chart_expand)(destination.as_ptr(), archive.as_ptr(), err) }
        })?;
        Ok(())
    }

    /// A values file's YAML read as Helm reads it (YAML 1.1 scalars: `yes` is true).
    pub fn values_from_yaml(&self, yaml: &str) -> Result<Value, HelmError> {
        let text = cstring(yaml, "the values")?;
        let json = self.call(|out, err| {
            // SAFETY: `text` outlives the call; `out` and `err` are valid out-pointers.
            unsafe { (self.values_from_yaml)(text.as_ptr(), out, err) }
        })?;
        parse_json(&json, "values")
    }

    /// One `--set`, `--set-string` or `--set-literal` expression as the values it sets.
    pub fn parse_set(&self, expression: &str, kind: SetKind) -> Result<Value, HelmError> {
        let text = cstring(expression, "the parameter")?;
        let f = match kind {
            SetKind::Typed => self.strvals_parse,
            SetKind::String => self.strvals_parse_string,
            SetKind::Literal => self.strvals_parse_literal,
        };
        let json = self.call(|out, err| {
            // SAFETY: `text` outlives the call; `out` and `err` are valid out-pointers.
            unsafe { f(text.as_ptr(), out, err) }
        })?;
        parse_json(&json, "a parameter")
    }
}

/// A chart loaded into the library; freed on drop.
pub struct Chart<'h> {
    helm: &'h Helm,
    handle: Handle,
}

impl Chart<'_> {
    /// `Chart.yaml` as JSON.
    pub fn metadata(&self) -> Result<Value, HelmError> {
        let json = self.helm.call(|out, err| {
            // SAFETY: the handle is live (freed only on drop); out-pointers are valid.
            unsafe { (self.helm.chart_metadata)(self.handle, out, err) }
        })?;
        parse_json(&json, "the chart metadata")
    }

    /// The CRDs of the chart and its dependencies (`crds/` folders), not templated.
    pub fn crds(&self) -> Result<Vec<ChartFile>, HelmError> {
        let json = self.helm.call(|out, err| {
            // SAFETY: as in `metadata`.
            unsafe { (self.helm.chart_crds)(self.handle, out, err) }
        })?;
        let files = parse_json(&json, "the chart's CRDs")?;
        let field =
            |f: &Value, key: &str| f.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(files
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|f| ChartFile {
                name: field(f, "name"),
                filename: field(f, "filename"),
                data: field(f, "data"),
            })
            .collect())
    }

    /// The chart's templates rendered with `values` (the user-supplied values, merged over
    /// the chart's own by Helm), as template path → text. Partials (`_*.tpl`) are not in
    /// it; `NOTES.txt` and hooks are.
    pub fn render(
        &self,
        values: &Value,
        options: &RenderOptions,
    ) -> Result<BTreeMap<String, String>, HelmError> {
        let values = cstring(&values.to_string(), "the values")?;
        let mut opts = serde_json::json!({
            "name": options.release_name,
            "namespace": options.namespace,
            "is_install": true,
        });
        if let Some(version) = &options.kube_version {
            opts["kube_version"] = Value::from(version.as_str());
        }
        if !options.api_versions.is_empty() {
            opts["api_versions"] = Value::from(options.api_versions.clone());
        }
        let opts = cstring(&opts.to_string(), "the render options")?;
        let json = self.helm.call(|out, err| {
            // SAFETY: as in `metadata`; `values` and `opts` outlive the call.
            unsafe { (self.helm.render)(self.handle, values.as_ptr(), opts.as_ptr(), out, err) }
        })?;
        serde_json::from_str(&json).map_err(|err| HelmError::Output {
            what: "a render",
            expected: "a JSON map of template to text",
            detail: err.to_string(),
        })
    }
}

impl Drop for Chart<'_> {
    fn drop(&mut self) {
        // A failed free (already freed) is reported by code, and there is nothing to do.
        let _ = self.helm.call(|_, err| {
            // SAFETY: the handle came from a load; freeing an unknown one is an error code.
            unsafe { (self.helm.chart_free)(self.handle, err) }
        });
    }
}

fn cstring(text: &str, what: &'static str) -> Result<CString, HelmError> {
    CString::new(text).map_err(|_| HelmError::Nul { what })
}

fn parse_json(json: &str, what: &'static str) -> Result<Value, HelmError> {
    serde_json::from_str(json).map_err(|err| HelmError::Output {
        what,
        expected: "JSON",
        detail: err.to_string(),
    })
}
