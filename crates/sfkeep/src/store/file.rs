use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

use super::envelope::{CacheKey, StoredRecord};
use super::{CasOutcome, RefreshLock, Store, StoreKey, StoreWarning};
use crate::error::{Error, Result};
use crate::token::TokenRecord;

/// Records in one encrypted file, shared by the processes of one machine.
///
/// - Encrypted with XChaCha20-Poly1305 under a [`CacheKey`]; mode 0600.
/// - Writes go to a temp file in the same directory, are fsynced and renamed over the old file
///   (then the directory is fsynced), under an exclusive lock on `<path>.lock`: a crash leaves
///   the old or the new file, never a torn one.
/// - A file encrypted with another key is an error that names the problem; it is never
///   overwritten.
/// - The refresh lock is an exclusive lock on `<path>.<key>.refresh`, so processes on this
///   machine refresh one at a time.
#[derive(Debug, Clone)]
pub struct EncryptedFileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    key: CacheKey,
    warnings: Mutex<Vec<StoreWarning>>,
}

/// How often a waiting process retries the refresh lock.
const LOCK_POLL: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct FileLockGuard(#[allow(dead_code)] File);
impl RefreshLock for FileLockGuard {}

fn store_err(message: impl Into<String>) -> Error {
    Error::Store {
        store: "file",
        message: message.into(),
    }
}

impl EncryptedFileStore {
    /// A store at `path` (created on first write) encrypted with `key`.
    pub fn new(path: impl Into<PathBuf>, key: CacheKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                key,
                warnings: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The data file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self
            .inner
            .path
            .file_name()
            .unwrap_or_default()
            .to_os_string();
        name.push(suffix);
        self.inner.path.with_file_name(name)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EncryptedFileStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| store_err(format!("file store task failed: {e}")))?
    }

    /// Reads and decrypts the whole map. Missing file: empty map.
    fn read_map(&self) -> Result<BTreeMap<String, StoredRecord>> {
        let blob = match std::fs::read(&self.inner.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(store_err(format!(
                    "cannot read {}: {e}",
                    self.inner.path.display()
                )));
            }
        };
        let plain = self.inner.key.open(&blob).map_err(|e| {
            store_err(format!(
                "cannot open {}: {e}. The file was left untouched; use the key it was written with, or delete it and log in again",
                self.inner.path.display()
            ))
        })?;
        serde_json::from_slice(&plain).map_err(|e| {
            store_err(format!(
                "{} decrypted but is not a token map ({e}); left untouched",
                self.inner.path.display()
            ))
        })
    }

    fn write_map(&self, map: &BTreeMap<String, StoredRecord>) -> Result<()> {
        let path = &self.inner.path;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| store_err(format!("cannot create {}: {e}", dir.display())))?;
        let json = Zeroizing::new(serde_json::to_vec(map).expect("a token map always serializes"));
        let blob = self.inner.key.seal(&json);
        let tmp = self.sibling(&format!(".tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = open_private(&tmp, true)?;
            f.write_all(&blob)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            store_err(format!("cannot write {}: {e}", path.display()))
        })
    }

    fn with_write_lock<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let lock_path = self.sibling(".lock");
        if let Some(dir) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| store_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let lock = open_private(&lock_path, false)
            .map_err(|e| store_err(format!("cannot open {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| store_err(format!("cannot lock {}: {e}", lock_path.display())))?;
        f()
    }
}

/// Opens (creating) a file with mode 0600.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).write(true).read(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl Store for EncryptedFileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<TokenRecord>>> {
        let k = key.as_str().to_owned();
        Box::pin(self.blocking(move |s| Ok(s.read_map()?.remove(&k).map(TokenRecord::from))))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: Option<u64>,
        record: &'a TokenRecord,
    ) -> BoxFuture<'a, Result<CasOutcome>> {
        let k = key.as_str().to_owned();
        let stored = StoredRecord::from(record);
        Box::pin(self.blocking(move |s| {
            s.with_write_lock(|| {
                let mut map = s.read_map()?;
                let current = map.get(&k).map(|r| TokenRecord::from(r.clone()));
                if current.as_ref().map(|r| r.generation) != expected {
                    return Ok(CasOutcome::Conflict(current));
                }
                map.insert(k, stored);
                s.write_map(&map)?;
                Ok(CasOutcome::Written)
            })
        }))
    }

    fn lock<'a>(
        &'a self,
        key: &'a StoreKey,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLock>>>> {
        let path = self.sibling(&format!(".{}.refresh", key.as_str()));
        Box::pin(async move {
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| store_err(format!("cannot create {}: {e}", dir.display())))?;
            }
            let file = open_private(&path, false)
                .map_err(|e| store_err(format!("cannot open {}: {e}", path.display())))?;
            let deadline = Instant::now() + wait;
            loop {
                match file.try_lock() {
                    Ok(()) => {
                        return Ok(Some(Box::new(FileLockGuard(file)) as Box<dyn RefreshLock>));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(store_err(format!("cannot lock {}: {e}", path.display())));
                    }
                }
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
        })
    }

    fn take_warnings(&self) -> Vec<StoreWarning> {
        std::mem::take(&mut *crate::sync::lock(&self.inner.warnings))
    }
}
