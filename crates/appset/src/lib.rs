//! ApplicationSets as Argo CD's ApplicationSet controller computes them, pure: generators
//! turn what the controller fetched into parameter sets, the template turns each into an
//! Application (`generate`), and `plan` says what to create, update and delete under the
//! set's `applicationsSync` policy. No I/O: the controller fetches, this decides.

pub mod generate;
pub mod params;
mod pathmatch;
pub mod plan;
pub mod progressive;
pub mod pull_request;
pub mod scm_provider;
pub mod selector;
mod sprig;
pub mod template;

pub use generate::{
    GenerateError, GeneratedApp, GitKey, GitTree, IN_CLUSTER_NAME, IN_CLUSTER_SERVER,
    RESOURCES_FINALIZER, Sources, generate,
};
pub use params::Params;
pub use plan::{Action, Plan, Policy, owner_reference, plan};
