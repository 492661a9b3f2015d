//! The ApplicationSet controller: owns a share of the ApplicationSets (by partition lease,
//! as diff workers own apps), generates each one's Applications with `gitfleet-appset`
//! and writes them to KV `applications`, where the diff workers pick them up.
//!
//! Decisions worth knowing:
//! - A generated app carries an `ownerReference` to its set, as Argo CD's do; an app of
//!   the same name that the set does not own is never taken over (a condition says so).
//! - A generator that fails writes nothing: no app is created, changed or deleted until
//!   the set generates cleanly again (the status says why).
//! - Nothing is generated until the applications, clusters and projects buckets have
//!   been read to their end: a half-read cluster list would delete the apps of the
//!   clusters not read.
//! - An app the set no longer generates is deleted as `app delete` deletes it: with Argo
//!   CD's resources finalizer (added unless `preserveResourcesOnDeletion`), the diff
//!   worker owning it prunes its resources first.
//! - A set is generated again when it changes, when a cluster changes (sets with a
//!   cluster generator), when a commit is announced on a repository its Git generators
//!   read, when one of its apps is changed or deleted by someone else, and every
//!   `requeue_interval` for sets with Git generators.
//!
//! Not yet: scmProvider, pullRequest, plugin and clusterDecisionResource generators;
//! progressive sync (RollingSync); the `gitfleet appset` commands.

pub mod config;
mod controller;
pub mod error;
mod reconcile;
mod scm;

pub use config::Config;
pub use controller::{run, start};
pub use error::{Error, Result};
