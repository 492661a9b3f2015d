//! cluster-sim: a Kubernetes API emulator that serves many simulated clusters from one
//! process, for gitfleet's tests and load runs. Real kubectl is the judge of fidelity.

// Errors are per request and become a Status body at once; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod api;
pub mod cluster;
pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod kubeconfig;
pub mod persist;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod store;
pub mod tls;
pub mod validation;
pub mod watch;

pub use cluster::{Cluster, ClusterConfig, Faults, WriteRecord};
pub use sim::{Sim, SimConfig};
pub mod bench;
