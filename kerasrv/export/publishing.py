"""Versions in TF Serving's layout, written under a staging name and renamed into place whole.

An export is one new version directory, `<out>/<name>/<version>/`. It is written under a staging
name and renamed into place when complete, so a server never sees a partial version and an
existing version is never touched; the staging folder of an export that was killed is swept by
the next export of the same model (`sweep_staging`).
"""

import fcntl
import os
import shutil
import time
from pathlib import Path

STAGING = ".partial-"  # staging folders are named .<version>.partial-<token>
LOCK_SUFFIX = ".lock"  # and their export holds .<token>.lock


def next_version(directory):
    """The next integer version under a model's directory (1 when there is none)."""
    existing = [int(p.name) for p in Path(directory).glob("*") if p.name.isdigit()]
    return max(existing, default=0) + 1


def size(path):
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sweep_staging(root):
    """Removes the staging folders (and lock files) of dead exports under a model's directory.

    An export takes an exclusive lock on its lock file `.<token>.lock` before it makes its
    staging folder `.<version>.partial-<token>`, and holds it until it has published or removed
    that folder; the kernel drops the lock when the process dies, however it dies. So a staging
    folder whose lock can be taken, or that has no lock file, is a dead export's.

    Returns:
        The folders removed.
    """
    root = Path(root)
    removed = []
    for folder in root.glob(f".*{STAGING}*"):
        lock_path = root / f".{folder.name.rpartition(STAGING)[2]}{LOCK_SUFFIX}"
        if lock_path.exists() and not _takeable(lock_path):
            continue  # a live export
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    # A lock file with no folder: an export that died after publishing or cleaning up. Only
    # old ones go: a new export creates its lock file an instant before it takes the lock.
    for lock_path in root.glob(f".*{LOCK_SUFFIX}"):
        if time.time() - lock_path.stat().st_mtime > 60 and _takeable(lock_path):
            lock_path.unlink(missing_ok=True)
    return removed


def _takeable(lock_path):
    try:
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def publish(staging, root, version):
    """Renames a finished staging directory to the next free version, atomically.

    A rename onto an existing version fails rather than overwrite it; another export that took
    the version first makes this one try the next.
    """
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the version from a server's user
    for _ in range(100):
        final = root / str(version)
        try:
            os.rename(staging, final)  # a server sees the whole version or none of it
            return final
        except OSError:
            if not final.exists():
                raise
            version = next_version(root)
    raise RuntimeError(f"no free version directory under {root}")


def saved_model_size(directory):
    """The SavedModel's own files: saved_model.pb, variables/ and assets/."""
    parts = ["saved_model.pb", "fingerprint.pb", "variables", "assets"]
    return sum(size(directory / p) for p in parts if (directory / p).exists())
