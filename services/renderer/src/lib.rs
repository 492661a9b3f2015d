//! The renderer: turns an app source at a commit into Kubernetes manifests. Stateless and
//! replicated (queue group `renderer`); reads files only through the git-watcher.
//!
//! Plain YAML/JSON directories for now; Helm, Kustomize and Jsonnet come later behind the
//! same request.

pub mod cache;
pub mod directory;
pub mod service;

pub use directory::{DirectoryOptions, RenderError, render_directory};
pub use service::{Config, Error, run, start};
