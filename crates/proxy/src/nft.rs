//! Running `nft` (and other tools) in the target network namespace: scripts go in through
//! `nft -f -` so each is one atomic transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::ruleset::SetKind;

/// A command run in `netns` (through `nsenter`), or in our own namespace when `None`.
pub fn command_in(netns: Option<&Path>, program: &str) -> Command {
    Command::from(net::netns::command(netns, program))
}

/// Our table in one network namespace.
#[derive(Clone, Debug)]
pub struct Nft {
    pub netns: Option<PathBuf>,
    pub table: String,
}

/// The names of the chains and sets a table holds.
#[derive(Debug, Default)]
pub struct Objects {
    pub chains: BTreeSet<String>,
    pub sets: BTreeMap<String, SetKind>,
}

impl Nft {
    pub fn new(netns: Option<PathBuf>, table: &str) -> Self {
        Nft {
            netns,
            table: table.to_string(),
        }
    }

    fn nft(&self) -> Command {
        let mut c = command_in(self.netns.as_deref(), "nft");
        c.kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = self.nft();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .context("running nft (Debian package nftables; nsenter from util-linux)")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Written from a task: nft may fill its stdout/stderr pipes before reading
            // everything, and we collect those below.
            let input = input.to_string();
            tokio::spawn(async move {
                let _ = pipe.write_all(input.as_bytes()).await;
                let _ = pipe.shutdown().await;
            });
        }
        let out = child.wait_with_output().await.context("waiting for nft")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err: String = err.chars().take(4000).collect();
            bail!(
                "nft {} failed ({}): {}",
                args.join(" "),
                out.status,
                err.trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies `script` as one transaction.
    pub async fn apply(&self, script: &str) -> Result<()> {
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    /// Parses and checks `script` against the kernel without committing it.
    pub async fn check(&self, script: &str) -> Result<()> {
        self.run(&["-c", "-f", "-"], Some(script)).await.map(|_| ())
    }

    /// `nft list table`, or `None` when the table does not exist.
    pub async fn list(&self) -> Result<Option<String>> {
        let table = self.table.clone();
        match self.run(&["list", "table", "ip", &table], None).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if format!("{e:#}").contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The chains and sets the table holds now (empty if it does not exist).
    pub async fn objects(&self) -> Result<Objects> {
        let table = self.table.clone();
        let text = match self.run(&["-t", "list", "table", "ip", &table], None).await {
            Ok(s) => s,
            Err(e) if format!("{e:#}").contains("No such file or directory") => String::new(),
            Err(e) => return Err(e),
        };
        Ok(parse_objects(&text))
    }

    /// Removes the table (when the proxy is told to clean up).
    pub async fn delete_table(&self) -> Result<()> {
        let t = &self.table;
        self.apply(&format!("add table ip {t}\ndelete table ip {t}\n"))
            .await
    }
}

/// Chain and set names from `nft -t list table` output.
pub fn parse_objects(text: &str) -> Objects {
    let mut o = Objects::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name), Some("{")) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        match kind {
            "chain" => {
                o.chains.insert(name.to_string());
            }
            "set" => {
                o.sets.insert(name.to_string(), SetKind::Set);
            }
            "map" => {
                o.sets.insert(name.to_string(), SetKind::Map);
            }
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn objects_are_parsed_from_a_listing() {
        let text = "table ip t {\n\tmap service-ips {\n\t\ttype ipv4_addr : verdict\n\t}\n\n\tset affinity-X-a/b/tcp/__10.0.0.1/80 {\n\t\ttype ipv4_addr\n\t}\n\n\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n}\n";
        let o = parse_objects(text);
        assert_eq!(o.chains.iter().collect::<Vec<_>>(), ["services"]);
        assert_eq!(o.sets.get("service-ips"), Some(&SetKind::Map));
        assert_eq!(
            o.sets.get("affinity-X-a/b/tcp/__10.0.0.1/80"),
            Some(&SetKind::Set)
        );
    }
}
