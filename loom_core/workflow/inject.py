"""File-first injection: each value in a fresh 0600 file inside a private 0700 directory.

The environment variable then holds the file's path, so the value never sits
in an environment block, a command line or a shell trace. The directory and
its files are removed when the job ends, whatever way it ends; a ``loom run``
killed outright (SIGKILL, power loss) cannot do that, so each directory's name
carries the owning process id and the next run removes directories whose owner
is gone (:func:`sweep_stale_dirs`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.workflow.graph import Job

#: Environment variables that carry vault credentials; a job never inherits them.
CREDENTIAL_VARIABLES = ("OP_SERVICE_ACCOUNT_TOKEN", "OP_CONNECT_TOKEN")
CREDENTIAL_PREFIXES = ("LOOM_KEEPASS_DB_",)
#: ``<prefix><owner pid>-<job>-<random>``: a run's private secrets directory
DIR_PREFIX = "loom-secrets-"


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


class SecretFiles:
    """Context manager owning a job's private secrets directory."""

    def __init__(self, job: Job, values: Mapping[str, SecretValue], base_dir: str | None = None) -> None:
        self.job = job
        self.values = values
        self.base_dir = base_dir
        self.directory: Path | None = None
        self.paths: dict[str, Path] = {}

    def __enter__(self) -> SecretFiles:
        file_secrets = [s for s in self.job.secrets.values() if s.file]
        if file_secrets:
            # mkdtemp creates the directory with mode 0700, owned by this user.
            prefix = f"{DIR_PREFIX}{os.getpid()}-{self.job.name}-"
            self.directory = Path(tempfile.mkdtemp(prefix=prefix, dir=self.base_dir))
            try:
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


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def sweep_stale_dirs(base_dir: str | None = None) -> list[Path]:
    """Remove secrets directories (in ``base_dir``, default the temp dir) left by runs that died.

    Only directories this user owns, named ``DIR_PREFIX<pid>-...``, not symlinks,
    whose owner process no longer exists. A reused pid keeps a directory until a
    later run: the check errs on the side of leaving files, never of removing a
    live run's. Returns what was removed.
    """
    base = Path(base_dir or tempfile.gettempdir())
    removed: list[Path] = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(DIR_PREFIX):
            continue
        owner = entry.name[len(DIR_PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        if _owner_alive(int(owner)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


def scrubbed_environ(
    environ: Mapping[str, str], values: Mapping[str, SecretValue], env_refs: list[str]
) -> dict[str, str]:
    """The inherited environment minus vault credentials, ``env://`` sources and any value copy."""
    raw = [v.reveal() for v in values.values()]
    indirect = {
        environ[k]
        for k in environ
        if k.startswith(CREDENTIAL_PREFIXES) and k.endswith(("_PASSWORD_ENV", "_KEYFILE_ENV"))
        if environ.get(k)
    }
    out: dict[str, str] = {}
    for key, text in environ.items():
        if key in CREDENTIAL_VARIABLES or key.startswith(CREDENTIAL_PREFIXES) or key in indirect:
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
