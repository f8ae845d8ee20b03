//! Turns a desired [`Ruleset`] into one `nft -f` transaction: from scratch, over a table
//! whose objects are known only by name, or as a diff against what the last successful
//! sync wrote (only changed chains are rewritten, map elements are added/removed one by one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::ruleset::{Chain, Ruleset, Set, SetKind};

/// What the table holds before the transaction.
pub enum Previous<'a> {
    /// Nothing we trust: the script deletes the table and builds it again (at start, so a
    /// restarted proxy leaves no stale rules).
    Fresh,
    /// The names of the chains and sets in the table (from `nft list`), contents unknown:
    /// every object is rewritten in place, so affinity entries survive.
    Names {
        chains: BTreeSet<String>,
        sets: BTreeMap<String, SetKind>,
    },
    /// Exactly what the last successful transaction left.
    Known(&'a Ruleset),
}

/// A previous object: known content, or only known to exist.
enum Prev<'a, T> {
    Content(&'a T),
    Exists,
}

fn lookup<'a, T>(
    known: Option<&'a BTreeMap<String, T>>,
    names: Option<&BTreeSet<String>>,
    name: &str,
) -> Option<Prev<'a, T>> {
    if let Some(k) = known {
        return k.get(name).map(Prev::Content);
    }
    names.filter(|n| n.contains(name)).map(|_| Prev::Exists)
}

fn chain_decl(out: &mut String, table: &str, name: &str, chain: &Chain) {
    match chain.hook {
        Some(hook) => {
            let _ = writeln!(out, "add chain ip {table} {name} {{ {hook} ; }}");
        }
        None => {
            let _ = writeln!(out, "add chain ip {table} {name}");
        }
    }
}

fn elements_line(out: &mut String, verb: &str, table: &str, name: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    // Bounded lines keep nft's parser (and its error messages) manageable.
    for chunk in items.chunks(512) {
        let _ = writeln!(
            out,
            "{verb} element ip {table} {name} {{ {} }}",
            chunk.join(", ")
        );
    }
}

fn element_text(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key} : {value}")
    }
}

/// The transaction taking the table from `prev` to `next`; empty when nothing changes.
pub fn render(table: &str, prev: &Previous<'_>, next: &Ruleset) -> String {
    let mut out = String::new();
    let (known, chain_names, set_names) = match prev {
        Previous::Fresh => {
            // `add` first so the `delete` cannot fail on a missing table.
            let _ = writeln!(out, "add table ip {table}");
            let _ = writeln!(out, "delete table ip {table}");
            (None, Some(BTreeSet::new()), Some(BTreeSet::new()))
        }
        Previous::Names { chains, sets } => (
            None,
            Some(chains.clone()),
            Some(sets.keys().cloned().collect()),
        ),
        Previous::Known(r) => (Some(*r), None, None),
    };
    let prev_chain = |name: &str| lookup(known.map(|r| &r.chains), chain_names.as_ref(), name);
    let prev_set = |name: &str| lookup(known.map(|r| &r.sets), set_names.as_ref(), name);
    let stale_chains: Vec<&String> = match known {
        Some(r) => r
            .chains
            .keys()
            .filter(|c| !next.chains.contains_key(*c))
            .collect(),
        None => chain_names
            .iter()
            .flatten()
            .filter(|c| !next.chains.contains_key(*c))
            .collect(),
    };
    let stale_sets: Vec<&String> = match known {
        Some(r) => r
            .sets
            .keys()
            .filter(|s| !next.sets.contains_key(*s))
            .collect(),
        None => set_names
            .iter()
            .flatten()
            .filter(|s| !next.sets.contains_key(*s))
            .collect(),
    };

    // Which chains get (re)written, which sets get (re)filled.
    let mut rewrite: Vec<(&String, &Chain)> = Vec::new();
    let mut body = String::new();
    for (name, chain) in &next.chains {
        match prev_chain(name) {
            None => {
                chain_decl(&mut body, table, name, chain);
                rewrite.push((name, chain));
            }
            Some(Prev::Content(old)) if old == chain => {}
            Some(_) => {
                // Re-declaring is a no-op for an existing chain, and makes a base chain
                // whose hook we know only by name certain to exist.
                chain_decl(&mut body, table, name, chain);
                let _ = writeln!(body, "flush chain ip {table} {name}");
                rewrite.push((name, chain));
            }
        }
    }
    let mut refill: Vec<(&String, &Set, Vec<String>)> = Vec::new();
    let mut removals = String::new();
    for (name, set) in &next.sets {
        let kw = set.kind.keyword();
        let decl = format!("add {kw} ip {table} {name} {{ {} ; }}\n", set.decl);
        match prev_set(name) {
            None => {
                body.push_str(&decl);
                if !set.dynamic {
                    let all = set
                        .elements
                        .iter()
                        .map(|(k, v)| element_text(k, v))
                        .collect();
                    refill.push((name, set, all));
                }
            }
            Some(Prev::Exists) => {
                body.push_str(&decl);
                if !set.dynamic {
                    let _ = writeln!(body, "flush {kw} ip {table} {name}");
                    let all = set
                        .elements
                        .iter()
                        .map(|(k, v)| element_text(k, v))
                        .collect();
                    refill.push((name, set, all));
                }
            }
            Some(Prev::Content(old)) => {
                if set.dynamic || old.elements == set.elements {
                    continue;
                }
                let gone: Vec<String> = old
                    .elements
                    .iter()
                    .filter(|(k, v)| set.elements.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect();
                elements_line(&mut removals, "delete", table, name, &gone);
                let added = set
                    .elements
                    .iter()
                    .filter(|(k, v)| old.elements.get(*k) != Some(*v))
                    .map(|(k, v)| element_text(k, v))
                    .collect();
                refill.push((name, set, added));
            }
        }
    }
    let unchanged = body.is_empty()
        && removals.is_empty()
        && rewrite.is_empty()
        && refill.iter().all(|r| r.2.is_empty())
        && stale_chains.is_empty()
        && stale_sets.is_empty();
    if unchanged && !matches!(prev, Previous::Fresh) {
        return String::new();
    }

    let _ = writeln!(
        out,
        "add table ip {table} {{ comment \"rkube-proxy: Service virtual IPs (generated)\" ; }}"
    );
    // Order matters inside the transaction: declare new objects, drop references to the
    // objects going away (flush their chains, delete their map elements), write rules and
    // elements pointing at the new objects, and only then delete what is no longer used.
    out.push_str(&body);
    for name in &stale_chains {
        let _ = writeln!(out, "flush chain ip {table} {name}");
    }
    out.push_str(&removals);
    for (name, chain) in &rewrite {
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule ip {table} {name} {rule}");
        }
    }
    for (name, _, items) in &refill {
        elements_line(&mut out, "add", table, name, items);
    }
    for name in &stale_chains {
        let _ = writeln!(out, "delete chain ip {table} {name}");
    }
    for name in &stale_sets {
        let kind = match prev {
            Previous::Known(r) => r.sets.get(*name).map(|s| s.kind),
            Previous::Names { sets, .. } => sets.get(*name).copied(),
            Previous::Fresh => None,
        };
        let kw = kind.unwrap_or(SetKind::Set).keyword();
        let _ = writeln!(out, "delete {kw} ip {table} {name}");
    }
    out
}
