//! What the node's stats read from /proc and the filesystems: CPU time and memory of the
//! machine (for a cgroup root that has no usage files), boot time, interface counters, task
//! limits, `statvfs`, and disk usage of a directory tree (`du`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::summary::{InterfaceStats, NetworkStats, Time};

/// Jiffies per second in /proc/stat (USER_HZ).
const USER_HZ: u64 = 100;

/// The `cpu` line of /proc/stat as nanoseconds of busy time (user, nice, system, irq,
/// softirq, steal; guest time is already inside user).
pub fn parse_proc_stat_cpu(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(busy.saturating_mul(1_000_000_000 / USER_HZ))
}

pub fn proc_stat_cpu() -> Option<u64> {
    parse_proc_stat_cpu(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The boot time (`btime` of /proc/stat).
pub fn boot_time() -> Time {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(Time::default(), |s| {
            Time::from_unix_nanos(s.saturating_mul(1_000_000_000))
        })
}

/// /proc/meminfo in bytes, by field name.
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut f = rest.split_whitespace();
            let v: u64 = f.next()?.parse().ok()?;
            let bytes = if f.next() == Some("kB") { v * 1024 } else { v };
            Some((k.to_owned(), bytes))
        })
        .collect()
}

pub fn meminfo() -> HashMap<String, u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
}

/// One interface's counters from `/proc/<pid>/net/dev`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// cAdvisor leaves out loopback, veth pairs and the docker/nerdctl bridges.
fn ignored_device(name: &str) -> bool {
    let name = name.to_lowercase();
    ["lo", "veth", "docker", "nerdctl"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The interfaces of a `net/dev` file, in its order, without the ignored devices.
pub fn parse_net_dev(text: &str) -> Vec<Interface> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if ignored_device(name) {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if f.len() < 12 {
                return None;
            }
            Some(Interface {
                name: name.to_owned(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

/// The interfaces in the network namespace of process `pid`.
pub fn net_dev(pid: i32) -> Option<Vec<Interface>> {
    Some(parse_net_dev(
        &std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?,
    ))
}

/// The Summary's network stats: every interface, and `eth0` (upstream's default interface
/// name) inlined; `None` without interfaces.
pub fn network_stats(ifaces: &[Interface], time: Time) -> Option<NetworkStats> {
    if ifaces.is_empty() {
        return None;
    }
    let stats = |i: &Interface| InterfaceStats {
        name: i.name.clone(),
        rx_bytes: Some(i.rx_bytes),
        rx_errors: Some(i.rx_errors),
        tx_bytes: Some(i.tx_bytes),
        tx_errors: Some(i.tx_errors),
    };
    let interfaces: Vec<InterfaceStats> = ifaces.iter().map(stats).collect();
    let default = ifaces
        .iter()
        .find(|i| i.name == "eth0")
        .map(stats)
        .unwrap_or_default();
    Some(NetworkStats {
        time,
        default,
        interfaces,
    })
}

/// The system's task limit (the lower of `kernel.pid_max` and `kernel.threads-max`) and the
/// tasks that exist (from /proc/loadavg, else sysinfo), as upstream's pidlimit.
pub fn rlimit() -> (Option<i64>, Option<i64>) {
    let max = ["/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<i64>().ok())
        .min();
    let running = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| parse_loadavg_tasks(&t))
        .or_else(|| {
            // SAFETY: sysinfo fills the zeroed struct.
            let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
            (unsafe { libc::sysinfo(&mut info) } == 0).then(|| i64::from(info.procs))
        });
    (max, running)
}

/// The total of `running/total` in /proc/loadavg.
pub fn parse_loadavg_tasks(text: &str) -> Option<i64> {
    let field = text.split_whitespace().nth(3)?;
    field.split_once('/')?.1.parse().ok()
}

/// A filesystem's size, as cAdvisor's `FsInfo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsInfo {
    pub capacity: u64,
    pub available: u64,
    pub usage: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    /// `statfs`'s filesystem type (tmpfs tells a memory-backed emptyDir).
    pub fs_type: i64,
}

pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// `statvfs` (and `statfs` for the type) of the filesystem holding `path`.
pub fn statfs(path: &Path) -> Option<FsInfo> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: both calls fill zeroed structs from a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        let mut sf: libc::statfs = std::mem::zeroed();
        let fs_type = if libc::statfs(c.as_ptr(), &mut sf) == 0 {
            #[allow(clippy::unnecessary_cast)]
            let t = sf.f_type as i64;
            t
        } else {
            0
        };
        let frsize = st.f_frsize;
        Some(FsInfo {
            capacity: st.f_blocks.saturating_mul(frsize),
            available: st.f_bavail.saturating_mul(frsize),
            usage: st
                .f_blocks
                .saturating_sub(st.f_bfree)
                .saturating_mul(frsize),
            inodes: st.f_files,
            inodes_free: st.f_ffree,
            fs_type,
        })
    }
}

/// Disk usage of a tree, as `du -x -s -B 1` (allocated blocks) and `find -xdev | wc -l`
/// (inodes) — upstream's MetricsDu. Walks at most `limit` entries; symlinks are not followed
/// and other filesystems not entered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub bytes: u64,
    pub inodes: u64,
}

pub fn du(path: &Path, limit: usize) -> Option<DiskUsage> {
    let top = std::fs::symlink_metadata(path).ok()?;
    let dev = top.dev();
    let mut usage = DiskUsage {
        bytes: top.blocks() * 512,
        inodes: 1,
    };
    let mut stack = vec![path.to_path_buf()];
    let mut seen = 1usize;
    if !top.is_dir() {
        return Some(usage);
    }
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > limit {
                return Some(usage);
            }
            let Ok(md) = e.metadata() else { continue };
            if md.dev() != dev {
                continue;
            }
            usage.bytes += md.blocks() * 512;
            usage.inodes += 1;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 5 20 1000 50 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nbtime 1700000000\n";
        assert_eq!(parse_proc_stat_cpu(stat), Some(131 * 10_000_000));
        let mem = parse_meminfo("MemTotal:       2048 kB\nMemFree: 1024 kB\nHugePages_Total: 0\n");
        assert_eq!(mem.get("MemTotal"), Some(&(2048 * 1024)));
        assert_eq!(mem.get("HugePages_Total"), Some(&0));
        assert_eq!(
            parse_loadavg_tasks("0.52 0.58 0.59 2/1398 3345\n"),
            Some(1398)
        );
    }

    #[test]
    fn parses_net_dev_like_cadvisor() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  \
eth0: 698498195   19032    3    4    0     0          0         0  1129760   12053    5    6    0     0       0          0\n\
vethab12: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";
        let ifaces = parse_net_dev(text);
        assert_eq!(
            ifaces,
            [Interface {
                name: "eth0".into(),
                rx_bytes: 698_498_195,
                rx_packets: 19_032,
                rx_errors: 3,
                rx_dropped: 4,
                tx_bytes: 1_129_760,
                tx_packets: 12_053,
                tx_errors: 5,
                tx_dropped: 6,
            }]
        );
        let stats = network_stats(&ifaces, Time::default()).unwrap_or_default();
        assert_eq!(stats.default.name, "eth0");
        assert_eq!(stats.default.rx_bytes, Some(698_498_195));
        assert_eq!(stats.interfaces.len(), 1);
        assert_eq!(network_stats(&[], Time::default()), None);
    }

    #[test]
    fn du_counts_blocks_and_inodes() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(tmp.path().join("d")).unwrap_or_default();
        std::fs::write(tmp.path().join("d/f"), vec![1u8; 10_000]).unwrap_or_default();
        let u = du(tmp.path(), 1000).unwrap_or_default();
        assert_eq!(u.inodes, 3);
        assert!(u.bytes >= 10_000, "{u:?}");
        assert_eq!(du(&tmp.path().join("nope"), 10), None);
        let fs = statfs(tmp.path()).unwrap_or_default();
        assert!(fs.capacity > 0 && fs.inodes > 0);
    }
}
