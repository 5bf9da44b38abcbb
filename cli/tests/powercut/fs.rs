//! A filesystem (FUSE, served from the test process) that keeps what was
//! not synced in memory only, and throws it away on a simulated power cut:
//! a file's data and size become durable on its `fsync`/`fdatasync`, a
//! directory's entries (creations, renames, removals) on the directory's
//! `fsync`. Everything lives in memory; nothing reaches the host's disk.
//! Files are opened `direct_io` so the kernel keeps no page cache that
//! would survive the cut.

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const ROOT: u64 = fuser::FUSE_ROOT_ID;
const FOPEN_DIRECT_IO: u32 = 1;
/// Attributes are never cached: after a cut they change under the kernel.
const TTL: Duration = Duration::ZERO;

#[derive(Debug, Clone, Default)]
struct Inode {
    dir: bool,
    perm: u16,
    /// What the files holds now (files), and what survives a cut.
    data: Vec<u8>,
    synced: Vec<u8>,
    /// Entries now (directories), and those that survive a cut.
    children: BTreeMap<OsString, u64>,
    synced_children: BTreeMap<OsString, u64>,
}

/// The state, shared with the test that cuts the power.
#[derive(Debug, Default)]
pub(crate) struct State {
    inodes: HashMap<u64, Inode>,
    next: u64,
    /// Counted for the report: syncs of files and of directories.
    pub(crate) file_syncs: u64,
    pub(crate) dir_syncs: u64,
    pub(crate) cuts: u64,
}

impl State {
    fn new() -> Self {
        let mut inodes = HashMap::new();
        inodes.insert(ROOT, Inode { dir: true, perm: 0o755, ..Inode::default() });
        State { inodes, next: ROOT + 1, ..State::default() }
    }

    /// Everything written so far becomes durable (as after `sync`).
    pub(crate) fn sync_all(&mut self) {
        for i in self.inodes.values_mut() {
            i.synced = i.data.clone();
            i.synced_children = i.children.clone();
        }
    }

    /// The power goes: only what was synced is left.
    pub(crate) fn power_cut(&mut self) {
        for i in self.inodes.values_mut() {
            i.data = i.synced.clone();
            i.children = i.synced_children.clone();
        }
        self.cuts += 1;
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let i = self.inodes.get(&ino)?;
        let size = i.data.len() as u64;
        let now = SystemTime::now();
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: if i.dir { FileType::Directory } else { FileType::RegularFile },
            perm: i.perm,
            nlink: if i.dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        self.inodes.get(&parent)?.children.get(name).copied()
    }

    fn add(&mut self, parent: u64, name: &OsStr, dir: bool, perm: u16) -> Result<u64, i32> {
        let p = self.inodes.get(&parent).ok_or(libc::ENOENT)?;
        if !p.dir {
            return Err(libc::ENOTDIR);
        }
        if p.children.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        self.inodes.insert(ino, Inode { dir, perm, ..Inode::default() });
        self.inodes.get_mut(&parent).expect("checked").children.insert(name.to_owned(), ino);
        Ok(ino)
    }
}

/// The FUSE side: every call takes the shared state's lock.
struct Unsynced(Arc<Mutex<State>>);

impl Unsynced {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Filesystem for Unsynced {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let s = self.state();
        match s.child(parent, name).and_then(|i| s.attr(i)) {
            Some(a) => reply.entry(&TTL, &a, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.state().attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let Some(i) = s.inodes.get_mut(&ino) else { return reply.error(libc::ENOENT) };
        if let Some(size) = size {
            i.data.resize(size as usize, 0);
        }
        if let Some(mode) = mode {
            i.perm = (mode & 0o7777) as u16;
        }
        let a = s.attr(ino).expect("present");
        reply.attr(&TTL, &a)
    }

    fn mkdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let mut s = self.state();
        match s.add(parent, name, true, (mode & 0o7777) as u16) {
            Ok(ino) => reply.entry(&TTL, &s.attr(ino).expect("added"), 0),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        match s.add(parent, name, false, (mode & 0o7777) as u16) {
            Ok(ino) => reply.created(&TTL, &s.attr(ino).expect("added"), 0, 0, FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        match s.inodes.get_mut(&parent).and_then(|p| p.children.remove(name)) {
            Some(_) => reply.ok(),
            None => reply.error(libc::ENOENT),
        }
    }

    fn rmdir(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let empty = {
            let s = self.state();
            s.child(parent, name).and_then(|i| s.inodes.get(&i)).map(|i| i.children.is_empty())
        };
        match empty {
            Some(true) => self.unlink(req, parent, name, reply),
            Some(false) => reply.error(libc::ENOTEMPTY),
            None => reply.error(libc::ENOENT),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let Some(ino) = s.child(parent, name) else { return reply.error(libc::ENOENT) };
        if flags & libc::RENAME_NOREPLACE != 0 && s.child(newparent, newname).is_some() {
            return reply.error(libc::EEXIST);
        }
        if !s.inodes.get(&newparent).is_some_and(|p| p.dir) {
            return reply.error(libc::ENOENT);
        }
        s.inodes.get_mut(&parent).expect("looked up").children.remove(name);
        s.inodes.get_mut(&newparent).expect("checked").children.insert(newname.to_owned(), ino);
        reply.ok()
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if self.state().inodes.contains_key(&ino) {
            reply.opened(0, FOPEN_DIRECT_IO)
        } else {
            reply.error(libc::ENOENT)
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let s = self.state();
        let Some(i) = s.inodes.get(&ino) else { return reply.error(libc::ENOENT) };
        let start = (offset as usize).min(i.data.len());
        let end = (start + size as usize).min(i.data.len());
        reply.data(&i.data[start..end])
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let Some(i) = s.inodes.get_mut(&ino) else { return reply.error(libc::ENOENT) };
        let end = offset as usize + data.len();
        if i.data.len() < end {
            i.data.resize(end, 0);
        }
        i.data[offset as usize..end].copy_from_slice(data);
        reply.written(data.len() as u32)
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok()
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.state();
        s.file_syncs += 1;
        match s.inodes.get_mut(&ino) {
            Some(i) => {
                i.synced = i.data.clone();
                reply.ok()
            }
            None => reply.error(libc::ENOENT),
        }
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.state();
        s.dir_syncs += 1;
        match s.inodes.get_mut(&ino) {
            Some(i) => {
                i.synced_children = i.children.clone();
                reply.ok()
            }
            None => reply.error(libc::ENOENT),
        }
    }

    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0)
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let s = self.state();
        let Some(d) = s.inodes.get(&ino) else { return reply.error(libc::ENOENT) };
        let mut entries =
            vec![(ino, FileType::Directory, OsString::from(".")), (ROOT, FileType::Directory, "..".into())];
        for (name, child) in &d.children {
            let kind =
                if s.inodes.get(child).is_some_and(|c| c.dir) { FileType::Directory } else { FileType::RegularFile };
            entries.push((*child, kind, name.clone()));
        }
        for (n, (i, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(i, (n + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let Some(i) = s.inodes.get_mut(&ino) else { return reply.error(libc::ENOENT) };
        let end = (offset + length) as usize;
        if i.data.len() < end {
            i.data.resize(end, 0);
        }
        reply.ok()
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok()
    }
}

/// A mounted unsynced filesystem; unmounted when dropped.
pub(crate) struct Mounted {
    pub(crate) state: Arc<Mutex<State>>,
    _session: fuser::BackgroundSession,
}

impl Mounted {
    /// Mounts an empty one at `at`, or says why not (no FUSE, not root).
    pub(crate) fn at(at: &Path) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::new()));
        let options = [MountOption::FSName("vigil-unsynced".into()), MountOption::DefaultPermissions];
        let session = fuser::spawn_mount2(Unsynced(state.clone()), at, &options)?;
        Ok(Mounted { state, _session: session })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
