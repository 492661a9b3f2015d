//! Marking resources as an app's the way Argo CD does, so a cluster can move between Argo CD
//! and gitfleet without re-creating anything: the `argocd.argoproj.io/tracking-id`
//! annotation (default), the `app.kubernetes.io/instance` label, or both.

use std::str::FromStr;

use gitfleet_model::{Application, INSTANCE_LABEL, TRACKING_ANNOTATION, TrackingId};
use serde_json::{Map, Value};

use crate::json::annotation;
use crate::resource::ResourceRef;

/// Argo CD's `application.resourceTrackingMethod`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrackingMethod {
    #[default]
    Annotation,
    Label,
    AnnotationAndLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource tracking method {0:?} (expected annotation, label or annotation+label)")]
pub struct UnknownTrackingMethod(pub String);

impl FromStr for TrackingMethod {
    type Err = UnknownTrackingMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "annotation" | "" => Ok(Self::Annotation),
            "label" => Ok(Self::Label),
            "annotation+label" => Ok(Self::AnnotationAndLabel),
            other => Err(UnknownTrackingMethod(other.to_owned())),
        }
    }
}

/// Marks `obj` as belonging to `app`. The namespace in the tracking id is the object's own,
/// so namespaced objects must have theirs set first (cluster-scoped ones have none).
pub fn annotate(
    obj: &mut Value,
    app: &Application,
    control_plane_namespace: &str,
    method: TrackingMethod,
) {
    let r = ResourceRef::from_object(obj);
    let id = app.tracking_id(
        control_plane_namespace,
        &r.group,
        &r.kind,
        &r.namespace,
        &r.name,
    );
    let label = app.instance_label_value(control_plane_namespace);
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let mut set = |field: &str, key: &str, value: String| {
        let m = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        if !m.is_object() {
            *m = Value::Object(Map::new());
        }
        if let Some(m) = m.as_object_mut() {
            m.insert(key.to_owned(), Value::String(value));
        }
    };
    if matches!(
        method,
        TrackingMethod::Annotation | TrackingMethod::AnnotationAndLabel
    ) {
        set("annotations", TRACKING_ANNOTATION, id);
    }
    if matches!(
        method,
        TrackingMethod::Label | TrackingMethod::AnnotationAndLabel
    ) {
        set("labels", INSTANCE_LABEL, label);
    }
}

/// The parsed tracking annotation of a live object, if any.
pub fn tracking_id(obj: &Value) -> Option<TrackingId> {
    annotation(obj, TRACKING_ANNOTATION).and_then(TrackingId::parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_model::ObjectMeta;
    use serde_json::json;

    fn app(name: &str, ns: &str) -> Application {
        Application {
            metadata: ObjectMeta {
                namespace: ns.into(),
                ..ObjectMeta::named(name)
            },
            ..Application::default()
        }
    }

    #[test]
    fn annotation_label_and_both() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "guestbook-ui", "namespace": "default"}});
        annotate(
            &mut svc,
            &app("guestbook", "argocd"),
            "argocd",
            TrackingMethod::Annotation,
        );
        assert_eq!(
            svc["metadata"]["annotations"][TRACKING_ANNOTATION],
            "guestbook:/Service:default/guestbook-ui"
        );
        assert!(svc["metadata"].get("labels").is_none());
        assert_eq!(tracking_id(&svc).unwrap().name, "guestbook-ui");

        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": null}});
        annotate(
            &mut ns,
            &app("web", "team-a"),
            "argocd",
            "annotation+label".parse().unwrap(),
        );
        assert_eq!(
            ns["metadata"]["annotations"][TRACKING_ANNOTATION],
            "team-a_web:/Namespace:/prod"
        );
        assert_eq!(ns["metadata"]["labels"][INSTANCE_LABEL], "team-a_web");

        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "p"}});
        annotate(
            &mut d,
            &app("web", "argocd"),
            "argocd",
            TrackingMethod::Label,
        );
        assert_eq!(d["metadata"]["labels"][INSTANCE_LABEL], "web");
        assert!(d["metadata"].get("annotations").is_none());
        assert!("labels".parse::<TrackingMethod>().is_err());
    }
}
