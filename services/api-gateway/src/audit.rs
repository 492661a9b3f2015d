//! The audit trail: every mutating call's authorisation (allowed or denied) and every
//! login, with who, what, when and from where, published on the audit stream. A record
//! that cannot be published is logged as lost; the call itself goes on (the bus being
//! down stops most calls anyway).

use gitfleet_bus::Bus;
use gitfleet_messages::AuditRecord;

#[derive(Clone)]
pub struct AuditTrail {
    bus: Bus,
}

impl AuditTrail {
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    pub async fn record(
        &self,
        who: &str,
        resource: &str,
        action: &str,
        object: &str,
        from: Option<std::net::SocketAddr>,
        result: &str,
    ) {
        let record = AuditRecord {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            who: who.to_owned(),
            resource: resource.to_owned(),
            action: action.to_owned(),
            object: object.to_owned(),
            from: from.map(|a| a.to_string()).unwrap_or_default(),
            result: result.to_owned(),
        };
        let body = match serde_json::to_vec(&record) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(error = %err, "audit record not encoded");
                return;
            }
        };
        let subject = self.bus.topology.audit_subject(resource);
        if let Err(err) = self.bus.publish_durable(subject, body.into()).await {
            tracing::error!(error = %err, who, resource, action, object, result, "audit record lost");
        }
    }
}
