//! The app's files under `--data` are readable by the app's user only: directories `0700`,
//! files `0600`, made so when created and set so on every start for files an earlier version
//! made. The embedded simulator's files (`graph-sim*`) stand for Microsoft's servers and are
//! left as they are. On systems without Unix modes, nothing is changed.

use std::io;
use std::path::Path;

/// The mode of the app's directories.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// The mode of the app's files.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Whether a file under `--data` is the embedded simulator's.
fn is_simulators(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with("graph-sim"))
}

/// Creates `dir` (and its parents) when missing, then makes it and everything the app keeps in
/// it private: `0700` directories, `0600` files (SQLite's `-wal` and `-shm` and the key files
/// included), the simulator's `graph-sim*` files aside. Symbolic links are not followed.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    restrict(dir, true)
}

fn restrict(path: &Path, is_dir: bool) -> io::Result<()> {
    set_mode(path, is_dir)?;
    if !is_dir {
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if is_simulators(&entry.file_name()) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restrict(&entry.path(), true)?;
        } else if kind.is_file() {
            set_mode(&entry.path(), false)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, is_dir: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if is_dir { DIR_MODE } else { FILE_MODE };
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o777;
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: bool) -> io::Result<()> {
    Ok(())
}

/// Creates `path` empty with mode `0600` when it does not exist, and sets `0600` when it does:
/// a file SQLite then opens keeps that mode, and its `-wal` and `-shm` take it.
pub(crate) fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    drop(options.open(path)?);
    set_mode(path, false)
}
