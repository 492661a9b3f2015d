//! The NATS JetStream bus every gitfleet service talks through: names, connection, large
//! payloads, request/reply with typed errors, backoff, and partition ownership.
//!
//! Only this crate knows how subjects, streams, buckets and object stores are named
//! ([`topology`]); services ask it for subjects instead of formatting their own.

pub mod backoff;
pub mod connect;
pub mod control_plane;
pub mod error;
pub mod follow;
pub mod ownership;
pub mod payload;
pub mod permissions;
pub mod reopen;
pub mod request;
pub mod retry;
pub mod running;
pub mod sealed;
pub mod topology;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use backoff::Backoff;
pub use connect::{Bus, BusConfig, connect};
pub use error::{BusError, Result};
pub use follow::{Revisions, completed_operation, next_of, watch_all};
pub use ownership::{
    LeaseInfo, Membership, MembershipConfig, Owned, balanced, partition, read_lease,
};
pub use payload::{OBJECT_HEADER, content_key};
pub use permissions::{Identities, Permissions, Role};
pub use reopen::reopen_forever;
pub use request::{encode_reply, serve, serve_encoded};
pub use retry::{Retry, retry};
pub use running::Running;
pub use sealed::{CredentialKey, SealError, Sealing};
pub use topology::{Bucket, ObjectStoreName, StreamName, Topology, subject_token, token_to_name};

/// Re-exported so dependants use the same client version as the bus.
pub use async_nats;
