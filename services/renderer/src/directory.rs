//! Plain manifest directories (Argo CD's `directory` source): YAML and JSON files in path
//! order, multi-document YAML, `List` kinds flattened, `include`/`exclude` globs. Pure: files
//! in, manifests out, so every rule here is tested without a bus or a repository.

use gitfleet_engine::glob::Glob;
use gitfleet_messages::RepoFile;
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// What of a directory to render, as in the Application's `source.directory`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DirectoryOptions {
    /// The app's path in the repository: `include`/`exclude` match paths relative to it.
    pub path: String,
    /// Whether files in subdirectories count (`directory.recurse`).
    pub recurse: bool,
    /// Glob of files to take, e.g. `{deploy.yaml,svc.yaml}` ([`Glob`]'s syntax); empty takes
    /// every manifest.
    pub include: String,
    /// Glob of files to leave out; wins over `include`.
    pub exclude: String,
}

/// A file that cannot be turned into manifests. The message names the file (and the line,
/// when the parser knows it), since that is what the user has to go and fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: line {line}, column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Renders the manifest files among `files` (repository-relative paths, as a files reply
/// gives them) into Kubernetes objects, in path order and document order.
pub fn render_directory(
    files: &[RepoFile],
    options: &DirectoryOptions,
) -> Result<Vec<Value>, RenderError> {
    let base = normalize_dir(&options.path);
    // Compiled once per render, not once per file. Empty means no filter.
    let compile = |pattern: &str| (!pattern.is_empty()).then(|| Glob::new(pattern));
    let (include, exclude) = (compile(&options.include), compile(&options.exclude));
    let mut chosen: Vec<(&RepoFile, String)> = files
        .iter()
        .filter(|file| !file.binary && is_manifest_file(&file.path))
        .filter_map(|file| Some((file, relative(&file.path, &base)?)))
        .filter(|(_, relative)| options.recurse || !relative.contains('/'))
        .filter(|(_, relative)| !exclude.as_ref().is_some_and(|g| g.matches(relative)))
        .filter(|(_, relative)| include.as_ref().is_none_or(|g| g.matches(relative)))
        .collect();
    chosen.sort_by(|a, b| a.0.path.cmp(&b.0.path));

    let mut manifests = Vec::new();
    for (file, _) in chosen {
        if file.path.ends_with(".json") {
            for (index, document) in parse_json(file)?.into_iter().enumerate() {
                push_object(&mut manifests, document, &file.path, index + 1)?;
            }
        } else {
            manifests.extend(parse_manifests(&file.path, &file.content)?);
        }
    }
    Ok(manifests)
}

/// The Kubernetes objects of one YAML stream (a file, or what a tool printed), `List`s
/// flattened; errors name `path`, the name the user knows the stream by.
pub fn parse_manifests(path: &str, content: &str) -> Result<Vec<Value>, RenderError> {
    let mut manifests = Vec::new();
    for (index, document) in parse_yaml_documents(path, content)?.into_iter().enumerate() {
        push_object(&mut manifests, document, path, index + 1)?;
    }
    Ok(manifests)
}

/// The manifests of a value a tool produced as JSON (Jsonnet): an object, or an array of
/// objects; `List` kinds are flattened as in files.
pub fn manifests_of_value(path: &str, value: Value) -> Result<Vec<Value>, RenderError> {
    let mut manifests = Vec::new();
    match value {
        Value::Array(items) => {
            for (index, item) in items.into_iter().enumerate() {
                push_object(&mut manifests, item, path, index + 1)?;
            }
        }
        other => push_object(&mut manifests, other, path, 1)?,
    }
    Ok(manifests)
}

/// Argo CD's manifest file pattern, less Jsonnet (rendered by `jsonnet.rs`).
fn is_manifest_file(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

/// `./apps/x/` → `apps/x`; the root is `""`.
fn normalize_dir(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` relative to the directory `base`, `None` if it is not below it.
fn relative(path: &str, base: &str) -> Option<String> {
    if base.is_empty() {
        return Some(path.to_owned());
    }
    path.strip_prefix(base)?
        .strip_prefix('/')
        .map(str::to_owned)
}

/// The YAML documents of `content`, as JSON values (empty documents left out).
pub fn parse_yaml_documents(path: &str, content: &str) -> Result<Vec<Value>, RenderError> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(content) {
        let value =
            serde_yaml_ng::Value::deserialize(document).map_err(|err| yaml_error(path, &err))?;
        let value = yaml_to_json(value).map_err(|message| RenderError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        // `---` with nothing (or only comments) after it: Argo CD skips such documents.
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn parse_json(file: &RepoFile) -> Result<Vec<Value>, RenderError> {
    if file.content.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(&file.content).map_err(|err| {
        let shown = err.to_string();
        let message = match shown.find(" at line ") {
            Some(at) => shown[..at].to_owned(),
            None => shown,
        };
        RenderError::Syntax {
            path: file.path.clone(),
            line: err.line(),
            column: err.column(),
            message,
        }
    })?;
    // A top-level array is taken as several objects, as kubectl takes it.
    Ok(match value {
        Value::Array(items) => items,
        other => vec![other],
    })
}

fn yaml_error(path: &str, err: &serde_yaml_ng::Error) -> RenderError {
    let shown = err.to_string();
    // The parser appends " at line L column C" (and sometimes a context); the location is
    // given in our own form instead.
    let message = match shown
        .find(" at line ")
        .or_else(|| shown.find(" at position "))
    {
        Some(at) => shown[..at].to_owned(),
        None => shown,
    };
    match err.location() {
        Some(location) => RenderError::Syntax {
            path: path.to_owned(),
            line: location.line(),
            column: location.column(),
            message,
        },
        None => RenderError::Invalid {
            path: path.to_owned(),
            message,
        },
    }
}

/// YAML to JSON as Kubernetes tooling does it: non-string keys become strings, tags are
/// dropped, and only finite numbers are allowed.
fn yaml_to_json(value: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f).ok_or_else(|| format!("number {n} is not finite"))?,
                )
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                object.insert(key, yaml_to_json(value)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

/// Adds one document, flattening lists (`kind: List`, or any `*List` with `items`).
fn push_object(
    out: &mut Vec<Value>,
    document: Value,
    path: &str,
    index: usize,
) -> Result<(), RenderError> {
    let invalid = |message: String| RenderError::Invalid {
        path: path.to_owned(),
        message: format!("document {index}: {message}"),
    };
    let Value::Object(object) = document else {
        return Err(invalid(format!(
            "expected a Kubernetes object, found {}",
            type_name(&document)
        )));
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_list = kind.ends_with("List") && object.get("items").is_some_and(Value::is_array);
    if is_list {
        let Some(Value::Array(items)) = object.get("items") else {
            unreachable!("checked above");
        };
        for item in items {
            if !item.is_object() {
                return Err(invalid(format!(
                    "{kind} item is {}, not an object",
                    type_name(item)
                )));
            }
            check_identity(item).map_err(|m| invalid(format!("{kind} item: {m}")))?;
            out.push(item.clone());
        }
        return Ok(());
    }
    let object = Value::Object(object);
    check_identity(&object).map_err(invalid)?;
    out.push(object);
    Ok(())
}

/// Kubernetes refuses objects without both; saying so here names the file.
fn check_identity(object: &Value) -> Result<(), String> {
    for field in ["apiVersion", "kind"] {
        match object.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(format!("object has no {field}")),
        }
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(path: &str, content: &str) -> RepoFile {
        RepoFile {
            path: path.to_owned(),
            content: content.to_owned(),
            binary: false,
            link: String::new(),
        }
    }

    fn opts(path: &str) -> DirectoryOptions {
        DirectoryOptions {
            path: path.to_owned(),
            ..Default::default()
        }
    }

    fn names(manifests: &[Value]) -> Vec<String> {
        manifests
            .iter()
            .map(|m| {
                format!(
                    "{}/{}",
                    m["kind"].as_str().unwrap(),
                    m["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\n";

    fn cm(name: &str) -> String {
        CM.replace("NAME", name)
    }

    #[test]
    fn multi_document_yaml_in_path_order_skipping_empty_documents() {
        let files = [
            file(
                "apps/web/b.yaml",
                &format!(
                    "---\n# only a comment\n---\n{}---\n{}\n---\n",
                    cm("b1"),
                    cm("b2")
                ),
            ),
            file("apps/web/a.yml", &cm("a")),
            file("apps/web/README.md", "# not a manifest: ignored\n"),
            file("apps/web/logo.png", ""),
        ];
        let out = render_directory(&files, &opts("apps/web")).unwrap();
        assert_eq!(names(&out), ["ConfigMap/a", "ConfigMap/b1", "ConfigMap/b2"]);
    }

    #[test]
    fn json_files_and_non_string_keys() {
        let files = [
            file(
                "x/svc.json",
                r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}"#,
            ),
            file(
                "x/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  1: one\n  true: yes\n",
            ),
        ];
        let out = render_directory(&files, &opts("./x/")).unwrap();
        assert_eq!(names(&out), ["ConfigMap/c", "Service/s"]);
        assert_eq!(out[0]["data"], json!({"1": "one", "true": "yes"}));
    }

    #[test]
    fn lists_are_flattened() {
        let files = [file(
            "l.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: two}\n---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: three}\n",
        )];
        let out = render_directory(&files, &opts("")).unwrap();
        assert_eq!(
            names(&out),
            ["ConfigMap/one", "Secret/two", "ConfigMap/three"]
        );
    }

    #[test]
    fn recurse_include_and_exclude() {
        let files = [
            file("app/a.yaml", &cm("a")),
            file("app/b.yaml", &cm("b")),
            file(
                "app/c.json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
            ),
            file("app/sub/d.yaml", &cm("d")),
            file("other/e.yaml", &cm("e")),
        ];
        let check = |recurse: bool, include: &str, exclude: &str, expected: &[&str]| {
            let options = DirectoryOptions {
                path: "app".into(),
                recurse,
                include: include.into(),
                exclude: exclude.into(),
            };
            let out = render_directory(&files, &options).unwrap();
            let got: Vec<_> = out
                .iter()
                .map(|m| m["metadata"]["name"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(
                got, expected,
                "recurse={recurse} include={include:?} exclude={exclude:?}"
            );
        };
        check(false, "", "", &["a", "b", "c"]);
        check(true, "", "", &["a", "b", "c", "d"]);
        check(true, "{a.yaml,b.yaml}", "", &["a", "b"]);
        check(true, "*.yaml", "", &["a", "b", "d"]);
        check(true, "", "sub/*", &["a", "b", "c"]);
        check(true, "*.yaml", "{b.yaml,sub/*}", &["a"]);
        check(true, "*.json", "", &["c"]);
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let content =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n  - c\n";
        let err = render_directory(&[file("apps/web/deploy.yaml", content)], &opts("apps/web"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "apps/web/deploy.yaml: line 7, column 3: did not find expected key"
        );

        // Lines count from the start of the file, not of the document.
        let content = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n bad: indent\n",
            cm("x")
        );
        let err = render_directory(&[file("m.yaml", &content)], &opts("")).unwrap_err();
        assert!(matches!(err, RenderError::Syntax { line: 10, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "m.yaml: line 10, column 2: did not find expected key"
        );
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let err = render_directory(
            &[file("a/x.json", "{\n  \"kind\": \"ConfigMap\",\n  oops\n}")],
            &opts("a"),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("a/x.json: line 3, column 3: "),
            "{err}"
        );
    }

    #[test]
    fn documents_must_be_kubernetes_objects() {
        let missing_kind = "apiVersion: v1\nmetadata: {name: x}\n";
        let err = render_directory(&[file("a.yaml", missing_kind)], &opts("")).unwrap_err();
        assert_eq!(err.to_string(), "a.yaml: document 1: object has no kind");

        let err = render_directory(
            &[file(
                "b.yaml",
                &format!("{}---\n- just\n- a list\n", cm("x")),
            )],
            &opts(""),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.yaml: document 2: expected a Kubernetes object, found a list"
        );

        let err = render_directory(
            &[file("c.yaml", "kind: ConfigMap\nmetadata: {name: x}\n")],
            &opts(""),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.yaml: document 1: object has no apiVersion"
        );

        let err = render_directory(&[file("d.yaml", "just a string\n")], &opts("")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.yaml: document 1: expected a Kubernetes object, found a string"
        );
    }
}
