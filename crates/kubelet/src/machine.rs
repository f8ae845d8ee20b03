//! What the node reports about the machine: capacity, identity, addresses. Read from /proc,
//! /sys and libc; nothing here sends a packet.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The machine's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether this process runs as root (the agent needs it for containerd, cgroups, netns).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// CPUs this process may run on (what the node offers its pods).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Total memory in bytes (`MemTotal`).
pub fn memory_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Size in bytes of the filesystem holding `path` (the node's ephemeral storage).
pub fn filesystem_bytes(path: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs fills the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        st.f_blocks.saturating_mul(st.f_frsize)
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub fn machine_id() -> String {
    read_trimmed("/etc/machine-id")
}

pub fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

pub fn system_uuid() -> String {
    read_trimmed("/sys/class/dmi/id/product_uuid")
}

pub fn kernel_version() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

/// `PRETTY_NAME` of /etc/os-release.
pub fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into())
}

/// The architecture as Go (and so Kubernetes) names it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The node's IP: the IPv4 address of the interface holding the default route, else the
/// first non-loopback IPv4 address, else 127.0.0.1.
pub fn node_ip() -> IpAddr {
    let addrs = ipv4_addresses();
    let default_if = default_route_interface();
    let pick = default_if
        .and_then(|name| addrs.iter().find(|(n, _)| *n == name).map(|(_, a)| *a))
        .or_else(|| {
            addrs
                .iter()
                .find(|(_, a)| !a.is_loopback() && !a.is_link_local())
                .map(|(_, a)| *a)
        });
    IpAddr::V4(pick.unwrap_or(Ipv4Addr::LOCALHOST))
}

/// The interface of the IPv4 default route (from /proc/net/route).
fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let iface = f.next()?;
        let dest = f.next()?;
        (dest == "00000000").then(|| iface.to_owned())
    })
}

/// (interface, address) for every IPv4 address of this network namespace.
fn ipv4_addresses() -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                && !ifa.ifa_name.is_null()
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
                out.push((name, ip));
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_has_sensible_figures() {
        assert!(cpus() >= 1);
        assert!(memory_bytes() > 64 << 20);
        assert!(filesystem_bytes(Path::new("/")) > 0);
        assert!(!kernel_version().is_empty());
        assert!(!hostname().is_empty());
        let _ = node_ip();
    }
}
