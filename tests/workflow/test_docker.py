"""Docker jobs: the exact `docker run` argv, values never on it, and no engine -> fail before resolving."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loom_core.contracts.secrets import SecretRef, SecretValue
from loom_core.errors import ErrorCode
from loom_core.hookspecs import hookimpl
from loom_core.plugins.host import PluginHost
from loom_core.workflow.docker import docker_argv
from loom_core.workflow.graph import Job, SecretSpec

from .conftest import run_inprocess

VALUE = "docker-file-secret-88c1"
TOKEN = "docker-direct-token-77d2"

WORKFLOW = """\
variables: {REGION: eu-west-1}
jobs:
  migrate:
    image: postgres:16
    variables: {DB_HOST: db.internal}
    secrets:
      DATABASE_PASSWORD: {ref: "env://DB_PW"}
      API_TOKEN: {ref: "env://API_TOKEN", file: false}
    script: ["./migrate.sh"]
"""

# A stand-in for the docker CLI: `info` answers like a running engine; `run` records
# its argv and what a container would receive, then exits 0.
STAND_IN = """#!/bin/bash
case "$1" in
  info) exit "${FAKE_DOCKER_INFO_EXIT:-0}" ;;
  kill) exit 0 ;;
  run)
    printf '%s\\0' "$@" > docker.argv
    printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1 > docker.env.sha
    for a in "$@"; do
      case "$a" in
        *:/run/secrets/*:ro)
          host="${a%%:/run/secrets/*}"
          stat -c %a "$host" > docker.mode
          sha256sum < "$host" | cut -d' ' -f1 > docker.file.sha ;;
      esac
    done
    echo "container read $API_TOKEN"
    exit 0 ;;
esac
exit 2
"""


class ProbeProvider:
    """Counts resolutions, so a test can prove none happened."""

    scheme = "probe"
    capabilities: frozenset[str] = frozenset()
    resolved = 0

    def validate(self, ref: SecretRef) -> None:
        pass

    def resolve(self, ref: SecretRef) -> SecretValue:
        ProbeProvider.resolved += 1
        return SecretValue(b"probe-value-0123456789")

    def close(self) -> None:
        pass


class ProbePlugin:
    @hookimpl
    def loom_register_backends(self, registry: Any) -> None:
        registry.add_secrets("probe", lambda ctx: ProbeProvider())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_exact_argv() -> None:
    """File secrets are read-only mounts with a container path; direct ones are `-e NAME` only."""
    job = Job(
        name="migrate",
        script=("./migrate.sh",),
        image="postgres:16",
        secrets={
            "DATABASE_PASSWORD": SecretSpec("DATABASE_PASSWORD", "env://DB_PW"),
            "API_TOKEN": SecretSpec("API_TOKEN", "env://API_TOKEN", file=False),
        },
    )
    argv = docker_argv(
        job,
        script="set -e\n./migrate.sh\n",
        workdir=Path("/src/repo"),
        variables={"REGION": "eu-west-1", "DB_HOST": "db.internal"},
        secret_files={"DATABASE_PASSWORD": Path("/tmp/loom-migrate-x/DATABASE_PASSWORD")},
        name="loom-01abc-migrate",
    )
    assert argv == [
        "docker", "run", "--rm", "--name", "loom-01abc-migrate", "--init",
        "-v", "/src/repo:/workspace", "-w", "/workspace",
        "-v", "/tmp/loom-migrate-x/DATABASE_PASSWORD:/run/secrets/DATABASE_PASSWORD:ro",
        "-e", "DATABASE_PASSWORD=/run/secrets/DATABASE_PASSWORD",
        "-e", "REGION=eu-west-1",
        "-e", "DB_HOST=db.internal",
        "-e", "API_TOKEN",
        "postgres:16", "sh", "-c", "set -e\n./migrate.sh\n",
    ]  # fmt: skip


def test_runner_builds_the_command_and_keeps_values_off_it(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """Through `loom run`: argv as above, the mounted file is 0600 with the exact value, the
    direct value reaches docker's environment only, and the console output is redacted."""
    path = write_workflow(WORKFLOW)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(STAND_IN)
    (bindir / "docker").chmod(0o755)
    env = {"DB_PW": VALUE, "API_TOKEN": TOKEN, "PATH": f"{bindir}:{os.environ['PATH']}"}
    result: Any
    result, out, err = run_inprocess(path, env)
    assert result.exit_code == 0, err
    argv = (tmp_path / "docker.argv").read_bytes().split(b"\0")[:-1]
    assert (VALUE.encode() in b"\0".join(argv)) is False and (TOKEN.encode() in b"\0".join(argv)) is False
    text = [a.decode() for a in argv]
    assert text[:4] == ["run", "--rm", "--name", f"loom-{result.receipt.run_id.lower()}-migrate"]
    mount = text[10]
    host_file = mount.split(":")[0]
    assert text == [
        "run", "--rm", "--name", f"loom-{result.receipt.run_id.lower()}-migrate", "--init",
        "-v", f"{tmp_path}:/workspace", "-w", "/workspace",
        "-v", f"{host_file}:/run/secrets/DATABASE_PASSWORD:ro",
        "-e", "DATABASE_PASSWORD=/run/secrets/DATABASE_PASSWORD",
        "-e", "REGION=eu-west-1",
        "-e", "DB_HOST=db.internal",
        "-e", "API_TOKEN",
        "postgres:16", "sh", "-c", "set -e\n./migrate.sh\n",
    ]  # fmt: skip
    assert (tmp_path / "docker.mode").read_text().strip() == "600"
    assert (tmp_path / "docker.file.sha").read_text().strip() == _sha(VALUE)
    assert (tmp_path / "docker.env.sha").read_text().strip() == _sha(TOKEN)
    assert b"container read [REDACTED:SECRET_API_TOKEN]" in out
    assert not Path(host_file).exists()
    assert result.receipt.jobs[0].command == "docker"


@pytest.mark.parametrize("how", ["not-on-path", "info-fails"])
def test_missing_engine_fails_before_any_resolution(
    tmp_path: Path, write_workflow: Callable[..., Path], how: str
) -> None:
    """No docker on PATH, or `docker info` failing: WORKFLOW_DOCKER_UNAVAILABLE, zero resolutions."""
    path = write_workflow(
        "jobs:\n  a:\n    image: alpine:3\n    secrets: {S: {ref: 'probe://x'}, T: {ref: 'env://UNSET_VAR'}}\n"
        "    script: ['true']\n"
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {"PATH": str(bindir)}
    if how == "info-fails":
        (bindir / "docker").write_text(STAND_IN)
        (bindir / "docker").chmod(0o755)
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "FAKE_DOCKER_INFO_EXIT": "1"}
    host = PluginHost(environ={})
    host.register_plugin(ProbePlugin(), "probe-test")
    ProbeProvider.resolved = 0
    result: Any
    result, _, _ = run_inprocess(path, env, host=host)
    assert result.error is not None and result.error.code == ErrorCode.WORKFLOW_DOCKER_UNAVAILABLE
    assert ProbeProvider.resolved == 0
    assert result.receipt.jobs[0].status == "skipped"
    assert not (tmp_path / "docker.argv").exists()


def test_a_timed_out_docker_job_kills_its_container_by_name(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """When a Docker job exceeds its timeout, `loom run` kills the local `docker run` process group
    and also asks the engine to kill the container by its run-specific name (a container outlives
    its client otherwise); the job is timed_out and its secret file is gone."""
    path = write_workflow(
        """\
        jobs:
          slow:
            image: alpine:3
            timeout: 1
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script: ["sleep 30"]
        """
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(
        "#!/bin/bash\n"
        'case "$1" in\n'
        "  info) exit 0 ;;\n"
        "  kill) printf '%s\\0' \"$@\" > \"$(dirname \"$0\")/../docker.kill\"; exit 0 ;;\n"
        '  run) for a in "$@"; do\n'
        '         case "$a" in *:/run/secrets/*:ro) echo "${a%%:/run/secrets/*}" > host.file ;; esac\n'
        "       done\n"
        "       exec sleep 30 ;;\n"
        "esac\n"
        "exit 2\n"
    )
    (bindir / "docker").chmod(0o755)
    result: Any
    result, _, err = run_inprocess(path, {"DB_PW": VALUE, "PATH": f"{bindir}:{os.environ['PATH']}"})
    job = result.receipt.jobs[0]
    assert job.status == "timed_out", err
    killed = (tmp_path / "docker.kill").read_bytes().split(b"\0")[:-1]
    assert killed == [b"kill", f"loom-{result.receipt.run_id.lower()}-slow".encode()]
    assert not Path((tmp_path / "host.file").read_text().strip()).exists()


def test_docker_info_gets_the_cleaned_environment(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """The engine check ran `docker info` with loom's whole environment: vault credentials (a
    1Password token, a KeePass alias and the master password it names) and the `env://` sources
    reached it. It now gets what `docker run` gets; an ordinary variable still does."""
    path = write_workflow(WORKFLOW)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(
        "#!/bin/bash\n"
        'here="$(dirname "$0")/.."\n'
        'case "$1" in\n'
        '  info) env > "$here/docker.info.env"; exit 0 ;;\n'
        '  run) env > "$here/docker.run.env"; exit 0 ;;\n'
        "esac\n"
        "exit 2\n"
    )
    (bindir / "docker").chmod(0o755)
    op_token = "ops_service-account-token-4411"
    master = "keepass-master-password-9d0e"
    env = {
        "DB_PW": VALUE,
        "API_TOKEN": TOKEN,
        "OP_SERVICE_ACCOUNT_TOKEN": op_token,
        "LOOM_KEEPASS_DB_MAIN_PATH": str(tmp_path / "main.kdbx"),
        "LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV": "KP_MASTER",
        "KP_MASTER": master,
        "ORDINARY_SETTING": "kept",
        "PATH": f"{bindir}:{os.environ['PATH']}",
    }
    result: Any
    result, _, err = run_inprocess(path, env)
    assert result.exit_code == 0, err
    for name in ("docker.info.env", "docker.run.env"):
        seen = dict(line.split("=", 1) for line in (tmp_path / name).read_text().splitlines() if "=" in line)
        withheld = {"DB_PW", "OP_SERVICE_ACCOUNT_TOKEN", "LOOM_KEEPASS_DB_MAIN_PATH",
                    "LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV", "KP_MASTER"}  # fmt: skip
        assert not withheld & seen.keys(), (name, withheld & seen.keys())
        raw = (tmp_path / name).read_bytes()
        assert not any(v.encode() in raw for v in (VALUE, op_token, master)), name
        assert seen["ORDINARY_SETTING"] == "kept"
    # the engine check precedes resolution: a `file: false` value is not in its environment either
    assert "API_TOKEN" not in (tmp_path / "docker.info.env").read_text()
