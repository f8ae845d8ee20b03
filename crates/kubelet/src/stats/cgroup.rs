//! A cgroup's usage and settings, read as runc's and cAdvisor's readers do, from cgroup v1 (one
//! hierarchy per controller, `/sys/fs/cgroup/<controller>/…`) or v2 (the unified hierarchy,
//! `/sys/fs/cgroup/…`; detected by its `cgroup.controllers`). Paths are cgroup names like
//! `/kubepods/besteffort/pod<uid>`; `/` is the root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Kernel clock ticks per second (`cpuacct.stat` counts in these; `sysconf(_SC_CLK_TCK)` is 100
/// on every Linux architecture Kubernetes runs on).
const CLOCK_TICKS: u64 = 100;

/// A limit above this is "unlimited" (the kernel rounds its maximum; cAdvisor's test).
pub const UNLIMITED: u64 = 1 << 62;

/// Cumulative CPU time, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub total: u64,
    pub user: u64,
    pub system: u64,
}

/// CFS bandwidth counters (`cpu.stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// CPU settings: shares (v2's weight converted back as cAdvisor does), CFS period and quota
/// (0 when unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSpec {
    pub shares: u64,
    pub period: u64,
    pub quota: u64,
}

/// Memory usage as cAdvisor reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub usage: u64,
    pub max_usage: u64,
    pub failcnt: u64,
    pub kernel: u64,
    pub cache: u64,
    pub rss: u64,
    pub mapped_file: u64,
    pub swap: u64,
    /// usage − inactive file pages (never below 0): what the kubelet evicts on.
    pub working_set: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
}

/// Memory limits; values above [`UNLIMITED`] mean none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemorySpec {
    pub limit: u64,
    pub swap_limit: u64,
    pub reservation: u64,
}

/// The pids controller: tasks now, and the limit (0 when unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pids {
    pub current: u64,
    pub max: u64,
}

/// The cgroup filesystem mounted at `root`.
#[derive(Clone, Debug)]
pub struct Cgroups {
    root: PathBuf,
    v2: bool,
}

/// A number file; `max` is u64::MAX (a limit that is not set).
fn read_u64(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    if text == "max" {
        return Some(u64::MAX);
    }
    text.parse().ok()
}

/// A flat keyed file (`memory.stat`, `cpu.stat`, `memory.events`): `key value` lines.
pub fn parse_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn read_keyed(path: &Path) -> Option<HashMap<String, u64>> {
    std::fs::read_to_string(path).ok().map(|t| parse_keyed(&t))
}

impl Cgroups {
    /// This machine's cgroups.
    pub fn host() -> Self {
        Self::at("/sys/fs/cgroup")
    }

    /// The cgroup filesystem (either version) mounted at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let v2 = root.join("cgroup.controllers").is_file();
        Cgroups { root, v2 }
    }

    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The directory of cgroup `name` in `controller`'s hierarchy (the unified one on v2).
    pub fn dir(&self, controller: &str, name: &str) -> PathBuf {
        let rel = name.trim_start_matches('/');
        if self.v2 {
            self.root.join(rel)
        } else {
            self.root.join(controller).join(rel)
        }
    }

    /// Whether the cgroup exists (in the CPU accounting hierarchy on v1).
    pub fn exists(&self, name: &str) -> bool {
        self.dir("cpuacct", name).is_dir()
    }

    /// Names of the child cgroups.
    pub fn children(&self, name: &str) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir("cpuacct", name)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    pub fn cpu(&self, name: &str) -> Option<CpuUsage> {
        if self.v2 {
            let stat = read_keyed(&self.dir("cpu", name).join("cpu.stat"))?;
            let us = |k: &str| stat.get(k).copied().unwrap_or(0).saturating_mul(1000);
            return Some(CpuUsage {
                total: stat.get("usage_usec")?.saturating_mul(1000),
                user: us("user_usec"),
                system: us("system_usec"),
            });
        }
        let dir = self.dir("cpuacct", name);
        let total = read_u64(&dir.join("cpuacct.usage"))?;
        let stat = read_keyed(&dir.join("cpuacct.stat")).unwrap_or_default();
        let ns = |k: &str| {
            stat.get(k)
                .copied()
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                / CLOCK_TICKS
        };
        Some(CpuUsage {
            total,
            user: ns("user"),
            system: ns("system"),
        })
    }

    pub fn throttling(&self, name: &str) -> Option<Throttling> {
        let stat = read_keyed(&self.dir("cpu", name).join("cpu.stat"))?;
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        Some(Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_ns: if self.v2 {
                get("throttled_usec").saturating_mul(1000)
            } else {
                get("throttled_time")
            },
        })
    }

    pub fn cpu_spec(&self, name: &str) -> Option<CpuSpec> {
        let dir = self.dir("cpu", name);
        if !dir.is_dir() {
            return None;
        }
        if self.v2 {
            // cAdvisor's convertCPUWeightToCPULimit; the root has no weight file.
            let shares = read_u64(&dir.join("cpu.weight"))
                .map_or(1024, |w| 2 + (w.saturating_sub(1) * 262_142) / 9999);
            let max = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
            let mut f = max.split_whitespace();
            let quota = f.next().and_then(|q| q.parse().ok()).unwrap_or(0);
            let period = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            return Some(CpuSpec {
                shares,
                period,
                quota,
            });
        }
        let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
            .ok()
            .and_then(|q| q.trim().parse::<i64>().ok())
            .and_then(|q| u64::try_from(q).ok())
            .unwrap_or(0);
        Some(CpuSpec {
            shares: read_u64(&dir.join("cpu.shares")).unwrap_or(0),
            period: read_u64(&dir.join("cpu.cfs_period_us")).unwrap_or(0),
            quota,
        })
    }

    /// `memory.stat` of the cgroup.
    pub fn memory_stat(&self, name: &str) -> Option<HashMap<String, u64>> {
        read_keyed(&self.dir("memory", name).join("memory.stat"))
    }

    /// Usage as runc's readers report it and cAdvisor turns it into its figures. `None` when
    /// the cgroup has no usage file (gone, or the v2 root: see [`Self::memory_from`]).
    pub fn memory(&self, name: &str) -> Option<MemoryUsage> {
        let dir = self.dir("memory", name);
        let stat = self.memory_stat(name).unwrap_or_default();
        if self.v2 {
            let usage = read_u64(&dir.join("memory.current"))?;
            let events = read_keyed(&dir.join("memory.events")).unwrap_or_default();
            let swap = read_u64(&dir.join("memory.swap.current")).unwrap_or(0);
            let mut m = memory_from(usage, &stat, false, true);
            m.max_usage = read_u64(&dir.join("memory.peak")).unwrap_or(0);
            m.failcnt = events.get("max").copied().unwrap_or(0);
            m.swap = swap;
            return Some(m);
        }
        let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
        let hierarchy = read_u64(&dir.join("memory.use_hierarchy")) == Some(1);
        let mut m = memory_from(usage, &stat, hierarchy, false);
        m.max_usage = read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
        m.failcnt = read_u64(&dir.join("memory.failcnt")).unwrap_or(0);
        m.kernel = read_u64(&dir.join("memory.kmem.usage_in_bytes")).unwrap_or(0);
        Some(m)
    }

    pub fn memory_spec(&self, name: &str) -> Option<MemorySpec> {
        let dir = self.dir("memory", name);
        let (limit, swap, reservation) = if self.v2 {
            ("memory.max", "memory.swap.max", "memory.min")
        } else {
            (
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.soft_limit_in_bytes",
            )
        };
        Some(MemorySpec {
            limit: read_u64(&dir.join(limit))?,
            swap_limit: read_u64(&dir.join(swap)).unwrap_or(0),
            reservation: read_u64(&dir.join(reservation)).unwrap_or(0),
        })
    }

    pub fn pids(&self, name: &str) -> Option<Pids> {
        let dir = self.dir("pids", name);
        let max = read_u64(&dir.join("pids.max")).unwrap_or(u64::MAX);
        Some(Pids {
            current: read_u64(&dir.join("pids.current"))?,
            max: if max == u64::MAX { 0 } else { max },
        })
    }

    /// The processes directly in the cgroup (`cgroup.procs`; cAdvisor counts these, not the
    /// children's).
    pub fn procs(&self, name: &str) -> Vec<i32> {
        std::fs::read_to_string(self.dir("cpu", name).join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// OOM kills in the cgroup.
    pub fn oom_kills(&self, name: &str) -> Option<u64> {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        read_keyed(&self.dir("memory", name).join(file))?
            .get("oom_kill")
            .copied()
    }

    /// cAdvisor's creation time of a raw cgroup: the oldest modification time of its
    /// directories and of a file rarely touched after creation (`cgroup.clone_children`, v2
    /// `cgroup.events`) — a directory's own time moves when children are made.
    pub fn creation_time(&self, name: &str) -> Option<SystemTime> {
        let (controllers, file): (&[&str], &str) = if self.v2 {
            (&[""], "cgroup.events")
        } else {
            (
                &["cpu", "cpuacct", "memory", "pids"],
                "cgroup.clone_children",
            )
        };
        controllers
            .iter()
            .map(|c| self.dir(c, name))
            .flat_map(|d| [d.clone(), d.join(file)])
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .min()
    }
}

/// cAdvisor's figures from a usage and `memory.stat`: v1 takes the hierarchical (`total_`)
/// counters when `use_hierarchy` is on, v2 has only its own names.
pub fn memory_from(
    usage: u64,
    stat: &HashMap<String, u64>,
    hierarchy: bool,
    v2: bool,
) -> MemoryUsage {
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    let (cache, rss, swap, mapped) = if v2 {
        (get("file"), get("anon"), 0, get("file_mapped"))
    } else if hierarchy {
        (
            get("total_cache"),
            get("total_rss"),
            get("total_swap"),
            get("total_mapped_file"),
        )
    } else {
        (get("cache"), get("rss"), get("swap"), get("mapped_file"))
    };
    let (active, inactive) = if v2 {
        ("active_file", "inactive_file")
    } else {
        ("total_active_file", "total_inactive_file")
    };
    MemoryUsage {
        usage,
        cache,
        rss,
        mapped_file: mapped,
        swap,
        working_set: usage.saturating_sub(get(inactive)),
        active_file: get(active),
        inactive_file: get(inactive),
        pgfault: get("pgfault"),
        pgmajfault: get("pgmajfault"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_default();
        }
        std::fs::write(path, text).unwrap_or_default();
    }

    #[test]
    fn reads_cgroup_v1() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path();
        let pod = "kubepods/besteffort/podu1";
        write(
            root,
            &format!("cpuacct/{pod}/cpuacct.usage"),
            "2500000000\n",
        );
        write(
            root,
            &format!("cpuacct/{pod}/cpuacct.stat"),
            "user 150\nsystem 50\n",
        );
        write(root, &format!("cpu/{pod}/cpu.shares"), "2\n");
        write(root, &format!("cpu/{pod}/cpu.cfs_quota_us"), "-1\n");
        write(root, &format!("cpu/{pod}/cpu.cfs_period_us"), "100000\n");
        write(
            root,
            &format!("cpu/{pod}/cpu.stat"),
            "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n",
        );
        write(root, &format!("cpu/{pod}/cgroup.procs"), "12\n34\n");
        write(
            root,
            &format!("memory/{pod}/memory.usage_in_bytes"),
            "10000\n",
        );
        write(
            root,
            &format!("memory/{pod}/memory.max_usage_in_bytes"),
            "20000\n",
        );
        write(root, &format!("memory/{pod}/memory.failcnt"), "1\n");
        write(root, &format!("memory/{pod}/memory.use_hierarchy"), "1\n");
        write(
            root,
            &format!("memory/{pod}/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(
            root,
            &format!("memory/{pod}/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        );
        write(
            root,
            &format!("memory/{pod}/memory.stat"),
            "cache 1\nrss 2\npgfault 70\npgmajfault 7\ntotal_cache 4000\ntotal_rss 5000\n\
             total_mapped_file 300\ntotal_swap 0\ntotal_inactive_file 2500\n\
             total_active_file 1500\ntotal_pgfault 700\n",
        );
        write(root, &format!("pids/{pod}/pids.current"), "3\n");
        write(root, &format!("pids/{pod}/pids.max"), "max\n");
        let cg = Cgroups::at(root);
        assert!(!cg.is_v2());
        assert!(cg.exists("/kubepods/besteffort/podu1"));
        assert_eq!(cg.children("/kubepods/besteffort"), ["podu1"]);
        let name = "/kubepods/besteffort/podu1";
        assert_eq!(
            cg.cpu(name),
            Some(CpuUsage {
                total: 2_500_000_000,
                user: 1_500_000_000,
                system: 500_000_000
            })
        );
        assert_eq!(
            cg.cpu_spec(name),
            Some(CpuSpec {
                shares: 2,
                period: 100_000,
                quota: 0
            })
        );
        assert_eq!(cg.throttling(name).map(|t| t.throttled_ns), Some(3000));
        let m = cg.memory(name).unwrap_or_default();
        assert_eq!(
            (m.usage, m.working_set, m.rss, m.cache, m.mapped_file),
            (10_000, 7_500, 5_000, 4_000, 300)
        );
        // Page faults are the cgroup's own counters, as cAdvisor reports them.
        assert_eq!((m.pgfault, m.pgmajfault), (70, 7));
        assert_eq!((m.max_usage, m.failcnt), (20_000, 1));
        assert!(cg.memory_spec(name).is_some_and(|s| s.limit > UNLIMITED));
        assert_eq!(cg.oom_kills(name), Some(3));
        assert_eq!(cg.pids(name), Some(Pids { current: 3, max: 0 }));
        assert_eq!(cg.procs(name), [12, 34]);
        assert!(cg.creation_time(name).is_some());
        assert_eq!(cg.cpu("/kubepods/gone"), None);
        assert_eq!(cg.memory("/kubepods/gone"), None);
    }

    #[test]
    fn reads_cgroup_v2() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path();
        write(root, "cgroup.controllers", "cpuset cpu io memory pids\n");
        let pod = "kubepods/burstable/podu2";
        write(
            root,
            &format!("{pod}/cpu.stat"),
            "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n\
             nr_periods 4\nnr_throttled 1\nthrottled_usec 20\n",
        );
        write(root, &format!("{pod}/cpu.weight"), "100\n");
        write(root, &format!("{pod}/cpu.max"), "50000 100000\n");
        write(root, &format!("{pod}/memory.current"), "8192\n");
        write(root, &format!("{pod}/memory.max"), "67108864\n");
        write(root, &format!("{pod}/memory.swap.max"), "max\n");
        write(root, &format!("{pod}/memory.swap.current"), "4096\n");
        write(
            root,
            &format!("{pod}/memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
        );
        write(
            root,
            &format!("{pod}/memory.stat"),
            "anon 3000\nfile 5000\nfile_mapped 100\nactive_file 1000\ninactive_file 4000\n\
             pgfault 11\npgmajfault 1\n",
        );
        write(root, &format!("{pod}/pids.current"), "2\n");
        write(root, &format!("{pod}/pids.max"), "1024\n");
        write(root, &format!("{pod}/cgroup.procs"), "99\n");
        let cg = Cgroups::at(root);
        assert!(cg.is_v2());
        let name = "/kubepods/burstable/podu2";
        assert_eq!(
            cg.cpu(name),
            Some(CpuUsage {
                total: 2_000_000_000,
                user: 1_500_000_000,
                system: 500_000_000
            })
        );
        assert_eq!(
            cg.cpu_spec(name),
            Some(CpuSpec {
                shares: 2 + 99 * 262_142 / 9999,
                period: 100_000,
                quota: 50_000
            })
        );
        assert_eq!(cg.throttling(name).map(|t| t.throttled_ns), Some(20_000));
        let m = cg.memory(name).unwrap_or_default();
        assert_eq!(
            (m.usage, m.working_set, m.rss, m.cache, m.swap),
            (8192, 4192, 3000, 5000, 4096)
        );
        assert_eq!((m.failcnt, m.pgfault, m.pgmajfault), (5, 11, 1));
        let spec = cg.memory_spec(name).unwrap_or_default();
        assert_eq!(spec.limit, 64 << 20);
        assert!(spec.swap_limit > UNLIMITED);
        assert_eq!(cg.oom_kills(name), Some(1));
        assert_eq!(
            cg.pids(name),
            Some(Pids {
                current: 2,
                max: 1024
            })
        );
        assert_eq!(cg.procs(name), [99]);
        // The v2 root has no memory.current: the caller falls back to /proc/meminfo.
        assert_eq!(cg.memory("/"), None);
    }
}
