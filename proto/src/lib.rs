//! gitfleet's wire types for gRPC (package `gitfleet.v1`), generated from `proto/` by tonic.
//!
//! Argo CD objects travel as JSON strings (`application_json`, `cluster_json`, ...) so
//! that `gitfleet-model` stays the one definition of their shape; services convert at the
//! boundary.

pub mod v1 {
    tonic::include_proto!("gitfleet.v1");
}

/// The encoded `FileDescriptorSet` of every `.proto`: the routes the gateway serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gitfleet_descriptor");

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    #[test]
    fn messages_round_trip_on_the_wire() {
        let req = CreateApplicationRequest {
            manifest_yaml: "kind: Application".to_string(),
            upsert: true,
        };
        let back = CreateApplicationRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, req);
    }
}
