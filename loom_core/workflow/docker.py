"""Docker jobs: find a working engine first, then build the exact ``docker run`` argv.

Secret values never appear on the command line: file secrets are bind-mounted
read-only at ``/run/secrets/NAME`` (the variable holds that container path),
and ``file: false`` secrets are passed as ``-e NAME`` so Docker copies the
value from its own process environment.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from loom_core.errors import ErrorCode, LoomError
from loom_core.workflow.graph import Job

CONTAINER_SECRETS_DIR = "/run/secrets"
CONTAINER_WORKDIR = "/workspace"


def require_engine(environ: Mapping[str, str], docker: str = "docker", timeout: float = 20.0) -> str:
    """Path of a ``docker`` whose ``docker info`` succeeds, else ``WORKFLOW_DOCKER_UNAVAILABLE``.

    ``environ`` is all ``docker info`` gets (and its ``PATH`` finds ``docker``): pass the cleaned
    environment ``docker run`` gets, without vault credentials or ``env://`` sources.
    """
    found = shutil.which(docker, path=environ.get("PATH"))
    if found is None:
        raise LoomError(
            ErrorCode.WORKFLOW_DOCKER_UNAVAILABLE,
            f"a job uses `image` but {docker!r} is not on PATH; install Docker or run the job without `image`",
        )
    try:
        result = subprocess.run(
            [found, "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(environ),
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoomError(
            ErrorCode.WORKFLOW_DOCKER_UNAVAILABLE,
            f"`{found} info` did not answer ({type(exc).__name__}); start the Docker engine",
        ) from None
    if result.returncode != 0:
        raise LoomError(
            ErrorCode.WORKFLOW_DOCKER_UNAVAILABLE,
            f"`{found} info` exited {result.returncode}: no Docker engine answers; start it",
        )
    return found


def container_name(run_id: str, job: str) -> str:
    """A unique, valid container name so a timed-out job's container can be killed."""
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in job)
    return f"loom-{run_id.lower()}-{safe}"


def docker_argv(
    job: Job,
    *,
    script: str,
    workdir: Path,
    variables: Mapping[str, str],
    secret_files: Mapping[str, Path],
    name: str,
    docker: str = "docker",
) -> list[str]:
    """The exact ``docker run`` argv for ``job`` (``variables``: plain ones, already merged)."""
    argv = [docker, "run", "--rm", "--name", name, "--init"]
    argv += ["-v", f"{workdir}:{CONTAINER_WORKDIR}", "-w", CONTAINER_WORKDIR]
    for spec in job.secrets.values():
        if spec.file:
            target = f"{CONTAINER_SECRETS_DIR}/{spec.name}"
            argv += ["-v", f"{secret_files[spec.name]}:{target}:ro", "-e", f"{spec.name}={target}"]
    for key, value in variables.items():
        argv += ["-e", f"{key}={value}"]
    for spec in job.secrets.values():
        if not spec.file:
            argv += ["-e", spec.name]
    if not job.image:
        raise LoomError(ErrorCode.INTERNAL_ERROR, f"docker_argv called for job {job.name!r}, which has no image")
    argv += [job.image, "sh", "-c", script]
    return argv
