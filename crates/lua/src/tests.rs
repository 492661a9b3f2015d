use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// Argo CD's contract as its CRD scripts use it: globals, `ipairs` over conditions,
/// `table.getn`, a message from the object.
const CERTIFICATE: &str = r#"
hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  if table.getn(obj.status.conditions) == 0 then
    hs.status = "Progressing"
    hs.message = "no conditions yet"
    return hs
  end
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for certificate"
return hs
"#;

fn cert(conditions: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "c", "annotations": null}, "status": {"conditions": conditions}})
}

fn health(script: &str, obj: &serde_json::Value) -> Result<Option<HealthVerdict>, LuaError> {
    Script::new("test.lua", script).health(obj, &Limits::default())
}

fn verdict(status: &str, message: &str) -> Option<HealthVerdict> {
    Some(HealthVerdict {
        status: status.into(),
        message: message.into(),
    })
}

#[test]
fn a_health_script_judges_the_object_as_argo_cd_runs_it() {
    let script = Script::new("cert-manager.io/Certificate", CERTIFICATE);
    let limits = Limits::default();
    assert_eq!(
        script.health(&cert(json!([])), &limits).unwrap(),
        verdict("Progressing", "no conditions yet")
    );
    assert_eq!(
        script
            .health(
                &cert(json!([{"type": "Ready", "status": "True", "message": "issued"}])),
                &limits
            )
            .unwrap(),
        verdict("Healthy", "issued")
    );
    assert_eq!(
        script
            .health(
                &cert(json!([{"type": "Issuing", "status": "True"},
                    {"type": "Ready", "status": "False", "message": "bad issuer"}])),
                &limits
            )
            .unwrap(),
        verdict("Degraded", "bad issuer")
    );
    // No status at all, and a JSON null, read as nil.
    let bare = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "status": null});
    assert_eq!(
        script.health(&bare, &limits).unwrap(),
        verdict("Progressing", "Waiting for certificate")
    );
}

#[test]
fn nil_or_an_empty_table_is_no_verdict_and_other_returns_are_refused() {
    let obj = json!({});
    assert_eq!(health("return nil", &obj).unwrap(), None);
    assert_eq!(health("return {}", &obj).unwrap(), None);
    assert_eq!(health("", &obj).unwrap(), None);
    assert_eq!(
        health("return {status = 'Healthy'}", &obj).unwrap(),
        verdict("Healthy", "")
    );
    assert_eq!(
        health("return 42", &obj).unwrap_err(),
        LuaError::Return {
            origin: "test.lua".into(),
            got: "number".into()
        }
    );
    assert!(matches!(
        health("return {status = 1}", &obj).unwrap_err(),
        LuaError::Return { got, .. } if got.contains("status is a number")
    ));
    let err = health("return {status = 'Fine'}", &obj).unwrap_err();
    assert_eq!(
        err,
        LuaError::InvalidStatus {
            origin: "test.lua".into(),
            status: "Fine".into()
        }
    );
    assert!(err.to_string().contains("test.lua"), "{err}");
    // A message without a status is no valid verdict either.
    assert!(matches!(
        health("return {message = 'hi'}", &obj).unwrap_err(),
        LuaError::InvalidStatus { status, .. } if status.is_empty()
    ));
}

#[test]
fn syntax_and_runtime_errors_name_the_script_and_line() {
    let obj = json!({});
    let err = health("hs = {\nreturn hs", &obj).unwrap_err();
    assert!(
        matches!(&err, LuaError::Syntax { origin, message } if origin == "test.lua" && message.contains("test.lua:2")),
        "{err:?}"
    );
    let err = health("local x = 1\nerror('no status here')", &obj).unwrap_err();
    assert_eq!(
        err,
        LuaError::Runtime {
            origin: "test.lua".into(),
            message: "test.lua:2: no status here".into()
        }
    );
    let err = health("return obj.spec.missing.field", &obj).unwrap_err();
    assert!(
        matches!(&err, LuaError::Runtime { message, .. } if message.contains("test.lua:1") && !message.contains("traceback")),
        "{err:?}"
    );
    // Unbounded recursion is stopped: by Lua's own stack limit, or by the memory limit
    // when the stack's memory reaches it first.
    let err = health("local function f() return 1 + f() end\nreturn f()", &obj).unwrap_err();
    assert!(
        matches!(&err, LuaError::Runtime { message, .. } if message.contains("stack overflow"))
            || matches!(err, LuaError::MemoryLimit { .. }),
        "{err:?}"
    );
}

#[test]
fn a_script_that_loops_forever_is_stopped_at_the_time_limit_and_not_run_again() {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let script = Script::new("loop.lua", "while true do end");
    let started = Instant::now();
    let err = script.health(&json!({}), &limits).unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err,
        LuaError::TimeLimit {
            origin: "loop.lua".into(),
            limit: limits.timeout
        }
    );
    assert!(
        took >= limits.timeout && took < Duration::from_secs(10),
        "{took:?}"
    );
    // Once stopped, refused at once.
    let started = Instant::now();
    assert_eq!(script.health(&json!({}), &limits).unwrap_err(), err);
    assert!(
        started.elapsed() < limits.timeout,
        "{:?}",
        started.elapsed()
    );
    // A loop of function calls and string work is stopped as well.
    let busy = Script::new(
        "busy.lua",
        "local s = 0\nwhile true do s = s + string.len(tostring(s)) end",
    );
    assert!(matches!(
        busy.health(&json!({}), &limits).unwrap_err(),
        LuaError::TimeLimit { .. }
    ));
}

#[test]
fn a_script_that_allocates_without_bound_is_stopped_at_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let grow = Script::new(
        "grow.lua",
        "local t = {}\nwhile true do t[#t + 1] = string.rep('x', 1000) .. #t end",
    );
    assert_eq!(
        grow.health(&json!({}), &limits).unwrap_err(),
        LuaError::MemoryLimit {
            origin: "grow.lua".into(),
            limit: 8 << 20
        }
    );
    // One allocation larger than the limit, made inside the string library.
    let huge = Script::new("huge.lua", "return {status = string.rep('x', 1e9)}");
    assert!(matches!(
        huge.health(&json!({}), &limits).unwrap_err(),
        LuaError::MemoryLimit { .. }
    ));
    // An object too large for the limit is refused the same way, not half-read.
    let big = json!({"data": "y".repeat(16 << 20)});
    assert!(matches!(
        Script::new("any.lua", "return nil")
            .health(&big, &limits)
            .unwrap_err(),
        LuaError::MemoryLimit { .. }
    ));
}

#[test]
fn the_sandbox_offers_argo_cds_libraries_and_nothing_that_reaches_outside() {
    let obj = json!({});
    let ok = |script: &str| {
        health(
            &format!(
                "if {script} then return {{status = 'Healthy'}} end return {{status = 'Degraded'}}"
            ),
            &obj,
        )
        .unwrap()
        .unwrap()
        .status
    };
    for absent in [
        "io",
        "dofile",
        "loadfile",
        "load",
        "loadstring",
        "coroutine",
        "collectgarbage",
        "setfenv",
        "getfenv",
        "os.execute",
        "os.getenv",
        "os.remove",
        "os.exit",
        "string.dump",
        "debug",
        "package",
    ] {
        assert_eq!(ok(&format!("{absent} == nil")), "Healthy", "{absent}");
    }
    for present in [
        "type(os.time()) == 'number'",
        "type(os.date('!%Y-%m-%dT%H:%M:%SZ', 0)) == 'string'",
        "require('os').time ~= nil",
        "require('string').find('abc', 'b') == 2",
        "table.concat({'a', 'b'}, ',') == 'a,b'",
        "math.huge > 0",
        "('x'):rep(3) == 'xxx'",
        "tonumber('3') == 3",
    ] {
        assert_eq!(ok(present), "Healthy", "{present}");
    }
    let err = health("local io = require('io')", &obj).unwrap_err();
    assert!(
        matches!(&err, LuaError::Runtime { message, .. } if message.contains("module 'io' is not in gitfleet's Lua sandbox")),
        "{err:?}"
    );
    // Nothing one run leaves in the globals reaches the next.
    let script = Script::new(
        "state.lua",
        "if seen or rawget(_G, 'other') then return {status = 'Degraded'} end\nseen = true\n_G.other = true\nreturn {status = 'Healthy'}",
    );
    for _ in 0..3 {
        assert_eq!(
            script.health(&obj, &Limits::default()).unwrap(),
            verdict("Healthy", "")
        );
    }
}

#[test]
fn a_library_directory_is_read_as_argo_cds_resource_customizations() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("cert-manager.io/Certificate/health.lua", CERTIFICATE);
    write(
        "_.crossplane.io/_/health.lua",
        "return {status = 'Healthy'}",
    );
    write("cert-manager.io/Certificate/testdata/ready.yaml", "kind: x");
    write("apps/Deployment/actions/restart/action.lua", "return obj");
    write("broken.io/Thing/health.lua", "hs = {");
    write("apps/Deployment/actions/discovery.lua", "return {}");
    write("apps/Deployment/actions/notes.md", "ignored");
    let library = Library::load(dir.path()).unwrap();
    let deployment = library.actions("apps/Deployment").unwrap();
    assert!(deployment.discovery.is_some());
    assert_eq!(deployment.actions.keys().collect::<Vec<_>>(), ["restart"]);
    assert!(library.actions("cert-manager.io/Certificate").is_none());
    let keys: Vec<&str> = library.health_scripts().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "broken.io/Thing",
            "cert-manager.io/Certificate",
            "*.crossplane.io/*"
        ]
    );
    let (_, broken) = library.health_scripts().next().unwrap();
    let err = broken.health(&json!({}), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, LuaError::Syntax { origin, .. } if origin.ends_with("broken.io/Thing/health.lua")),
        "{err:?}"
    );
    let missing = Library::load(&dir.path().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// The memory of the process running the scripts (a diff worker) stays bounded: each run
/// is held to its limit and gives all of it back.
#[test]
fn memory_stays_bounded_across_many_runs_stopped_at_the_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        timeout: Duration::from_secs(5),
    };
    let before = rss_bytes();
    for round in 0..20 {
        // A new script each round: a stopped one would not run again.
        let grow = Script::new(
            format!("grow-{round}.lua"),
            "local t = {}\nwhile true do t[#t + 1] = {1, 2, 3, 4, 5, 6, 7, 8} end",
        );
        let err = grow.health(&json!({}), &limits).unwrap_err();
        assert!(matches!(err, LuaError::MemoryLimit { .. }), "{err:?}");
    }
    let grown = rss_bytes().saturating_sub(before);
    // Unbounded, one run alone takes gigabytes before its time limit.
    assert!(grown < 256 << 20, "RSS grew by {} MiB", grown >> 20);
}

/// A restart as Argo CD's Deployment action does it, written here in that contract.
const RESTART: &str = r#"
local os = require("os")
if obj.spec.template.metadata == nil then
  obj.spec.template.metadata = {}
end
if obj.spec.template.metadata.annotations == nil then
  obj.spec.template.metadata.annotations = {}
end
obj.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = os.date("!%Y-%m-%dT%XZ")
return obj
"#;

#[test]
fn actions_are_discovered_and_run_as_argo_cd_runs_them() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "template": {"spec": {"securityContext": {},
            "containers": [{"name": "web", "image": "nginx"}]}}}});
    let limits = Limits::default();
    let discovery = Script::new(
        "discovery.lua",
        "actions = {}\nactions[\"restart\"] = {}\nactions[\"pause\"] = {[\"disabled\"] = true, [\"displayName\"] = \"Pause\"}\nreturn actions",
    );
    let found = discovery.discover_actions(&deployment, &limits).unwrap();
    assert_eq!(
        found,
        [
            ActionInfo {
                name: "pause".into(),
                disabled: true,
                display_name: "Pause".into(),
                icon_class: String::new(),
                params: Vec::new(),
            },
            ActionInfo {
                name: "restart".into(),
                disabled: false,
                display_name: String::new(),
                icon_class: String::new(),
                params: Vec::new(),
            },
        ]
    );

    let impacted = Script::new("restart/action.lua", RESTART)
        .run_action(&deployment, &Default::default(), &limits)
        .unwrap();
    assert_eq!(impacted.len(), 1);
    assert_eq!(impacted[0].operation, ActionOperation::Patch);
    let patched = &impacted[0].object;
    let restarted =
        patched["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap();
    assert!(
        restarted.len() == 20 && restarted.ends_with('Z'),
        "{restarted}"
    );
    // Numbers stay integers and an empty map stays a map, as Argo CD writes them back.
    assert_eq!(patched["spec"]["replicas"], json!(2));
    assert_eq!(
        patched["spec"]["template"]["spec"]["securityContext"],
        json!({})
    );

    // The list form, with parameters.
    let scale = Script::new(
        "scale/action.lua",
        "obj.spec.replicas = tonumber(actionParams[\"replicas\"])\nlocal cm = {apiVersion = \"v1\", kind = \"ConfigMap\", metadata = {name = \"note\"}}\nreturn {{operation = \"patch\", resource = obj}, {operation = \"create\", resource = cm}}",
    );
    let params = std::collections::BTreeMap::from([("replicas".to_owned(), "5".to_owned())]);
    let impacted = scale.run_action(&deployment, &params, &limits).unwrap();
    assert_eq!(
        impacted.iter().map(|i| i.operation).collect::<Vec<_>>(),
        [ActionOperation::Patch, ActionOperation::Create]
    );
    assert_eq!(impacted[0].object["spec"]["replicas"], json!(5));
    assert_eq!(impacted[1].object["metadata"]["name"], "note");
    // Bad returns are refused by name.
    let bad = Script::new(
        "bad/action.lua",
        "return {{operation = \"delete\", resource = obj}}",
    );
    assert!(matches!(
        bad.run_action(&deployment, &params, &limits).unwrap_err(),
        LuaError::Return { origin, .. } if origin == "bad/action.lua"
    ));
    assert!(matches!(
        Script::new("nil/action.lua", "return nil")
            .run_action(&deployment, &params, &limits)
            .unwrap_err(),
        LuaError::Return { .. }
    ));
}
