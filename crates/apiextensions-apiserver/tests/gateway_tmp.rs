#![allow(clippy::unwrap_used, clippy::expect_used)]
use apiextensions::schema::Structural;
use serde_json::Value;
use std::collections::HashMap;

fn docs(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn gateway() {
    let root = std::path::Path::new("../apiserver/tests/testdata/gateway-api-v1.6.1");
    let mut schemas: HashMap<(String, String), Structural> = HashMap::new();
    for e in std::fs::read_dir(root.join("config/crd/standard")).unwrap() {
        let p = e.unwrap().path();
        for d in docs(&p) {
            if d["kind"] != "CustomResourceDefinition" { continue; }
            let group = d["spec"]["group"].as_str().unwrap().to_string();
            let kind = d["spec"]["names"]["kind"].as_str().unwrap().to_string();
            for (i, v) in d["spec"]["versions"].as_array().unwrap().iter().enumerate() {
                let schema = serde_json::from_value(v["schema"]["openAPIV3Schema"].clone()).unwrap();
                let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
                match Structural::new(&schema, &path) {
                    Ok(s) => { schemas.insert((format!("{group}/{}", v["name"].as_str().unwrap()), kind.clone()), s); }
                    Err(errs) => panic!("{p:?} {kind}: {}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
                }
            }
        }
    }
    eprintln!("{} schemas", schemas.len());
    let mut n = 0;
    let mut stack = vec![root.join("examples")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p); continue; }
            if p.extension().and_then(|x| x.to_str()) != Some("yaml") { continue; }
            for mut d in docs(&p) {
                if d.is_null() { continue; }
                let key = (d["apiVersion"].as_str().unwrap_or("").to_string(), d["kind"].as_str().unwrap_or("").to_string());
                let Some(s) = schemas.get(&key) else { continue };
                s.default(&mut d);
                let unknown = s.prune(&mut d);
                let errs = s.validate(&d);
                assert!(unknown.is_empty(), "{p:?}: {unknown:?}");
                assert!(errs.is_empty(), "{p:?}: {}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
                n += 1;
                let raw = serde_json::to_vec(&d).unwrap();
                let t = std::time::Instant::now();
                for _ in 0..2000 {
                    let mut o: Value = serde_json::from_slice(&raw).unwrap();
                    s.default(&mut o);
                    s.prune(&mut o);
                    std::hint::black_box(s.validate(&o));
                }
                let all = t.elapsed() / 2000;
                let t = std::time::Instant::now();
                for _ in 0..2000 {
                    let o: Value = serde_json::from_slice(&raw).unwrap();
                    std::hint::black_box(o);
                }
                let parse = t.elapsed() / 2000;
                if n % 10 == 0 { eprintln!("{:?} {} bytes: parse {parse:?}, parse+all {all:?}", p.file_name().unwrap(), raw.len()); }
            }
        }
    }
    eprintln!("{n} examples valid");
}
