//! A blocking NFSv3 client over one TCP connection (`nfs3_client` on a current-thread tokio
//! runtime): the FUSE session serves one request at a time, so one connection suffices. A
//! connection that breaks (server restart, reset) is made again once per call.

use std::sync::Mutex;
use std::time::Duration;

use nfs3_client::nfs3_types::nfs3::{
    CREATE3args, FSINFO3args, FSSTAT3args, FSSTAT3resok, GETATTR3args, LOOKUP3args, MKDIR3args,
    Nfs3Option, Nfs3Result, READ3args, READDIRPLUS3args, READLINK3args, REMOVE3args, RENAME3args,
    RMDIR3args, SETATTR3args, SYMLINK3args, WRITE3args, cookieverf3, createhow3, diropargs3,
    fattr3, filename3, nfs_fh3, nfspath3, nfsstat3, sattr3, stable_how, symlinkdata3,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{ConnectError, MountError, Nfs3Client, Nfs3ConnectionBuilder, RpcError};
use thiserror::Error;
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::spec::MountSpec;

type Conn = Nfs3Client<TokioIo<TcpStream>>;

/// How long connecting and mounting may take: an unreachable server fails the mount.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take before the file operation fails with EIO.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most one READ or WRITE moves (the server's own maximum may be lower).
const MAX_IO: u32 = 1 << 20;

/// A failed NFS operation.
#[derive(Debug, Error)]
pub enum NfsError {
    #[error("NFS server answered {0}")]
    Status(nfsstat3),
    #[error("RPC failed: {0}")]
    Rpc(#[from] RpcError),
    #[error("no answer from the NFS server within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Connect(String),
}

impl NfsError {
    /// The errno a file operation fails with.
    pub fn errno(&self) -> i32 {
        match self {
            NfsError::Status(s) => match s {
                nfsstat3::NFS3ERR_STALE | nfsstat3::NFS3ERR_BADHANDLE => libc::ESTALE,
                nfsstat3::NFS3ERR_NOTSUPP => libc::ENOTSUP,
                nfsstat3::NFS3ERR_JUKEBOX => libc::EAGAIN,
                nfsstat3::NFS3ERR_TOOSMALL
                | nfsstat3::NFS3ERR_BAD_COOKIE
                | nfsstat3::NFS3ERR_BADTYPE => libc::EINVAL,
                // The NFSv3 codes below 10000 are the errno values themselves.
                other if (*other as i32) < 10000 && (*other as i32) > 0 => *other as i32,
                _ => libc::EIO,
            },
            _ => libc::EIO,
        }
    }
}

fn ok<T, E>(r: Nfs3Result<T, E>) -> Result<T, NfsError> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((stat, _)) => Err(NfsError::Status(stat)),
    }
}

fn name(n: &[u8]) -> filename3<'_> {
    filename3(Opaque::borrowed(n))
}

fn fh(h: &[u8]) -> nfs_fh3 {
    nfs_fh3 {
        data: Opaque::owned(h.to_vec()),
    }
}

fn dirop<'a>(dir: &[u8], n: &'a [u8]) -> diropargs3<'a> {
    diropargs3 {
        dir: fh(dir),
        name: name(n),
    }
}

/// One directory entry with what READDIRPLUS told of it.
pub struct DirEntry {
    pub name: Vec<u8>,
    pub fileid: u64,
    pub handle: Option<(Vec<u8>, fattr3)>,
}

/// A mounted export.
pub struct Client {
    spec: MountSpec,
    rt: tokio::runtime::Runtime,
    conn: Mutex<Option<Conn>>,
    root: Vec<u8>,
    ports: (u16, u16),
    pub rsize: u32,
    pub wsize: u32,
}

/// Calls as root (AUTH_SYS uid 0): the kernel checks permissions against the attributes
/// (`default_permissions`), and new files are given their creator's owner explicitly.
fn credential() -> opaque_auth<'static> {
    opaque_auth::auth_unix(&auth_unix {
        machinename: Opaque::owned(b"rkube".to_vec()),
        ..auth_unix::default()
    })
}

fn connect_message(spec: &MountSpec, e: &ConnectError) -> String {
    let server = &spec.server;
    match e {
        ConnectError::Mount(MountError::Denied(stat)) => format!(
            "mounting {}: the server refused export {:?}: {stat}",
            spec.source(),
            spec.path
        ),
        ConnectError::Portmap(p) => format!(
            "mounting {}: asking the portmapper of {server} (port 111) for the NFS ports: {p}",
            spec.source()
        ),
        other => format!(
            "mounting {}: connecting to {server}: {other}",
            spec.source()
        ),
    }
}

impl Client {
    /// Connects, mounts the export (MOUNT protocol) and learns the server's transfer sizes.
    pub fn connect(spec: &MountSpec) -> Result<Client, NfsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NfsError::Connect(format!("starting the NFS client runtime: {e}")))?;
        let (root, conn, ports) = rt.block_on(Self::mount(spec, spec.port, spec.mount_port))?;
        let client = Client {
            spec: spec.clone(),
            rt,
            conn: Mutex::new(Some(conn)),
            root,
            ports,
            rsize: MAX_IO,
            wsize: MAX_IO,
        };
        let info = client.call(async |c| {
            c.fsinfo(&FSINFO3args {
                fsroot: fh(&client.root),
            })
            .await
        })?;
        let info = ok(info)?;
        info!(source = %spec.source(), rtmax = info.rtmax, wtmax = info.wtmax, "NFS export mounted");
        Ok(Client {
            rsize: info.rtmax.clamp(4096, MAX_IO),
            wsize: info.wtmax.clamp(4096, MAX_IO),
            ..client
        })
    }

    async fn mount(
        spec: &MountSpec,
        port: Option<u16>,
        mount_port: Option<u16>,
    ) -> Result<(Vec<u8>, Conn, (u16, u16)), NfsError> {
        // Privileged source ports only for root (servers may insist; others cannot bind them).
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut b = Nfs3ConnectionBuilder::new(TokioConnector, &spec.server, &spec.path)
            .connect_from_privileged_port(root)
            .credential(credential());
        if let Some(p) = port {
            b = b.nfs3_port(p);
        }
        if let Some(p) = mount_port {
            b = b.mount_port(p);
        }
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, b.mount())
            .await
            .map_err(|_| {
                NfsError::Connect(format!(
                    "mounting {}: no answer from {} within {CONNECT_TIMEOUT:?}",
                    spec.source(),
                    spec.server
                ))
            })?
            .map_err(|e| NfsError::Connect(connect_message(spec, &e)))?;
        let ports = (conn.nfs3_port, conn.mount_port);
        Ok((
            conn.mount_resok.fhandle.0.to_vec(),
            conn.into_nfs3_client(),
            ports,
        ))
    }

    /// The export's root file handle.
    pub fn root(&self) -> &[u8] {
        &self.root
    }

    /// Runs one call, connecting again (once) when the connection is broken.
    fn call<T>(
        &self,
        mut f: impl AsyncFnMut(&mut Conn) -> Result<T, RpcError>,
    ) -> Result<T, NfsError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| NfsError::Connect("NFS connection lock poisoned".into()))?;
        let mut last = NfsError::Timeout(CALL_TIMEOUT);
        for _ in 0..2 {
            if guard.is_none() {
                let (_, conn, _) = self.rt.block_on(Self::mount(
                    &self.spec,
                    Some(self.ports.0),
                    Some(self.ports.1),
                ))?;
                info!(source = %self.spec.source(), "NFS connection made again");
                *guard = Some(conn);
            }
            let Some(conn) = guard.as_mut() else {
                continue;
            };
            // The timer must be made inside the runtime.
            match self
                .rt
                .block_on(async { tokio::time::timeout(CALL_TIMEOUT, f(conn)).await })
            {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if e.is_connection_reusable() => return Err(e.into()),
                Ok(Err(e)) => {
                    warn!(error = %e, "NFS connection broken");
                    last = e.into();
                }
                Err(_) => last = NfsError::Timeout(CALL_TIMEOUT),
            }
            *guard = None;
        }
        Err(last)
    }

    pub fn getattr(&self, h: &[u8]) -> Result<fattr3, NfsError> {
        let r = self.call(async |c| c.getattr(&GETATTR3args { object: fh(h) }).await)?;
        Ok(ok(r)?.obj_attributes)
    }

    /// The attributes a reply carried, or asked for when it did not.
    fn attrs_of(&self, h: &[u8], a: Nfs3Option<fattr3>) -> Result<fattr3, NfsError> {
        match a {
            Nfs3Option::Some(a) => Ok(a),
            Nfs3Option::None => self.getattr(h),
        }
    }

    pub fn lookup(&self, dir: &[u8], n: &[u8]) -> Result<(Vec<u8>, fattr3), NfsError> {
        let r = self.call(async |c| {
            c.lookup(&LOOKUP3args {
                what: dirop(dir, n),
            })
            .await
        })?;
        let r = ok(r)?;
        let h = r.object.data.to_vec();
        let a = self.attrs_of(&h, r.obj_attributes)?;
        Ok((h, a))
    }

    pub fn setattr(&self, h: &[u8], attrs: sattr3) -> Result<fattr3, NfsError> {
        let r = self.call(async |c| {
            c.setattr(&SETATTR3args {
                object: fh(h),
                new_attributes: attrs.clone(),
                guard: Nfs3Option::None,
            })
            .await
        })?;
        self.attrs_of(h, ok(r)?.obj_wcc.after)
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    pub fn read(&self, h: &[u8], offset: u64, count: u32) -> Result<Vec<u8>, NfsError> {
        let mut out = Vec::with_capacity(count as usize);
        while out.len() < count as usize {
            let want = (count - out.len() as u32).min(self.rsize);
            let at = offset + out.len() as u64;
            let r = self.call(async |c| {
                c.read(&READ3args {
                    file: fh(h),
                    offset: at,
                    count: want,
                })
                .await
            })?;
            let r = ok(r)?;
            out.extend_from_slice(r.data.as_ref());
            if r.eof || r.data.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// Writes all of `data` at `offset`, stable (FILE_SYNC): another client, or the
    /// server's own directory, sees it as soon as the write returns.
    pub fn write(&self, h: &[u8], offset: u64, data: &[u8]) -> Result<u32, NfsError> {
        let mut done = 0usize;
        while done < data.len() {
            let chunk = &data[done..data.len().min(done + self.wsize as usize)];
            let at = offset + done as u64;
            let r = self.call(async |c| {
                c.write(&WRITE3args {
                    file: fh(h),
                    offset: at,
                    count: chunk.len() as u32,
                    stable: stable_how::FILE_SYNC,
                    data: Opaque::borrowed(chunk),
                })
                .await
            })?;
            let n = ok(r)?.count as usize;
            if n == 0 {
                return Err(NfsError::Status(nfsstat3::NFS3ERR_IO));
            }
            done += n;
        }
        Ok(done as u32)
    }

    /// The handle a CREATE/MKDIR/SYMLINK made, looked up when the reply left it out.
    fn made(
        &self,
        dir: &[u8],
        n: &[u8],
        obj: Nfs3Option<nfs_fh3>,
        attrs: Nfs3Option<fattr3>,
    ) -> Result<(Vec<u8>, fattr3), NfsError> {
        match obj {
            Nfs3Option::Some(h) => {
                let h = h.data.to_vec();
                let a = self.attrs_of(&h, attrs)?;
                Ok((h, a))
            }
            Nfs3Option::None => self.lookup(dir, n),
        }
    }

    pub fn create(
        &self,
        dir: &[u8],
        n: &[u8],
        attrs: sattr3,
        exclusive: bool,
    ) -> Result<(Vec<u8>, fattr3), NfsError> {
        let r = self.call(async |c| {
            let how = if exclusive {
                createhow3::GUARDED(attrs.clone())
            } else {
                createhow3::UNCHECKED(attrs.clone())
            };
            c.create(&CREATE3args {
                where_: dirop(dir, n),
                how,
            })
            .await
        })?;
        let r = ok(r)?;
        self.made(dir, n, r.obj, r.obj_attributes)
    }

    pub fn mkdir(
        &self,
        dir: &[u8],
        n: &[u8],
        attrs: sattr3,
    ) -> Result<(Vec<u8>, fattr3), NfsError> {
        let r = self.call(async |c| {
            c.mkdir(&MKDIR3args {
                where_: dirop(dir, n),
                attributes: attrs.clone(),
            })
            .await
        })?;
        let r = ok(r)?;
        self.made(dir, n, r.obj, r.obj_attributes)
    }

    pub fn symlink(
        &self,
        dir: &[u8],
        n: &[u8],
        target: &[u8],
        attrs: sattr3,
    ) -> Result<(Vec<u8>, fattr3), NfsError> {
        let r = self.call(async |c| {
            c.symlink(&SYMLINK3args {
                where_: dirop(dir, n),
                symlink: symlinkdata3 {
                    symlink_attributes: attrs.clone(),
                    symlink_data: nfspath3(Opaque::borrowed(target)),
                },
            })
            .await
        })?;
        let r = ok(r)?;
        self.made(dir, n, r.obj, r.obj_attributes)
    }

    pub fn readlink(&self, h: &[u8]) -> Result<Vec<u8>, NfsError> {
        let r = self.call(async |c| c.readlink(&READLINK3args { symlink: fh(h) }).await)?;
        Ok(ok(r)?.data.0.to_vec())
    }

    pub fn remove(&self, dir: &[u8], n: &[u8]) -> Result<(), NfsError> {
        let r = self.call(async |c| {
            c.remove(&REMOVE3args {
                object: dirop(dir, n),
            })
            .await
        })?;
        ok(r).map(drop)
    }

    pub fn rmdir(&self, dir: &[u8], n: &[u8]) -> Result<(), NfsError> {
        let r = self.call(async |c| {
            c.rmdir(&RMDIR3args {
                object: dirop(dir, n),
            })
            .await
        })?;
        ok(r).map(drop)
    }

    pub fn rename(&self, from: &[u8], n: &[u8], to: &[u8], new: &[u8]) -> Result<(), NfsError> {
        let r = self.call(async |c| {
            c.rename(&RENAME3args {
                from: dirop(from, n),
                to: dirop(to, new),
            })
            .await
        })?;
        ok(r).map(drop)
    }

    /// The whole directory (READDIRPLUS until eof), `.` and `..` included.
    pub fn readdir(&self, dir: &[u8]) -> Result<Vec<DirEntry>, NfsError> {
        let mut out = Vec::new();
        let (mut cookie, mut verf) = (0u64, cookieverf3::default());
        loop {
            let r = self.call(async |c| {
                c.readdirplus(&READDIRPLUS3args {
                    dir: fh(dir),
                    cookie,
                    cookieverf: verf,
                    dircount: 64 * 1024,
                    maxcount: 256 * 1024,
                })
                .await
            })?;
            let r = ok(r)?;
            verf = r.cookieverf;
            let eof = r.reply.eof;
            let entries = r.reply.entries.into_inner();
            let empty = entries.is_empty();
            for e in entries {
                cookie = e.cookie;
                let handle = match (e.name_handle, e.name_attributes) {
                    (Nfs3Option::Some(h), Nfs3Option::Some(a)) => Some((h.data.to_vec(), a)),
                    _ => None,
                };
                out.push(DirEntry {
                    name: e.name.0.to_vec(),
                    fileid: e.fileid,
                    handle,
                });
            }
            if eof || empty {
                return Ok(out);
            }
        }
    }

    pub fn fsstat(&self) -> Result<FSSTAT3resok, NfsError> {
        let r = self.call(async |c| {
            c.fsstat(&FSSTAT3args {
                fsroot: fh(&self.root),
            })
            .await
        })?;
        ok(r)
    }
}
