//! The FUSE filesystem over an NFSv3 [`Client`]: inode numbers are the server's file ids
//! (the export's root swapped with inode 1, FUSE's root), each mapped to its file handle.
//! Attributes are cached by the kernel for [`ATTR_TTL`] (as the kernel client's `actimeo`),
//! and file data is not cached across opens, so another client's writes show on the next
//! open.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nfs3_client::nfs3_types::nfs3::{
    Nfs3Option, fattr3, ftype3, nfstime3, sattr3, set_atime, set_mtime,
};
use tracing::debug;

use crate::client::{Client, DirEntry, NfsError};

/// How long the kernel may trust attributes and names before asking again.
pub const ATTR_TTL: Duration = Duration::from_secs(1);

pub struct NfsFs {
    client: Client,
    root_fileid: u64,
    /// Inode number → file handle, for every inode the kernel was told of.
    handles: Mutex<HashMap<u64, Vec<u8>>>,
    /// Open directories' listings, read whole at opendir.
    dirs: Mutex<HashMap<u64, Vec<DirEntry>>>,
    next_dir: AtomicU64,
}

fn errno(e: &NfsError) -> Errno {
    debug!(error = %e, "NFS operation failed");
    Errno::from_i32(e.errno())
}

fn kind(t: ftype3) -> FileType {
    match t {
        ftype3::NF3REG => FileType::RegularFile,
        ftype3::NF3DIR => FileType::Directory,
        ftype3::NF3BLK => FileType::BlockDevice,
        ftype3::NF3CHR => FileType::CharDevice,
        ftype3::NF3LNK => FileType::Symlink,
        ftype3::NF3SOCK => FileType::Socket,
        ftype3::NF3FIFO => FileType::NamedPipe,
    }
}

fn time(t: nfstime3) -> SystemTime {
    t.into()
}

fn nfs_time(t: SystemTime) -> nfstime3 {
    nfstime3::try_from(t).unwrap_or_default()
}

/// What new files, directories and links are made with: their creator as owner (calls go
/// as root) and the mode less the umask.
fn new_attrs(req: &Request, mode: Option<u32>) -> sattr3 {
    sattr3 {
        mode: mode.map_or(Nfs3Option::None, Nfs3Option::Some),
        uid: Nfs3Option::Some(req.uid()),
        gid: Nfs3Option::Some(req.gid()),
        ..sattr3::default()
    }
}

impl NfsFs {
    pub fn new(client: Client) -> Result<Self, NfsError> {
        let root = client.root().to_vec();
        let root_fileid = client.getattr(&root)?.fileid;
        let handles = Mutex::new(HashMap::from([(INodeNo::ROOT.0, root)]));
        Ok(NfsFs {
            client,
            root_fileid,
            handles,
            dirs: Mutex::default(),
            next_dir: AtomicU64::new(1),
        })
    }

    /// A file id's inode number: the root's is 1, and whatever had id 1 takes the root's.
    fn ino(&self, fileid: u64) -> u64 {
        if fileid == self.root_fileid {
            INodeNo::ROOT.0
        } else if fileid == INodeNo::ROOT.0 {
            self.root_fileid
        } else {
            fileid
        }
    }

    fn handle(&self, ino: INodeNo) -> Result<Vec<u8>, Errno> {
        self.handles
            .lock()
            .ok()
            .and_then(|h| h.get(&ino.0).cloned())
            .ok_or(Errno::ESTALE)
    }

    fn remember(&self, h: Vec<u8>, a: &fattr3) -> FileAttr {
        let ino = self.ino(a.fileid);
        if let Ok(mut map) = self.handles.lock() {
            map.insert(ino, h);
        }
        self.attr(a)
    }

    fn attr(&self, a: &fattr3) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.ino(a.fileid)),
            size: a.size,
            blocks: a.used.div_ceil(512),
            atime: time(a.atime),
            mtime: time(a.mtime),
            ctime: time(a.ctime),
            crtime: time(a.ctime),
            kind: kind(a.type_),
            perm: (a.mode & 0o7777) as u16,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn entry(&self, r: Result<(Vec<u8>, fattr3), NfsError>, reply: ReplyEntry) {
        match r {
            Ok((h, a)) => reply.entry(&ATTR_TTL, &self.remember(h, &a), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn empty(r: Result<(), NfsError>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// Runs `$body` with the handle of `$ino`, replying ESTALE for an inode never looked up.
macro_rules! with_handle {
    ($self:ident, $ino:expr, $reply:ident, |$h:ident| $body:expr) => {
        match $self.handle($ino) {
            Ok($h) => $body,
            Err(e) => $reply.error(e),
        }
    };
}

impl Filesystem for NfsFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        with_handle!(self, parent, reply, |dir| {
            self.entry(self.client.lookup(&dir, name.as_bytes()), reply)
        })
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        with_handle!(self, ino, reply, |h| match self.client.getattr(&h) {
            Ok(a) => reply.attr(&ATTR_TTL, &self.attr(&a)),
            Err(e) => reply.error(errno(&e)),
        })
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let opt = |v: Option<u32>| v.map_or(Nfs3Option::None, Nfs3Option::Some);
        let attrs = sattr3 {
            mode: opt(mode.map(|m| m & 0o7777)),
            uid: opt(uid),
            gid: opt(gid),
            size: size.map_or(Nfs3Option::None, Nfs3Option::Some),
            atime: match atime {
                None => set_atime::DONT_CHANGE,
                Some(TimeOrNow::Now) => set_atime::SET_TO_SERVER_TIME,
                Some(TimeOrNow::SpecificTime(t)) => set_atime::SET_TO_CLIENT_TIME(nfs_time(t)),
            },
            mtime: match mtime {
                None => set_mtime::DONT_CHANGE,
                Some(TimeOrNow::Now) => set_mtime::SET_TO_SERVER_TIME,
                Some(TimeOrNow::SpecificTime(t)) => set_mtime::SET_TO_CLIENT_TIME(nfs_time(t)),
            },
        };
        with_handle!(self, ino, reply, |h| match self.client.setattr(&h, attrs) {
            Ok(a) => reply.attr(&ATTR_TTL, &self.attr(&a)),
            Err(e) => reply.error(errno(&e)),
        })
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        with_handle!(self, ino, reply, |h| match self.client.readlink(&h) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        })
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let attrs = new_attrs(req, Some(mode & !umask & 0o7777));
        with_handle!(self, parent, reply, |dir| {
            self.entry(self.client.mkdir(&dir, name.as_bytes(), attrs), reply)
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        with_handle!(self, parent, reply, |dir| {
            Self::empty(self.client.remove(&dir, name.as_bytes()), reply)
        })
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        with_handle!(self, parent, reply, |dir| {
            Self::empty(self.client.rmdir(&dir, name.as_bytes()), reply)
        })
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let attrs = new_attrs(req, None);
        with_handle!(self, parent, reply, |dir| {
            let r = self.client.symlink(
                &dir,
                link_name.as_bytes(),
                target.as_os_str().as_bytes(),
                attrs,
            );
            self.entry(r, reply)
        })
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // NFSv3 has no RENAME_EXCHANGE or RENAME_NOREPLACE.
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let (from, to) = match (self.handle(parent), self.handle(newparent)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let r = self
            .client
            .rename(&from, name.as_bytes(), &to, newname.as_bytes());
        Self::empty(r, reply)
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // No FOPEN_KEEP_CACHE: the kernel drops cached pages at open, so a file reopened
        // shows what other clients wrote meanwhile (NFS's close-to-open consistency).
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        with_handle!(
            self,
            ino,
            reply,
            |h| match self.client.read(&h, offset, size) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(&e)),
            }
        )
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        with_handle!(
            self,
            ino,
            reply,
            |h| match self.client.write(&h, offset, data) {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        )
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes are FILE_SYNC: nothing is pending.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        with_handle!(self, ino, reply, |h| match self.client.readdir(&h) {
            Ok(entries) => {
                let id = self.next_dir.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut dirs) = self.dirs.lock() {
                    dirs.insert(id, entries);
                }
                reply.opened(FileHandle(id), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        })
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Ok(dirs) = self.dirs.lock() else {
            return reply.error(Errno::EIO);
        };
        let Some(entries) = dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        // Offsets are positions in the listing read at opendir (the next entry's index).
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            let kind = e
                .handle
                .as_ref()
                .map_or(FileType::RegularFile, |(_, a)| kind(a.type_));
            if let Some((h, a)) = &e.handle
                && e.name != b"."
                && e.name != b".."
                && let Ok(mut map) = self.handles.lock()
            {
                map.insert(self.ino(a.fileid), h.clone());
            }
            let name = OsStr::from_bytes(&e.name);
            if reply.add(INodeNo(self.ino(e.fileid)), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut dirs) = self.dirs.lock() {
            dirs.remove(&fh.0);
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        const BLOCK: u64 = 4096;
        match self.client.fsstat() {
            Ok(s) => reply.statfs(
                s.tbytes / BLOCK,
                s.fbytes / BLOCK,
                s.abytes / BLOCK,
                s.tfiles,
                s.ffiles,
                BLOCK as u32,
                255,
                BLOCK as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let attrs = new_attrs(req, Some(mode & !umask & 0o7777));
        let exclusive = flags & libc::O_EXCL != 0;
        with_handle!(self, parent, reply, |dir| {
            match self.client.create(&dir, name.as_bytes(), attrs, exclusive) {
                Ok((h, a)) => {
                    let attr = self.remember(h, &a);
                    reply.created(
                        &ATTR_TTL,
                        &attr,
                        Generation(0),
                        FileHandle(0),
                        FopenFlags::empty(),
                    )
                }
                Err(e) => reply.error(errno(&e)),
            }
        })
    }
}
