//! gitfleet's GitOps engine, pure: Kubernetes objects (`serde_json::Value`) in, verdicts and
//! plans out. Health per kind ([`health`]), desired-versus-live comparison ([`diff`]), sync
//! planning with phases, waves, hooks and pruning ([`sync`]), Argo CD's tracking marks
//! ([`tracking`]), app-level sync and health ([`status`]), and an application's desired
//! state against its live state, once for every service ([`app`]). No I/O, no async: services do
//! the talking to Git and clusters around it.

pub mod actions;
pub mod app;
pub mod control_plane;
pub mod depends;
pub mod diff;
pub mod glob;
pub mod health;
pub mod project;
pub mod resource;
pub mod status;
pub mod sync;
pub mod tracking;
pub mod tree;

mod json;

pub use resource::ResourceRef;
