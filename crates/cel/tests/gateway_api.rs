//! The Gateway API v1.6.1 standard CRDs' `x-kubernetes-validations` rules: all compile, and
//! every standard example validates, as on Kubernetes; a few documented refusals give
//! upstream's messages.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::path::{Path, PathBuf};

use apiextensions::schema::Structural;
use cel::{Rules, Violation};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../apiserver/tests/testdata/gateway-api-v1.6.1")
}

/// The YAML files under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One served version of a CRD: its group, kind, version, defaulting and rules.
struct Version {
    group: String,
    kind: String,
    name: String,
    structural: Structural,
    rules: Rules,
}

fn versions() -> Vec<Version> {
    let mut out = Vec::new();
    for path in yaml_files(&testdata().join("config/crd/standard")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs {
            if doc["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let crd: CustomResourceDefinition = serde_json::from_value(doc).unwrap();
            for (i, v) in crd.spec.versions.iter().enumerate() {
                let schema = v
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .unwrap();
                let at = format!("spec.versions[{i}].schema.openAPIV3Schema");
                let rules = Rules::new(schema, &at).unwrap_or_else(|e| {
                    panic!(
                        "{} {}: rules don't compile: {e:#?}",
                        crd.metadata.name.as_deref().unwrap_or_default(),
                        v.name
                    )
                });
                let structural = Structural::new(schema, &at).unwrap_or_else(|e| {
                    panic!("{} {}: not structural: {e:?}", crd.spec.names.kind, v.name)
                });
                out.push(Version {
                    group: crd.spec.group.clone(),
                    kind: crd.spec.names.kind.clone(),
                    name: v.name.clone(),
                    structural,
                    rules,
                });
            }
        }
    }
    out
}

fn version<'a>(versions: &'a [Version], api_version: &str, kind: &str) -> Option<&'a Version> {
    let (group, name) = api_version.split_once('/')?;
    versions
        .iter()
        .find(|v| v.group == group && v.name == name && v.kind == kind)
}

/// Defaults `obj` as the API server does before running the rules, then validates it.
fn validate(v: &Version, mut obj: Value, old: Option<Value>) -> Vec<Violation> {
    v.structural.default(&mut obj);
    let old = old.map(|mut o| {
        v.structural.default(&mut o);
        o
    });
    v.rules.validate(&obj, old.as_ref())
}

#[test]
fn every_crd_compiles_and_every_example_validates() {
    let versions = versions();
    assert!(
        versions.len() >= 10,
        "found {} CRD versions",
        versions.len()
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in yaml_files(&testdata().join("examples/standard")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for obj in docs {
            let (Some(api_version), Some(kind)) =
                (obj["apiVersion"].as_str(), obj["kind"].as_str())
            else {
                continue;
            };
            let Some(v) = version(&versions, api_version, kind) else {
                // Every Gateway API object must be of a version a CRD here declares.
                if api_version.contains("gateway.networking.k8s.io/") {
                    failures.push(format!(
                        "{}: no CRD for {api_version} {kind}",
                        path.display()
                    ));
                }
                continue;
            };
            checked += 1;
            let violations = validate(v, obj.clone(), None);
            if !violations.is_empty() {
                failures.push(format!(
                    "{}: {kind} {}: {violations:#?}",
                    path.display(),
                    obj["metadata"]["name"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 90, "checked only {checked} objects");
}

/// The violations of `yaml` (an object of one of the CRDs), as a create or, with `old`, an
/// update: field and message.
fn refusals(versions: &[Version], yaml: &str, old: Option<&str>) -> Vec<(String, String)> {
    let obj: Value = serde_saphyr::from_str(yaml).unwrap();
    let old = old.map(|o| serde_saphyr::from_str::<Value>(o).unwrap());
    let v = version(
        versions,
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
    )
    .unwrap();
    validate(v, obj, old)
        .into_iter()
        .map(|v| (v.field, v.message))
        .collect()
}

fn pair(field: &str, message: &str) -> (String, String) {
    (field.to_owned(), message.to_owned())
}

#[test]
fn documented_refusals_have_upstreams_messages() {
    let versions = versions();
    assert_eq!(
        refusals(
            &versions,
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec:\n  rules:\n  - matches:\n    - path: {type: PathPrefix, value: foo}\n",
            None,
        ),
        vec![pair(
            "spec.rules[0].matches[0].path",
            "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
        )]
    );
    // The rule that indexes `self.matches[0]`: two matches with a prefix rewrite.
    assert_eq!(
        refusals(
            &versions,
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec:\n  rules:\n  - matches:\n    - path: {type: PathPrefix, value: /a}\n    - path: {type: PathPrefix, value: /b}\n    filters:\n    - type: URLRewrite\n      urlRewrite:\n        path: {type: ReplacePrefixMatch, replacePrefixMatch: /c}\n",
            None,
        ),
        vec![pair(
            "spec.rules[0]",
            "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
        )]
    );
    let tls_route = |hostname: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: bad}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [example.com, '{hostname}']\n  rules:\n  - backendRefs: [{{name: svc, port: 443}}]\n"
        )
    };
    let ip = pair("spec.hostnames", "Hostnames cannot contain an IP");
    assert_eq!(
        refusals(&versions, &tls_route("1.2.3.4"), None),
        vec![ip.clone()]
    );
    assert_eq!(
        refusals(&versions, &tls_route("2001:db8::1"), None),
        vec![
            ip,
            pair(
                "spec.hostnames",
                "Hostnames must be valid based on RFC-1123"
            )
        ]
    );
    assert!(refusals(&versions, &tls_route("1.2.3.4.example.com"), None).is_empty());
    // A transition rule: a GatewayClass's controllerName is immutable.
    let class = |controller: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: gc}}\nspec: {{controllerName: example.com/{controller}}}\n"
        )
    };
    assert_eq!(
        refusals(&versions, &class("b"), Some(&class("a"))),
        vec![pair("spec.controllerName", "Value is immutable")]
    );
    assert!(refusals(&versions, &class("a"), Some(&class("a"))).is_empty());
}

/// The bundle's ValidatingAdmissionPolicy expressions over its own CRDs: installing them
/// is allowed; installing the experimental channel over them is not.
#[test]
fn safe_upgrades_policy_allows_the_bundle() {
    let dir = testdata().join("config/crd/standard");
    let text = std::fs::read_to_string(dir.join("gateway.networking.k8s.io_vap_safeupgrades.yaml"))
        .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let programs: Vec<cel::Program> = docs[0]["spec"]["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| cel::compile(v["expression"].as_str().unwrap(), &["object", "oldObject"]).unwrap())
        .collect();
    assert_eq!(programs.len(), 2);
    let mut crds = 0;
    for path in yaml_files(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let Some(crd) = docs
            .into_iter()
            .find(|d| d["kind"] == "CustomResourceDefinition")
        else {
            continue;
        };
        crds += 1;
        let null = Value::Null;
        for p in &programs {
            assert_eq!(
                p.eval_bool(&[("object", &crd), ("oldObject", &null)]),
                Ok(true),
                "{}",
                path.display()
            );
            assert_eq!(
                p.eval_bool(&[("object", &crd), ("oldObject", &crd)]),
                Ok(true),
                "{}",
                path.display()
            );
        }
        let mut experimental = crd.clone();
        experimental["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] =
            "experimental".into();
        let vars = [("object", &experimental), ("oldObject", &crd)];
        assert_eq!(programs[0].eval_bool(&vars), Ok(false));
        let mut old_bundle = crd.clone();
        old_bundle["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] =
            "v1.4.0".into();
        let vars = [("object", &old_bundle), ("oldObject", &null)];
        assert_eq!(programs[1].eval_bool(&vars), Ok(false));
    }
    assert_eq!(crds, 10);
}
