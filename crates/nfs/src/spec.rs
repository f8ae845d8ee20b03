//! What to mount: `SERVER:/PATH` and the `-o` options of `mount -t nfs` this client honours.

use thiserror::Error;

/// The standard NFS port, used when the server has no portmapper (rpcbind) to ask.
pub const NFS_PORT: u16 = 2049;

/// An NFS export to mount and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// An IP address (the client does not resolve names).
    pub server: String,
    /// The exported path on the server.
    pub path: String,
    pub read_only: bool,
    /// `port=`: the NFS service's port; asked from the portmapper when unset.
    pub port: Option<u16>,
    /// `mountport=`: the MOUNT service's port; asked from the portmapper when unset.
    pub mount_port: Option<u16>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("{0:?} is not SERVER:/PATH")]
    Source(String),
    #[error("server {0:?} is not an IP address (this NFS client does not resolve host names)")]
    Server(String),
    #[error("mount option {0:?}: {1}")]
    Option(String, String),
}

impl MountSpec {
    /// Parses `SERVER:/PATH` (an IPv6 server in brackets) and comma-separated options.
    pub fn parse(source: &str, options: &[String]) -> Result<Self, SpecError> {
        let (server, path) = source
            .rsplit_once(":/")
            .map(|(s, p)| (s, format!("/{p}")))
            .ok_or_else(|| SpecError::Source(source.to_owned()))?;
        let server = server.trim_start_matches('[').trim_end_matches(']');
        if server.parse::<std::net::IpAddr>().is_err() {
            return Err(SpecError::Server(server.to_owned()));
        }
        let mut spec = MountSpec {
            server: server.to_owned(),
            path,
            read_only: false,
            port: None,
            mount_port: None,
        };
        for opt in options.iter().flat_map(|o| o.split(',')) {
            spec.apply(opt.trim())?;
        }
        Ok(spec)
    }

    fn apply(&mut self, opt: &str) -> Result<(), SpecError> {
        let bad = |why: &str| SpecError::Option(opt.to_owned(), why.to_owned());
        let port = |v: &str| v.parse::<u16>().map_err(|_| bad("not a port number"));
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        match key {
            "" => {}
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "port" => self.port = Some(port(value)?).filter(|p| *p != 0),
            "mountport" => self.mount_port = Some(port(value)?).filter(|p| *p != 0),
            "vers" | "nfsvers" if value != "3" => {
                return Err(bad("this FUSE NFS client speaks NFSv3 only (vers=3)"));
            }
            "proto" | "mountproto" if value != "tcp" => {
                return Err(bad("this FUSE NFS client speaks TCP only"));
            }
            // Kernel-client tuning with no meaning here (caching, retries, locking, sizes).
            _ => tracing::debug!(option = opt, "mount option ignored by the FUSE NFS client"),
        }
        Ok(())
    }

    /// `SERVER:/PATH`, as `mount` shows it.
    pub fn source(&self) -> String {
        if self.server.contains(':') {
            format!("[{}]:{}", self.server, self.path)
        } else {
            format!("{}:{}", self.server, self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_options_parse() {
        let s = MountSpec::parse("10.0.0.1:/export/a", &["ro,port=2049".into()]);
        assert_eq!(
            s,
            Ok(MountSpec {
                server: "10.0.0.1".into(),
                path: "/export/a".into(),
                read_only: true,
                port: Some(2049),
                mount_port: None,
            })
        );
        let v6 = MountSpec::parse("[fd00::1]:/", &["mountport=20048".into(), "hard".into()]);
        assert!(v6.as_ref().is_ok_and(|s| s.server == "fd00::1"
            && s.path == "/"
            && s.mount_port == Some(20048)
            && s.source() == "[fd00::1]:/"));
        assert_eq!(
            MountSpec::parse("nfs.example:/x", &[]),
            Err(SpecError::Server("nfs.example".into()))
        );
        assert!(MountSpec::parse("10.0.0.1", &[]).is_err());
        assert!(MountSpec::parse("10.0.0.1:/x", &["vers=4.1".into()]).is_err());
        assert!(MountSpec::parse("10.0.0.1:/x", &["vers=3,nolock".into()]).is_ok());
    }
}
