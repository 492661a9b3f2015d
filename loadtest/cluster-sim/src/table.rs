//! Server-side printing: a `meta.k8s.io/v1` Table instead of the object or list when the
//! Accept header asks for one (`application/json;as=Table;v=v1;g=meta.k8s.io`, as
//! `kubectl get` does), with the columns of kube-apiserver's printers
//! (`pkg/printers/internalversion/printers.go`), a CRD's `additionalPrinterColumns`, or
//! NAME/AGE for the rest.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::api::Params;
use crate::resources::ResourceType;

/// What a row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// A request for a Table.
#[derive(Debug)]
pub struct TableRequest {
    /// `v1` or `v1beta1` of meta.k8s.io.
    pub version: &'static str,
    pub include: Include,
    /// Watches send the column definitions with the first event only.
    headers_sent: AtomicBool,
}

impl TableRequest {
    /// The Table the Accept header asks for, if its first acceptable type is one.
    pub fn requested(accept: &str, p: &Params) -> Option<TableRequest> {
        for entry in accept.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let base = parts.next().unwrap_or("");
            let params: Vec<(&str, &str)> = parts.filter_map(|kv| kv.split_once('=')).collect();
            let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
            if base != "application/json" && base != "*/*" && base != "application/*" {
                continue;
            }
            match (param("as"), param("g"), param("v")) {
                (None, _, _) => return None,
                (Some("Table"), Some("meta.k8s.io"), Some(v @ ("v1" | "v1beta1"))) => {
                    let include = match p.get("includeObject") {
                        Some("None") => Include::None,
                        Some("Object") => Include::Object,
                        _ => Include::Metadata,
                    };
                    return Some(TableRequest {
                        version: if v == "v1" { "v1" } else { "v1beta1" },
                        include,
                        headers_sent: AtomicBool::new(false),
                    });
                }
                _ => continue,
            }
        }
        None
    }

    /// The Table of `objects`; `metadata` is the list's (resourceVersion, continue).
    pub fn render(&self, rt: &ResourceType, objects: &[&Value], metadata: Value) -> Value {
        let columns = columns(rt);
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let mut row = json!({"cells": cells(rt, &columns, o)});
                match self.include {
                    Include::None => {}
                    Include::Metadata => {
                        row["object"] = json!({"kind": "PartialObjectMetadata",
                            "apiVersion": format!("meta.k8s.io/{}", self.version),
                            "metadata": o["metadata"]});
                    }
                    Include::Object => row["object"] = (*o).clone(),
                }
                row
            })
            .collect();
        let defs: Vec<Value> = columns
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.kind, "format": c.format,
                    "description": c.description, "priority": c.priority})
            })
            .collect();
        json!({"kind": "Table", "apiVersion": format!("meta.k8s.io/{}", self.version),
            "metadata": metadata, "columnDefinitions": defs, "rows": rows})
    }

    /// One watch event's Table: the column definitions come with the first only, as the
    /// API server sends them.
    pub fn render_event(&self, rt: &ResourceType, object: &Value) -> Value {
        let mut t = self.render(
            rt,
            &[object],
            json!({"resourceVersion": object["metadata"]["resourceVersion"]}),
        );
        if self.headers_sent.swap(true, Ordering::SeqCst) {
            t["columnDefinitions"] = Value::Null;
        }
        t
    }
}

/// One column: its definition and where its cell comes from.
struct Column {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    cell: Cell,
}

enum Cell {
    Name,
    Age,
    /// A built-in printer's cell, by column name.
    Builtin,
    /// A CRD column: a JSONPath and how to show its value.
    Path(String),
}

fn col(name: &str, kind: &str, description: &str, priority: i64) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        format: String::new(),
        description: description.into(),
        priority,
        cell: Cell::Builtin,
    }
}

fn name_col() -> Column {
    Column {
        format: "name".into(),
        cell: Cell::Name,
        ..col(
            "Name",
            "string",
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.",
            0,
        )
    }
}

fn age_col() -> Column {
    Column {
        cell: Cell::Age,
        ..col(
            "Age",
            "string",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
            0,
        )
    }
}

const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "Label selector for pods.";

fn columns(rt: &ResourceType) -> Vec<Column> {
    let mut c = vec![name_col()];
    let wl = |c: &mut Vec<Column>, selector: bool| {
        c.push(col("Containers", "string", CONTAINERS, 1));
        c.push(col("Images", "string", IMAGES, 1));
        if selector {
            c.push(col("Selector", "string", SELECTOR, 1));
        }
    };
    if !rt.builtin {
        if rt.printer_columns.is_empty() {
            c.push(age_col());
        }
        for pc in &rt.printer_columns {
            c.push(Column {
                name: pc["name"].as_str().unwrap_or("").into(),
                kind: pc["type"].as_str().unwrap_or("string").into(),
                format: pc["format"].as_str().unwrap_or("").into(),
                description: pc["description"].as_str().unwrap_or("").into(),
                priority: pc["priority"].as_i64().unwrap_or(0),
                cell: Cell::Path(pc["jsonPath"].as_str().unwrap_or("").into()),
            });
        }
        return c;
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => {
            c.push(col(
                "Ready",
                "string",
                "Number of the pod with ready state",
                0,
            ));
            c.push(col("Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0));
            c.push(col("Available", "integer", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0));
            c.push(age_col());
            wl(&mut c, true);
        }
        ("apps", "ReplicaSet") => {
            c.push(col(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas.",
                0,
            ));
            c.push(col(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas.",
                0,
            ));
            c.push(col(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
                0,
            ));
            c.push(age_col());
            wl(&mut c, true);
        }
        ("apps", "StatefulSet") => {
            c.push(col(
                "Ready",
                "string",
                "Number of the pod with ready state",
                0,
            ));
            c.push(age_col());
            wl(&mut c, false);
        }
        ("apps", "DaemonSet") => {
            c.push(col(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod.",
                0,
            ));
            c.push(col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.", 0));
            c.push(col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", 0));
            c.push(col(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod",
                0,
            ));
            c.push(col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", 0));
            c.push(col(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
                0,
            ));
            c.push(age_col());
            wl(&mut c, true);
        }
        ("", "Pod") => {
            c.push(col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ));
            c.push(col(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
                0,
            ));
            c.push(col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0));
            c.push(age_col());
            c.push(col("IP", "string", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1));
            c.push(col(
                "Node",
                "string",
                "NodeName is a request to schedule this pod onto a specific node.",
                1,
            ));
            c.push(col("Nominated Node", "string", "nominatedNodeName is set when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.", 1));
            c.push(col(
                "Readiness Gates",
                "string",
                "If specified, all readiness gates will be evaluated for pod readiness.",
                1,
            ));
        }
        ("", "Service") => {
            c.push(col(
                "Type",
                "string",
                "Type determines how the Service is exposed.",
                0,
            ));
            c.push(col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly by the master.", 0));
            c.push(col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", 0));
            c.push(col(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
                0,
            ));
            c.push(age_col());
            c.push(col(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
                1,
            ));
        }
        ("batch", "Job") => {
            c.push(col("Status", "string", "Status of the job.", 0));
            c.push(col(
                "Completions",
                "string",
                "The desired number of successfully finished pods the job should be run with.",
                0,
            ));
            c.push(col(
                "Duration",
                "string",
                "Time required to complete the job.",
                0,
            ));
            c.push(age_col());
            wl(&mut c, true);
        }
        ("batch", "CronJob") => {
            c.push(col(
                "Schedule",
                "string",
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
                0,
            ));
            c.push(col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.", 0));
            c.push(col(
                "Suspend",
                "boolean",
                "This flag tells the controller to suspend subsequent executions.",
                0,
            ));
            c.push(col(
                "Active",
                "integer",
                "A list of pointers to currently running jobs.",
                0,
            ));
            c.push(col(
                "Last Schedule",
                "string",
                "Information when was the last time the job was successfully scheduled.",
                0,
            ));
            c.push(age_col());
            wl(&mut c, true);
        }
        ("autoscaling", "Scale") => {
            c.push(col(
                "Desired",
                "integer",
                "replicas is the desired number of instances for the scaled object.",
                0,
            ));
            c.push(col(
                "Available",
                "integer",
                "replicas is the actual number of observed instances of the scaled object.",
                0,
            ));
            c.push(age_col());
        }
        ("", "ConfigMap") => {
            c.push(col(
                "Data",
                "string",
                "Data contains the configuration data.",
                0,
            ));
            c.push(age_col());
        }
        ("", "Secret") => {
            c.push(col("Type", "string", "The type of the secret.", 0));
            c.push(col(
                "Data",
                "string",
                "The number of keys in the secret data.",
                0,
            ));
            c.push(age_col());
        }
        ("", "ServiceAccount") => {
            c.push(col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", 0));
            c.push(age_col());
        }
        ("", "Namespace") => {
            c.push(col("Status", "string", "The status of the namespace", 0));
            c.push(age_col());
        }
        ("", "Endpoints") => {
            c.push(col("Endpoints", "string", "Endpoints of the service.", 0));
            c.push(age_col());
        }
        ("", "PersistentVolumeClaim") => {
            c.push(col(
                "Status",
                "string",
                "Phase represents the current phase of PersistentVolumeClaim.",
                0,
            ));
            c.push(col(
                "Volume",
                "string",
                "VolumeName is the binding reference to the PersistentVolume backing this claim.",
                0,
            ));
            c.push(col(
                "Capacity",
                "string",
                "Capacity represents the actual resources of the underlying volume.",
                0,
            ));
            c.push(col(
                "Access Modes",
                "string",
                "AccessModes contains the desired access modes the volume should have.",
                0,
            ));
            c.push(col(
                "StorageClass",
                "string",
                "StorageClassName is the name of the StorageClass required by the claim.",
                0,
            ));
            c.push(col("VolumeAttributesClass", "string", "VolumeAttributesClassName is the name of the VolumeAttributesClass used by the claim.", 0));
            c.push(age_col());
            c.push(col(
                "VolumeMode",
                "string",
                "volumeMode defines what type of volume is required by the claim.",
                1,
            ));
        }
        ("networking.k8s.io", "Ingress") => {
            c.push(col(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used.",
                0,
            ));
            c.push(col("Hosts", "string", "Hosts that incoming requests are matched against before the IngressRule is applied", 0));
            c.push(col(
                "Address",
                "string",
                "Address is a list containing ingress points for the load-balancer",
                0,
            ));
            c.push(col(
                "Ports",
                "string",
                "Ports of TLS configurations that open",
                0,
            ));
            c.push(age_col());
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            // The default table convertor of these kinds.
            c.push(Column {
                format: "date-time".into(),
                ..col(
                    "Created At",
                    "date",
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    0,
                )
            });
        }
        _ => c.push(age_col()),
    }
    c
}

fn cells(rt: &ResourceType, columns: &[Column], o: &Value) -> Vec<Value> {
    let builtin = if rt.builtin {
        builtin_cells(rt, o)
    } else {
        BTreeMap::new()
    };
    columns
        .iter()
        .map(|c| match &c.cell {
            Cell::Name => json!(o["metadata"]["name"]),
            Cell::Age => json!(age_since(&o["metadata"]["creationTimestamp"])),
            Cell::Builtin => {
                builtin
                    .get(c.name.as_str())
                    .cloned()
                    .unwrap_or_else(|| match c.name.as_str() {
                        "Created At" => o["metadata"]["creationTimestamp"].clone(),
                        _ => Value::Null,
                    })
            }
            Cell::Path(p) => path_cell(o, p, &c.kind),
        })
        .collect()
}

/// A CRD column's cell: the value at its path, typed; `date` shows as an age.
fn path_cell(o: &Value, path: &str, kind: &str) -> Value {
    let Some(v) = crate::jsonpath::get(o, path) else {
        return Value::Null;
    };
    match (kind, v) {
        ("date", Value::String(s)) => json!(age_since(&json!(s))),
        ("integer", Value::Number(n)) => json!(n.as_i64().unwrap_or(0)),
        ("string", Value::String(_)) | ("number", Value::Number(_)) => v.clone(),
        ("boolean", Value::Bool(_)) => v.clone(),
        ("string", Value::Object(_) | Value::Array(_)) => json!(v.to_string()),
        ("string", other) => json!(other.to_string()),
        _ => Value::Null,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn template_containers(spec: &Value) -> (String, String) {
    let cs = spec["template"]["spec"]["containers"].as_array();
    let names: Vec<&str> = cs
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let images: Vec<&str> = cs
        .map(|a| a.iter().filter_map(|c| c["image"].as_str()).collect())
        .unwrap_or_default();
    (names.join(","), images.join(","))
}

fn has_condition(o: &Value, kind: &str) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn builtin_cells(rt: &ResourceType, o: &Value) -> BTreeMap<&'static str, Value> {
    let spec = &o["spec"];
    let status = &o["status"];
    let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
    let workload = |m: &mut BTreeMap<&'static str, Value>| {
        let (names, images) = template_containers(spec);
        m.insert("Containers", json!(names));
        m.insert("Images", json!(images));
        m.insert("Selector", json!(format_label_selector(&spec["selector"])));
    };
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => {
            let desired = spec["replicas"].as_i64().unwrap_or(1);
            m.insert(
                "Ready",
                json!(format!("{}/{desired}", int(&status["readyReplicas"]))),
            );
            m.insert("Up-to-date", json!(int(&status["updatedReplicas"])));
            m.insert("Available", json!(int(&status["availableReplicas"])));
            workload(&mut m);
        }
        ("apps", "ReplicaSet") => {
            m.insert("Desired", json!(spec["replicas"].as_i64().unwrap_or(1)));
            m.insert("Current", json!(int(&status["replicas"])));
            m.insert("Ready", json!(int(&status["readyReplicas"])));
            workload(&mut m);
        }
        ("apps", "StatefulSet") => {
            let desired = spec["replicas"].as_i64().unwrap_or(1);
            m.insert(
                "Ready",
                json!(format!("{}/{desired}", int(&status["readyReplicas"]))),
            );
            workload(&mut m);
        }
        ("apps", "DaemonSet") => {
            m.insert("Desired", json!(int(&status["desiredNumberScheduled"])));
            m.insert("Current", json!(int(&status["currentNumberScheduled"])));
            m.insert("Ready", json!(int(&status["numberReady"])));
            m.insert("Up-to-date", json!(int(&status["updatedNumberScheduled"])));
            m.insert("Available", json!(int(&status["numberAvailable"])));
            m.insert(
                "Node Selector",
                json!(format_labels(&spec["template"]["spec"]["nodeSelector"])),
            );
            workload(&mut m);
        }
        ("", "Pod") => pod_cells(o, &mut m),
        ("", "Service") => {
            let kind = spec["type"].as_str().unwrap_or("ClusterIP");
            m.insert("Type", json!(kind));
            m.insert(
                "Cluster-IP",
                json!(or_none(spec["clusterIP"].as_str().unwrap_or("").into())),
            );
            m.insert("External-IP", json!(service_external_ip(o)));
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) if np != 0 => {
                                    format!("{}:{np}/{proto}", int(&p["port"]))
                                }
                                _ => format!("{}/{proto}", int(&p["port"])),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            m.insert("Port(s)", json!(or_none(ports.join(","))));
            m.insert("Selector", json!(format_labels(&spec["selector"])));
        }
        ("batch", "Job") => {
            let state = if has_condition(o, "Complete") {
                "Complete"
            } else if has_condition(o, "Failed") {
                "Failed"
            } else if o["metadata"]["deletionTimestamp"].is_string() {
                "Terminating"
            } else if has_condition(o, "Suspended") {
                "Suspended"
            } else if has_condition(o, "FailureTarget") {
                "FailureTarget"
            } else if has_condition(o, "SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            m.insert("Status", json!(state));
            let succeeded = int(&status["succeeded"]);
            let completions = match (spec["completions"].as_i64(), spec["parallelism"].as_i64()) {
                (Some(c), _) => format!("{succeeded}/{c}"),
                (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            };
            m.insert("Completions", json!(completions));
            let duration = match (
                timestamp(&status["startTime"]),
                timestamp(&status["completionTime"]),
            ) {
                (None, _) => String::new(),
                (Some(s), None) => human_duration(chrono::Utc::now() - s),
                (Some(s), Some(e)) => human_duration(e - s),
            };
            m.insert("Duration", json!(duration));
            workload(&mut m);
        }
        ("batch", "CronJob") => {
            m.insert("Schedule", json!(spec["schedule"]));
            m.insert(
                "Timezone",
                json!(or_none(spec["timeZone"].as_str().unwrap_or("").into())),
            );
            m.insert(
                "Suspend",
                json!(if spec["suspend"] == true {
                    "True"
                } else {
                    "False"
                }),
            );
            m.insert(
                "Active",
                json!(status["active"].as_array().map_or(0, Vec::len)),
            );
            let last = match timestamp(&status["lastScheduleTime"]) {
                Some(t) => human_duration(chrono::Utc::now() - t),
                None => "<none>".into(),
            };
            m.insert("Last Schedule", json!(last));
            let (names, images) = template_containers(&spec["jobTemplate"]["spec"]);
            m.insert("Containers", json!(names));
            m.insert("Images", json!(images));
            m.insert(
                "Selector",
                json!(format_label_selector(
                    &spec["jobTemplate"]["spec"]["selector"]
                )),
            );
        }
        ("autoscaling", "Scale") => {
            m.insert("Desired", json!(int(&spec["replicas"])));
            m.insert("Available", json!(int(&status["replicas"])));
        }
        ("", "ConfigMap") => {
            let n = o["data"].as_object().map_or(0, |d| d.len())
                + o["binaryData"].as_object().map_or(0, |d| d.len());
            m.insert("Data", json!(n));
        }
        ("", "Secret") => {
            m.insert("Type", json!(o["type"]));
            m.insert("Data", json!(o["data"].as_object().map_or(0, |d| d.len())));
        }
        ("", "ServiceAccount") => {
            m.insert(
                "Secrets",
                json!(o["secrets"].as_array().map_or(0, Vec::len)),
            );
        }
        ("", "Namespace") => {
            m.insert("Status", json!(status["phase"]));
        }
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for s in o["subsets"].as_array().into_iter().flatten() {
                for a in s["addresses"].as_array().into_iter().flatten() {
                    let ip = a["ip"].as_str().unwrap_or("");
                    match s["ports"].as_array().filter(|p| !p.is_empty()) {
                        Some(ports) => {
                            for p in ports {
                                eps.push(format!("{ip}:{}", int(&p["port"])));
                            }
                        }
                        None => eps.push(ip.to_string()),
                    }
                }
            }
            m.insert("Endpoints", json!(or_none(eps.join(","))));
        }
        ("", "PersistentVolumeClaim") => {
            let phase = status["phase"].as_str().unwrap_or("");
            let bound = phase == "Bound";
            m.insert("Status", json!(phase));
            m.insert("Volume", json!(spec["volumeName"].as_str().unwrap_or("")));
            let cap = if bound {
                status["capacity"]["storage"].as_str().unwrap_or("")
            } else {
                ""
            };
            m.insert("Capacity", json!(cap));
            let modes: Vec<&str> = if bound {
                strs(&status["accessModes"])
            } else {
                vec![]
            }
            .into_iter()
            .map(|a| match a {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            })
            .collect();
            m.insert("Access Modes", json!(modes.join(",")));
            m.insert(
                "StorageClass",
                json!(spec["storageClassName"].as_str().unwrap_or("")),
            );
            m.insert(
                "VolumeAttributesClass",
                json!(
                    spec["volumeAttributesClassName"]
                        .as_str()
                        .unwrap_or("<unset>")
                ),
            );
            m.insert(
                "VolumeMode",
                json!(spec["volumeMode"].as_str().unwrap_or("<unset>")),
            );
        }
        ("networking.k8s.io", "Ingress") => {
            m.insert(
                "Class",
                json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
            );
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .map(|rs| rs.iter().filter_map(|r| r["host"].as_str()).collect())
                .unwrap_or_default();
            m.insert(
                "Hosts",
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
            );
            m.insert("Address", json!(load_balancer(&status["loadBalancer"])));
            let tls = spec["tls"].as_array().is_some_and(|t| !t.is_empty());
            m.insert("Ports", json!(if tls { "80, 443" } else { "80" }));
        }
        _ => {}
    }
    m
}

fn load_balancer(lb: &Value) -> String {
    lb["ingress"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn service_external_ip(o: &Value) -> String {
    let spec = &o["spec"];
    let external: Vec<&str> = strs(&spec["externalIPs"]);
    match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer(&o["status"]["loadBalancer"]);
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec["externalName"].as_str().unwrap_or("").into(),
        _ => "<unknown>".into(),
    }
}

/// printPod: READY, STATUS (the reason a person wants to see), RESTARTS with the time
/// of the last one.
fn pod_cells(o: &Value, m: &mut BTreeMap<&'static str, Value>) {
    let status = &o["status"];
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let mut reason = status["phase"].as_str().unwrap_or("").to_string();
    if let Some(r) = status["reason"].as_str().filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut has_running = false;
    let statuses = status["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in statuses.iter().rev() {
        restarts += int(&c["restartCount"]);
        if let Some(t) = timestamp(&c["lastState"]["terminated"]["finishedAt"])
            && last_restart.is_none_or(|l| t > l)
        {
            last_restart = Some(t);
        }
        let waiting = c["state"]["waiting"]["reason"].as_str().unwrap_or("");
        let terminated = &c["state"]["terminated"];
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if let Some(r) = terminated["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_string();
        } else if terminated.is_object() {
            reason = match int(&terminated["signal"]) {
                0 => format!("ExitCode:{}", int(&terminated["exitCode"])),
                s => format!("Signal:{s}"),
            };
        } else if c["ready"] == true && c["state"]["running"].is_object() {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = if has_condition(o, "Ready") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    let phase = status["phase"].as_str().unwrap_or("");
    if o["metadata"]["deletionTimestamp"].is_string() && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_s = match last_restart {
        Some(t) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration(chrono::Utc::now() - t)
            )
        }
        _ => restarts.to_string(),
    };
    m.insert("Ready", json!(format!("{ready}/{total}")));
    m.insert("Status", json!(reason));
    m.insert("Restarts", json!(restarts_s));
    m.insert(
        "IP",
        json!(or_none(status["podIP"].as_str().unwrap_or("").into())),
    );
    m.insert(
        "Node",
        json!(or_none(o["spec"]["nodeName"].as_str().unwrap_or("").into())),
    );
    m.insert(
        "Nominated Node",
        json!(or_none(
            status["nominatedNodeName"].as_str().unwrap_or("").into()
        )),
    );
    let gates = o["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
    m.insert(
        "Readiness Gates",
        json!(if gates == 0 {
            "<none>".to_string()
        } else {
            let met = status["conditions"].as_array().map_or(0, |cs| {
                o["spec"]["readinessGates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|g| {
                        cs.iter()
                            .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                    })
                    .count()
            });
            format!("{met}/{gates}")
        }),
    );
}

fn timestamp(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// translateTimestampSince: the age of a timestamp, or `<unknown>`.
fn age_since(v: &Value) -> String {
    match timestamp(v) {
        Some(t) => human_duration(chrono::Utc::now() - t),
        None => "<unknown>".into(),
    }
}

/// apimachinery's `duration.HumanDuration`: `45s`, `3m5s`, `5h`, `2d3h`, `3y`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels`: `a=b,c=d` sorted by key, `<none>` when empty.
pub fn format_labels(v: &Value) -> String {
    let pairs: BTreeMap<&str, &str> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let s: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    or_none(s.join(","))
}

/// A `LabelSelector` object as its string form (`metav1.FormatLabelSelector`),
/// requirements sorted by key; empty when it selects everything.
pub fn selector_string(v: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = v["matchLabels"].as_object() {
        for (k, val) in m {
            reqs.push((k.clone(), format!("{k}={}", val.as_str().unwrap_or(""))));
        }
    }
    for e in v["matchExpressions"].as_array().into_iter().flatten() {
        let k = e["key"].as_str().unwrap_or("");
        let mut vals = strs(&e["values"]);
        vals.sort_unstable();
        let s = match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{k} in ({})", vals.join(",")),
            "NotIn" => format!("{k} notin ({})", vals.join(",")),
            "Exists" => k.to_string(),
            "DoesNotExist" => format!("!{k}"),
            other => format!("{k} {other} ({})", vals.join(",")),
        };
        reqs.push((k.to_string(), s));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, or `<none>`.
pub fn format_label_selector(v: &Value) -> String {
    or_none(selector_string(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn human_durations_match_apimachinery() {
        let s = TimeDelta::seconds;
        for (d, want) in [
            (s(-5), "<invalid>"),
            (s(-1), "0s"),
            (s(0), "0s"),
            (s(119), "119s"),
            (s(120), "2m"),
            (s(185), "3m5s"),
            (s(600), "10m"),
            (s(179 * 60), "179m"),
            (s(3 * 3600), "3h"),
            (s(3 * 3600 + 25 * 60), "3h25m"),
            (s(10 * 3600), "10h"),
            (s(50 * 3600), "2d2h"),
            (s(72 * 3600), "3d"),
            (s(30 * 86400), "30d"),
            (s(800 * 86400), "2y70d"),
            (s(3650 * 86400), "10y"),
        ] {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn selectors_format_like_metav1() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]},
                {"key": "d", "operator": "DoesNotExist"}]});
        assert_eq!(format_label_selector(&sel), "a=1,b=2,c in (x,y),!d");
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(format_labels(&json!({"z": "1", "a": "2"})), "a=2,z=1");
        assert_eq!(format_labels(&Value::Null), "<none>");
    }

    #[test]
    fn accept_header_picks_the_table() {
        let p = Params::default();
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let t = TableRequest::requested(kubectl, &p).expect("a table");
        assert_eq!((t.version, t.include), ("v1", Include::Metadata));
        assert!(TableRequest::requested("application/json", &p).is_none());
        assert!(TableRequest::requested("", &p).is_none());
        assert!(
            TableRequest::requested(
                "application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
                &p
            )
            .is_none(),
            "plain JSON first wins"
        );
        let p = Params::parse(Some("includeObject=Object"));
        assert_eq!(
            TableRequest::requested(kubectl, &p).unwrap().include,
            Include::Object
        );
    }

    #[test]
    fn pod_status_shows_the_container_reason() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": "2020-01-01T00:00:00Z"}}}]}});
        let mut m = BTreeMap::new();
        pod_cells(&pod, &mut m);
        assert_eq!(m["Ready"], "1/2");
        assert_eq!(m["Status"], "CrashLoopBackOff");
        assert!(m["Restarts"].as_str().unwrap().starts_with("3 ("), "{m:?}");
        assert_eq!(m["IP"], "<none>");
    }

    #[test]
    fn crd_columns_follow_their_json_paths() {
        let rt = ResourceType {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
            singular: "widget".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            status_subresource: false,
            builtin: false,
            schema: None,
            scale: None,
            printer_columns: vec![
                json!({"name": "Size", "type": "integer", "jsonPath": ".spec.size"}),
                json!({"name": "Port", "type": "integer", "jsonPath": ".spec.ports[0].port", "priority": 1}),
                json!({"name": "Missing", "type": "string", "jsonPath": ".status.nope"}),
            ],
        };
        let req = TableRequest::requested(
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            &Params::default(),
        )
        .unwrap();
        let o = json!({"metadata": {"name": "w", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"size": 3, "ports": [{"port": 8080}]}});
        let t = req.render(&rt, &[&o], json!({}));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Size", "Port", "Missing"]);
        assert_eq!(t["rows"][0]["cells"], json!(["w", 3, 8080, null]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
