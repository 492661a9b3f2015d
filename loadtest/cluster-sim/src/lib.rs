//! cluster-sim: a Kubernetes API emulator that serves many simulated clusters from one
//! process, for gitfleet's tests and load runs. Real kubectl is the judge of fidelity.
//!
//! A new cluster looks like a new real one: namespaces `default`, `kube-system`,
//! `kube-public` and `kube-node-lease`, the `kubernetes` Service in `default`, and (from
//! the simulated controllers) a `default` ServiceAccount and a `kube-root-ca.crt`
//! ConfigMap in every namespace. Subresources served: `/status` (kinds that have one) and
//! `/scale` (Deployment, ReplicaSet, StatefulSet, CRDs with a scale subresource). Not
//! served: `/eviction`, `/log`, `/exec` and the other pod subresources (404), and CBOR
//! bodies (415). Kubernetes' protobuf encoding is spoken for the built-in kinds
//! (`protobuf`: what `kubectl create <kind> …` generators send); custom resources are
//! JSON only. GET answers a `meta.k8s.io` Table when the Accept header asks for one
//! (`table`).

// Errors are per request and become a Status body at once; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod cluster;
pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod jsonpath;
pub mod kubeconfig;
pub mod persist;
pub mod protobuf;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;

pub use cluster::{Cluster, ClusterConfig, Faults, MutatingWebhook, WriteRecord};
pub use sim::{Sim, SimConfig};
pub mod bench;
