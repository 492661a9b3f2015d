//! The renderer: turns an app source at a commit into Kubernetes manifests. Stateless and
//! replicated (queue group `renderer`); reads files only through the git-watcher.
//!
//! Plain YAML/JSON directories with Jsonnet, Kustomize, and Helm charts from Git, Helm
//! repositories and OCI registries, reading a multi-source app's `ref` sources for
//! `$ref/...` values, and config management plugins.

pub mod build_env;
pub mod cache;
pub mod content;
pub mod directory;
pub mod fetch;
pub mod helm;
pub mod jsonnet;
pub mod kustomize;
pub mod plugin;
pub mod process;
pub mod service;
pub mod source;

pub use content::Counters;
pub use directory::{DirectoryOptions, RenderError, render_directory};
pub use helm::HelmTool;
pub use kustomize::KustomizeTool;
pub use plugin::{Plugin, Plugins};
pub use service::{Config, Error, run, start};
pub use source::Tools;
