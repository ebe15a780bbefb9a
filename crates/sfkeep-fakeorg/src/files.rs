//! Files the org writes for its users: secrets and keys, readable by their owner only.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `contents` to `dir/name` with mode 0600.
pub fn write_private(dir: &Path, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path)?;
    f.write_all(contents)?;
    // An existing file keeps its old mode through open(); tighten it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(path)
}
