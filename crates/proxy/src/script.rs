//! Turns a desired [`Ruleset`] into one `nft -f` transaction: from scratch, over a table
//! whose objects are known only by name, or as a diff against what the last successful
//! sync wrote (only the chains of changed services are rewritten, map elements are
//! added/removed one by one).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;
use std::sync::Arc;

use crate::ruleset::{Chain, Ruleset, ServiceRules, Set, SetKind};

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

/// The sections of the transaction. Order matters inside it: declare new objects, drop
/// references to the objects going away (flush their chains, delete their map elements),
/// write rules and elements pointing at the new objects, and only then delete what is no
/// longer used.
struct Writer<'t> {
    table: &'t str,
    decl: String,
    flush: String,
    remove: String,
    rules: String,
    add: String,
    delete_chains: String,
    delete_sets: String,
}

impl<'t> Writer<'t> {
    fn new(table: &'t str) -> Self {
        Writer {
            table,
            decl: String::new(),
            flush: String::new(),
            remove: String::new(),
            rules: String::new(),
            add: String::new(),
            delete_chains: String::new(),
            delete_sets: String::new(),
        }
    }

    fn is_empty(&self) -> bool {
        [
            &self.decl,
            &self.flush,
            &self.remove,
            &self.rules,
            &self.add,
            &self.delete_chains,
            &self.delete_sets,
        ]
        .iter()
        .all(|s| s.is_empty())
    }

    fn declare_chain(&mut self, name: &str, chain: &Chain) {
        let t = self.table;
        let _ = match chain.hook {
            Some(hook) => writeln!(self.decl, "add chain ip {t} {name} {{ {hook} ; }}"),
            None => writeln!(self.decl, "add chain ip {t} {name}"),
        };
    }

    fn write_rules(&mut self, name: &str, chain: &Chain) {
        for rule in &chain.rules {
            let _ = writeln!(self.rules, "add rule ip {} {name} {rule}", self.table);
        }
    }

    fn new_chain(&mut self, name: &str, chain: &Chain) {
        self.declare_chain(name, chain);
        self.write_rules(name, chain);
    }

    /// An existing chain with other (or unknown) rules. Re-declaring is a no-op for an
    /// existing chain, and makes a base chain we know only by name certain to have its hook.
    fn rewrite_chain(&mut self, name: &str, chain: &Chain) {
        self.declare_chain(name, chain);
        let _ = writeln!(self.decl, "flush chain ip {} {name}", self.table);
        self.write_rules(name, chain);
    }

    fn stale_chain(&mut self, name: &str) {
        let t = self.table;
        let _ = writeln!(self.flush, "flush chain ip {t} {name}");
        let _ = writeln!(self.delete_chains, "delete chain ip {t} {name}");
    }

    fn diff_chains(&mut self, old: &BTreeMap<String, Chain>, new: &BTreeMap<String, Chain>) {
        for (name, chain) in new {
            match old.get(name) {
                None => self.new_chain(name, chain),
                Some(o) if o == chain => {}
                Some(_) => self.rewrite_chain(name, chain),
            }
        }
        for name in old.keys().filter(|n| !new.contains_key(*n)) {
            self.stale_chain(name);
        }
    }

    fn declare_set(&mut self, name: &str, set: &Set) {
        let _ = writeln!(
            self.decl,
            "add {} ip {} {name} {{ {} ; }}",
            set.kind.keyword(),
            self.table,
            set.decl
        );
    }

    fn elements(out: &mut String, verb: &str, table: &str, name: &str, items: &[String]) {
        // Bounded lines keep nft's parser (and its error messages) manageable.
        for chunk in items.chunks(512) {
            let _ = writeln!(
                out,
                "{verb} element ip {table} {name} {{ {} }}",
                chunk.join(", ")
            );
        }
    }

    fn fill(&mut self, name: &str, set: &Set) {
        if set.dynamic {
            return;
        }
        let all: Vec<String> = set
            .elements
            .iter()
            .map(|(k, v)| element_text(k, v))
            .collect();
        Self::elements(&mut self.add, "add", self.table, name, &all);
    }

    fn new_set(&mut self, name: &str, set: &Set) {
        self.declare_set(name, set);
        self.fill(name, set);
    }

    fn refill_set(&mut self, name: &str, set: &Set) {
        self.declare_set(name, set);
        if !set.dynamic {
            let kw = set.kind.keyword();
            let _ = writeln!(self.decl, "flush {kw} ip {} {name}", self.table);
        }
        self.fill(name, set);
    }

    fn diff_elements(&mut self, name: &str, old: &Set, new: &Set) {
        if new.dynamic || old.elements == new.elements {
            return;
        }
        let gone: Vec<String> = old
            .elements
            .iter()
            .filter(|(k, v)| new.elements.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        Self::elements(&mut self.remove, "delete", self.table, name, &gone);
        let added: Vec<String> = new
            .elements
            .iter()
            .filter(|(k, v)| old.elements.get(*k) != Some(*v))
            .map(|(k, v)| element_text(k, v))
            .collect();
        Self::elements(&mut self.add, "add", self.table, name, &added);
    }

    fn stale_set(&mut self, name: &str, kind: SetKind) {
        let _ = writeln!(
            self.delete_sets,
            "delete {} ip {} {name}",
            kind.keyword(),
            self.table
        );
    }

    fn diff_sets(&mut self, old: &BTreeMap<String, Set>, new: &BTreeMap<String, Set>) {
        for (name, set) in new {
            match old.get(name) {
                None => self.new_set(name, set),
                Some(o) => self.diff_elements(name, o, set),
            }
        }
        for (name, set) in old.iter().filter(|(n, _)| !new.contains_key(*n)) {
            self.stale_set(name, set.kind);
        }
    }

    fn finish(self, out: &mut String) {
        let _ = writeln!(
            out,
            "add table ip {} {{ comment \"rkube-proxy: Service virtual IPs (generated)\" ; }}",
            self.table
        );
        for s in [
            self.decl,
            self.flush,
            self.remove,
            self.rules,
            self.add,
            self.delete_chains,
            self.delete_sets,
        ] {
            out.push_str(&s);
        }
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
    let mut w = Writer::new(table);
    match prev {
        Previous::Fresh => {
            // `add` first so the `delete` cannot fail on a missing table.
            let _ = writeln!(out, "add table ip {table}\ndelete table ip {table}");
            for (name, chain) in next.chains() {
                w.new_chain(name, chain);
            }
            for (name, set) in next.all_sets() {
                w.new_set(name, set);
            }
        }
        Previous::Names { chains, sets } => {
            let mut wanted = HashSet::new();
            for (name, chain) in next.chains() {
                wanted.insert(name.as_str());
                if chains.contains(name) {
                    w.rewrite_chain(name, chain);
                } else {
                    w.new_chain(name, chain);
                }
            }
            for name in chains.iter().filter(|n| !wanted.contains(n.as_str())) {
                w.stale_chain(name);
            }
            let mut wanted = HashSet::new();
            for (name, set) in next.all_sets() {
                wanted.insert(name.as_str());
                if sets.contains_key(name) {
                    w.refill_set(name, set);
                } else {
                    w.new_set(name, set);
                }
            }
            for (name, kind) in sets.iter().filter(|(n, _)| !wanted.contains(n.as_str())) {
                w.stale_set(name, *kind);
            }
        }
        Previous::Known(old) => {
            w.diff_chains(&old.base, &next.base);
            w.diff_sets(&old.sets, &next.sets);
            let empty = Arc::new(ServiceRules::default());
            let ids: BTreeSet<&String> = old.services.keys().chain(next.services.keys()).collect();
            for id in ids {
                let o = old.services.get(id).unwrap_or(&empty);
                let n = next.services.get(id).unwrap_or(&empty);
                // Unchanged services share their rules with the previous sync.
                if Arc::ptr_eq(o, n) || o == n {
                    continue;
                }
                w.diff_chains(&o.chains, &n.chains);
                w.diff_sets(&o.sets, &n.sets);
            }
            if w.is_empty() {
                return String::new();
            }
        }
    }
    w.finish(&mut out);
    out
}
