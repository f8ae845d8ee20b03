//! For tests: a real NFS server (nfs-ganesha, VFS backend, with its own rpcbind) exporting a
//! temporary directory as `/export`, run in a network namespace made for it and reached over
//! a veth pair (`10.250.<subnet>.1` on the host, `10.250.<subnet>.2` the server). Everything
//! is removed when the [`Ganesha`] is dropped.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The VFS backend ganesha loads (Debian's `nfs-ganesha-vfs`).
const FSAL_VFS: &str = "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so";

/// What the server needs on this machine; empty when everything is there.
pub fn missing() -> Vec<String> {
    let mut out = Vec::new();
    for bin in ["ganesha.nfsd", "rpcbind", "ip", "unshare"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(bin).exists()
            || Path::new("/sbin").join(bin).exists();
        if !found {
            out.push(bin.to_owned());
        }
    }
    if !Path::new(FSAL_VFS).exists() {
        out.push(format!("{FSAL_VFS} (nfs-ganesha-vfs)"));
    }
    if !Path::new("/dev/fuse").exists() {
        out.push("/dev/fuse".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        out.push("root".into());
    }
    out
}

/// A running ganesha in its network namespace.
pub struct Ganesha {
    /// The server's address (inside the namespace).
    pub ip: String,
    /// The exported directory on this host (the server's `/export`).
    pub export: PathBuf,
    ns: String,
    host_if: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn config(export: &Path, recovery: &Path) -> String {
    format!(
        r#"NFS_CORE_PARAM {{
    Protocols = 3, 4;
    NFS_Port = 2049;
    MNT_Port = 20048;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Mount_Path_Pseudo = true;
}}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = "{recovery}"; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = "{export}";
    Pseudo = /export;
    Protocols = 3, 4;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
"#,
        export = export.display(),
        recovery = recovery.display()
    )
}

impl Ganesha {
    /// Starts a server on subnet `10.250.<subnet>.0/30`, reached from this host's network
    /// namespace; `tag` (a few letters) names the namespace and interfaces, so concurrent
    /// tests pick different tags and subnets.
    pub fn start(tag: &str, subnet: u8) -> anyhow::Result<Ganesha> {
        Self::start_for(tag, subnet, None)
    }

    /// [`Ganesha::start`] with the client end of the link in the network namespace of
    /// process `client_pid` (a test node's) instead of this host's.
    pub fn start_for(tag: &str, subnet: u8, client_pid: Option<u32>) -> anyhow::Result<Ganesha> {
        let dir = tempfile::tempdir()?;
        let export = dir.path().join("export");
        let recovery = dir.path().join("recovery");
        std::fs::create_dir_all(&export)?;
        std::fs::create_dir_all(&recovery)?;
        // Pod users other than root write there too.
        std::fs::set_permissions(&export, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        let conf = dir.path().join("ganesha.conf");
        std::fs::write(&conf, config(&export, &recovery))?;
        let ns = format!("rkube-nfs-{tag}");
        let (host_if, ns_if) = (format!("rnfs-{tag}-h"), format!("rnfs-{tag}-n"));
        let (host_ip, ip) = (format!("10.250.{subnet}.1"), format!("10.250.{subnet}.2"));
        // Leftovers of an earlier run that died.
        let _ = run(&["ip", "netns", "del", &ns]);
        let _ = run(&["ip", "link", "del", &host_if]);
        let mut g = Ganesha {
            ip: ip.clone(),
            export,
            ns: ns.clone(),
            host_if: host_if.clone(),
            child: None,
            dir,
        };
        run(&["ip", "netns", "add", &ns])?;
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        run(&["ip", "link", "set", &ns_if, "netns", &ns])?;
        // `ip` in the client's namespace (this host's, or the node's).
        let client_net = client_pid.map(|p| format!("--net=/proc/{p}/ns/net"));
        let client_ip = |args: &[&str]| -> anyhow::Result<()> {
            match &client_net {
                Some(net) => run(&[&["nsenter", net.as_str(), "--", "ip"], args].concat()),
                None => run(&[&["ip"], args].concat()),
            }
        };
        if let Some(pid) = client_pid {
            run(&["ip", "link", "set", &host_if, "netns", &pid.to_string()])?;
        }
        client_ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        client_ip(&["link", "set", &host_if, "up"])?;
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip}/30"),
            "dev",
            &ns_if,
        ])?;
        run(&["ip", "-n", &ns, "link", "set", &ns_if, "up"])?;
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        // rpcbind and ganesha find each other through /run/rpcbind.sock: a private /run (a
        // mount namespace of their own) keeps them apart from the host's rpcbind, if any;
        // ganesha registers there at start, so rpcbind's socket must be up first.
        let log = g.dir.path().join("ganesha.log");
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && \
             {{ rpcbind -w -f & }} && \
             for i in $(seq 100); do [ -S /run/rpcbind.sock ] && break; sleep 0.05; done && \
             exec ganesha.nfsd -F -L {log} -f {conf} -p {pid}",
            log = log.display(),
            conf = conf.display(),
            pid = g.dir.path().join("ganesha.pid").display()
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "unshare", "-m", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting ganesha.nfsd")?;
        g.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        // Listening sockets as seen in the server's namespace (the client's may be a node's).
        let ready = || {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "ss", "-Htln"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            [":2049 ", ":111 ", ":20048 "]
                .iter()
                .all(|p| out.contains(p))
        };
        while !ready() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("ganesha did not listen on {ip}:2049 within 30s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(g)
    }

    /// `SERVER:/PATH` of the export.
    pub fn source(&self) -> String {
        format!("{}:/export", self.ip)
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ganesha.log")).unwrap_or_default()
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // ganesha and rpcbind share the process group the child leads.
            let pgid = child.id() as i32;
            // SAFETY: signals a process group this helper started.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
        // Gone with the namespace when its end was in a node's; else removed here.
        let _ = run(&["ip", "link", "del", &self.host_if]);
    }
}
