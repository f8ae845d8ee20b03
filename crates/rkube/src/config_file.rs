//! `--config FILE` for `rkube server` and `rkube agent`, as k3s has it: every flag as a YAML
//! key (`data-dir: /srv/rkube`, `disable-agent: true`, `node-label: [a=b, c=d]`), read from
//! `/etc/rkube/config.yaml` when no `--config` is given and that file exists (or from
//! `RKUBE_CONFIG_FILE`). Flags on the command line override the file's values; list flags
//! get the file's items and then the command line's.
//!
//! The file becomes flags placed before the command line's own, so every rule, default and
//! error of the command line applies to it too (an unknown key is an unknown flag).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

/// The file read when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/rkube/config.yaml";

/// The subcommands that take a config file.
const WITH_CONFIG: [&str; 2] = ["server", "agent"];

/// `args` (as the process got them) with the config file's flags put in front of the
/// subcommand's own, and `--config` itself taken out.
pub fn expand(args: Vec<OsString>, default: Option<&Path>) -> anyhow::Result<Vec<OsString>> {
    let Some(sub) = args.get(1).and_then(|a| a.to_str()) else {
        return Ok(args);
    };
    if !WITH_CONFIG.contains(&sub) {
        return Ok(args);
    }
    let mut rest: Vec<OsString> = Vec::with_capacity(args.len());
    let mut given: Option<PathBuf> = None;
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--config") | Some("-c") => {
                let v = it.next().context("--config needs a file")?;
                given = Some(PathBuf::from(v));
            }
            Some(s) if s.starts_with("--config=") => {
                given = Some(PathBuf::from(&s["--config=".len()..]));
            }
            _ => rest.push(a.clone()),
        }
    }
    let file = match given {
        Some(f) => Some(f),
        None => default.filter(|p| p.exists()).map(Path::to_path_buf),
    };
    let mut out: Vec<OsString> = args[..2].to_vec();
    if let Some(file) = file {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading the config file {}", file.display()))?;
        out.extend(flags(&text).with_context(|| format!("in the config file {}", file.display()))?);
    }
    out.extend(rest);
    Ok(out)
}

/// The flags a config file stands for.
fn flags(yaml: &str) -> anyhow::Result<Vec<OsString>> {
    let doc: Value = if yaml.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(yaml).context("not YAML")?
    };
    let Value::Object(map) = doc else {
        bail!("the file must be a map of flag names to values");
    };
    let mut out = Vec::new();
    for (key, value) in map {
        if key.starts_with('-') || key == "config" {
            bail!("{key:?} is not a flag name (write keys without dashes, as `data-dir`)");
        }
        let flag = format!("--{key}");
        let scalar = |v: &Value| -> anyhow::Result<String> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                other => bail!("{key}: {other} is not a value a flag takes"),
            }
        };
        match &value {
            Value::Bool(true) => out.push(OsString::from(&flag)),
            Value::Bool(false) | Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    out.push(OsString::from(format!("{flag}={}", scalar(item)?)));
                }
            }
            v => out.push(OsString::from(format!("{flag}={}", scalar(v)?))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn keys_become_flags_before_the_command_lines_own() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "data-dir: /srv/r\nhttps-listen-port: 7443\ndisable-agent: true\nsecrets-encryption: false\nnode-label: [a=b, c=d]\n",
        )
        .unwrap();
        let args = os(&[
            "rkube",
            "server",
            "--config",
            f.to_str().unwrap(),
            "--https-listen-port",
            "8443",
        ]);
        let got = expand(args, None).unwrap();
        assert_eq!(
            got,
            os(&[
                "rkube",
                "server",
                "--data-dir=/srv/r",
                "--https-listen-port=7443",
                "--disable-agent",
                "--node-label=a=b",
                "--node-label=c=d",
                "--https-listen-port",
                "8443"
            ])
        );
        // The default file is read only when present, and never for other subcommands.
        let plain = os(&["rkube", "server", "--data-dir", "/x"]);
        assert_eq!(
            expand(plain.clone(), Some(&dir.path().join("none.yaml"))).unwrap(),
            plain
        );
        let other = os(&["rkube", "killall", "--data-dir", "/x"]);
        assert_eq!(expand(other.clone(), Some(&f)).unwrap(), other);
        let defaulted = expand(os(&["rkube", "agent"]), Some(&f)).unwrap();
        assert!(defaulted.contains(&OsString::from("--data-dir=/srv/r")));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "- a\n- b\n").unwrap();
        let err = expand(
            os(&["rkube", "server", "--config", f.to_str().unwrap()]),
            None,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("a map of flag names"),
            "{err:#}"
        );
        std::fs::write(&f, "--data-dir: /x\n").unwrap();
        let err = expand(
            os(&["rkube", "server", "--config", f.to_str().unwrap()]),
            None,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("without dashes"), "{err:#}");
        let missing = expand(
            os(&["rkube", "server", "--config", "/nonexistent.yaml"]),
            None,
        );
        assert!(format!("{:#}", missing.unwrap_err()).contains("reading the config file"));
    }
}
