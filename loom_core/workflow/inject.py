"""File-first injection: each value in a fresh 0600 file inside a private 0700 directory.

The environment variable then holds the file's path, so the value never sits
in an environment block, a command line or a shell trace. The directory and
its files are removed when the job ends, whatever way it ends; a ``loom run``
killed outright (SIGKILL, power loss) cannot do that, so each directory holds
a lock file that ``loom run`` and the job keep locked while either lives, and
the next run removes directories whose lock nobody holds (:func:`sweep_stale_dirs`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.secrets.credentials import BASELINE, protected_names
from loom_core.workflow.graph import Job

#: ``<prefix><job>-<random>``: a run's private secrets directory
DIR_PREFIX = "loom-secrets-"
#: held (``flock``) by ``loom run`` and inherited by the job while the directory is in use
LOCK_NAME = ".lock"


def write_secret_file(directory: Path, name: str, value: SecretValue) -> Path:
    """Create ``directory/name`` exclusively with mode 0600 and write the value into it."""
    path = directory / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        data = memoryview(value.reveal())
        while data:
            written = os.write(fd, data)
            data = data[written:]
    finally:
        os.close(fd)
    return path


def _hold_lock(directory: Path) -> int:
    """Create ``directory/LOCK_NAME`` already locked: it gets its name only once locked,
    so a concurrent sweep never finds it unlocked. Returns the descriptor holding it."""
    staging = directory / (LOCK_NAME + ".new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            # a file system without locks (some NFS set-ups): the sweep cannot lock it
            # either, so it keeps the directory; the job's own clean-up still removes it
            pass
        os.rename(staging, directory / LOCK_NAME)
    except BaseException:
        os.close(fd)
        raise
    return fd


class SecretFiles:
    """Context manager owning a job's private secrets directory."""

    def __init__(self, job: Job, values: Mapping[str, SecretValue], base_dir: str | None = None) -> None:
        self.job = job
        self.values = values
        self.base_dir = base_dir
        self.directory: Path | None = None
        self.paths: dict[str, Path] = {}
        #: the lock's descriptor; pass it to the job (``pass_fds``) so the lock outlives a killed run
        self.lock_fd: int | None = None

    def __enter__(self) -> SecretFiles:
        file_secrets = [s for s in self.job.secrets.values() if s.file]
        if file_secrets:
            # mkdtemp creates the directory with mode 0700, owned by this user.
            self.directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{self.job.name}-", dir=self.base_dir))
            try:
                self.lock_fd = _hold_lock(self.directory)
                for spec in file_secrets:
                    self.paths[spec.name] = write_secret_file(self.directory, spec.name, self.values[spec.name])
            except BaseException:
                self.remove()
                raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Delete the files and the directory (idempotent)."""
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _unlocked(directory: str) -> bool:
    """Whether nobody holds ``directory``'s lock (its run and job are gone). A directory
    without a lock file is left alone: it may be one being created this instant."""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a live run, or the job a killed run left behind
    finally:
        os.close(fd)
    return True


def sweep_stale_dirs(base_dir: str | None = None) -> list[Path]:
    """Remove secrets directories (in ``base_dir``, default the temp dir) whose run and job are gone.

    Only directories named ``DIR_PREFIX...``, owned by this user, not symlinks,
    whose lock file nobody holds. The lock is an ``flock`` on an open file, so it
    is released by the kernel when the last process holding it exits, whatever
    the process id namespace or host; it never depends on process ids. Returns
    what was removed.
    """
    base = Path(base_dir or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(DIR_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _unlocked(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(Path(entry.path))
    return removed


def scrubbed_environ(
    environ: Mapping[str, str],
    values: Mapping[str, SecretValue],
    env_refs: list[str],
    protected: Iterable[str] = (),
) -> dict[str, str]:
    """The inherited environment minus vault credentials, ``env://`` sources and any value copy.

    ``protected``: the credential variables of every registered secrets backend
    (``ProviderPool.protected()``); the first-party providers' are withheld in any case.
    """
    raw = [v.reveal() for v in values.values()]
    # the vault credentials, their settings and the variables they name
    withheld = protected_names((BASELINE,), environ) | set(protected)
    out: dict[str, str] = {}
    for key, text in environ.items():
        if key in withheld:
            continue
        if key in env_refs:
            continue
        encoded = text.encode("utf-8", "surrogateescape")
        if any(r in encoded for r in raw):
            continue
        out[key] = text
    return out


def job_environment(
    base: Mapping[str, str],
    variables: Mapping[str, str],
    job: Job,
    values: Mapping[str, SecretValue],
    file_paths: Mapping[str, str],
) -> dict[str, str]:
    """``base`` + plain variables + per secret either its file path or (file: false) its value."""
    env = dict(base)
    env.update(variables)
    env.update(job.variables)
    for spec in job.secrets.values():
        if spec.file:
            env[spec.name] = file_paths[spec.name]
        else:
            raw = values[spec.name].reveal()
            if b"\0" in raw:
                raise LoomError(
                    ErrorCode.SECRETS_VALUE_UNSAFE,
                    f"job {job.name!r}: secret {spec.name} ({spec.ref}): the value contains a NUL byte and "
                    "cannot live in an environment variable; use file: true",
                )
            env[spec.name] = raw.decode("utf-8", "surrogateescape")
    return env
