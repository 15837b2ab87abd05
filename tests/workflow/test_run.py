"""`loom run` with real subprocesses and real temp files: injection, redaction, cleanup, receipts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loom_core.config import LoomConfig
from loom_core.errors import ErrorCode, LoomError

from .conftest import run_inprocess, run_loom

VALUE = "pg-pass-Zq81-very-secret"
TOKEN_VALUE = "api-token-3fd1-very-secret"
REDACTED = b"[REDACTED:SECRET_DATABASE_PASSWORD]"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _wait_for(path: Path, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > end:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.02)


def test_file_secret_is_redacted_private_and_removed(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """The job cats its 0600 secret file and echoes it: console and receipt show the token only,
    `ls -l` shows -rw-------, the directory is 0700, and the file is gone after the run."""
    path = write_workflow(
        """\
        jobs:
          migrate:
            secrets:
              DATABASE_PASSWORD: {ref: "env://DB_PW"}
            script:
              - 'echo "$DATABASE_PASSWORD" > secret.path'
              - 'ls -l "$DATABASE_PASSWORD" > ls.txt'
              - 'stat -c %a "$(dirname "$DATABASE_PASSWORD")" > dirmode.txt'
              - 'echo "password is: $(cat "$DATABASE_PASSWORD")"'
              - 'cat "$DATABASE_PASSWORD" >&2'
        """
    )
    result: Any
    result, out, err = run_inprocess(path, {"DB_PW": VALUE})
    assert result.exit_code == 0, err
    assert (VALUE.encode() in out + err) is False, "value reached the console"
    assert b"password is: " + REDACTED in out
    assert REDACTED in err
    assert (tmp_path / "ls.txt").read_text().startswith("-rw------- ")
    assert (tmp_path / "dirmode.txt").read_text().strip() == "700"
    secret_path = Path((tmp_path / "secret.path").read_text().strip())
    assert secret_path.is_absolute() and not secret_path.exists() and not secret_path.parent.exists()
    raw = (tmp_path / "receipt.json").read_bytes()
    assert (VALUE.encode() in raw) is False, "value in receipt"
    receipt = json.loads(raw)
    job = receipt["jobs"][0]
    assert job["status"] == "success" and job["exit_code"] == 0
    assert job["secrets"] == [{"name": "DATABASE_PASSWORD", "ref": "env://DB_PW", "scheme": "env", "file": True}]
    assert "[REDACTED:SECRET_DATABASE_PASSWORD]" in job["stdout"]["tail"]
    assert "[REDACTED:SECRET_DATABASE_PASSWORD]" in job["stderr"]["tail"]
    assert len(receipt["run_id"]) == 26 and job["started_at"] and job["finished_at"]


def test_a_later_job_inherits_no_earlier_secret_and_the_run_holds_none(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """Job ``a`` uses two secrets; job ``b`` declares one served by a stand-in provider that, when
    called, looks through every live object of this process. ``b`` does not inherit ``a``'s values
    or its env:// source variable, and by the time ``b`` resolves, nothing holds ``a``'s values as
    secrets any more: resolved values live only for their job (the seed's "discarded after the job
    finishes")."""
    import gc

    from loom_core.contracts.secrets import SecretValue

    from ..provider_stubs import host_with_provider

    seen: list[bytes] = []

    def resolve(ref: object) -> SecretValue:
        gc.collect()
        seen.extend(o.reveal() for o in gc.get_objects() if isinstance(o, SecretValue))
        return SecretValue(b"probe-value-for-job-b-0001")

    path = write_workflow(
        """\
        jobs:
          a:
            secrets:
              DATABASE_PASSWORD: {ref: "env://DB_PW"}
              API_TOKEN: {ref: "env://API_TOKEN", file: false}
            script: ['echo "a ran"']
          b:
            needs: [a]
            secrets: {PROBE: {ref: "probe://x"}}
            script: ['echo "b inherits: [$API_TOKEN] [$DB_PW] [$DATABASE_PASSWORD]"']
        """
    )
    result: Any
    result, out, err = run_inprocess(
        path, {"DB_PW": VALUE, "API_TOKEN": TOKEN_VALUE}, host=host_with_provider("probe", resolve=resolve)
    )
    assert result.exit_code == 0, err
    assert b"b inherits: [] [] []" in out
    assert VALUE.encode() not in seen and TOKEN_VALUE.encode() not in seen
    raw = (tmp_path / "receipt.json").read_bytes()
    for value in (VALUE, TOKEN_VALUE):
        assert (value.encode() in out + err + raw) is False


def test_values_reach_the_job_exactly(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """file: true gives a path to the exact bytes; file: false gives the value in the variable."""
    path = write_workflow(
        """\
        jobs:
          deploy:
            secrets:
              DATABASE_PASSWORD: {ref: "env://DB_PW"}
              API_TOKEN: {ref: "env://API_TOKEN", file: false}
            script:
              - 'sha256sum < "$DATABASE_PASSWORD" | cut -d" " -f1 > file.sha'
              - 'printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1 > env.sha'
        """
    )
    result: Any
    result, _, err = run_inprocess(path, {"DB_PW": VALUE, "API_TOKEN": TOKEN_VALUE})
    assert result.exit_code == 0, err
    assert (tmp_path / "file.sha").read_text().strip() == _sha(VALUE)
    assert (tmp_path / "env.sha").read_text().strip() == _sha(TOKEN_VALUE)


def test_output_split_byte_by_byte_is_redacted(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """A value printed one byte per write is still redacted on the console stream."""
    path = write_workflow(
        """\
        jobs:
          drip:
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script:
              - 'while IFS= read -r -n1 c; do printf %s "$c"; done < "$DATABASE_PASSWORD"; echo'
        """
    )
    result: Any
    result, out, _ = run_inprocess(path, {"DB_PW": VALUE})
    assert result.exit_code == 0
    assert (VALUE.encode() in out) is False, "byte-by-byte value not redacted"
    assert out.strip() == REDACTED


def test_a_one_page_pipe_is_read_without_a_pause_per_read(
    tmp_path: Path, write_workflow: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the kernel gives the job a one-page pipe (as it does once a user's pipes hold
    ``pipe-user-pages-soft`` pages), full reads are not followed by the coalescing pause:
    pausing after each 4 KiB read capped the stream at a few MB/s. The output still arrives
    byte-exact and redacted."""
    from loom_core.workflow import process

    monkeypatch.setattr(process, "PIPE_SIZE", 4096)
    reads: list[int] = []
    pauses: list[float] = []
    real_read, real_sleep = process.os.read, process.time.sleep

    def counting_read(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        reads.append(len(data))
        return data

    def counting_sleep(seconds: float) -> None:
        pauses.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(process.os, "read", counting_read)
    monkeypatch.setattr(process.time, "sleep", counting_sleep)
    path = write_workflow(
        """\
        jobs:
          fast:
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script:
              - 'yes "line $(cat "$DATABASE_PASSWORD") end" | head -n 20000'
        """
    )
    result: Any
    result, out, _ = run_inprocess(path, {"DB_PW": VALUE})
    assert result.exit_code == 0
    assert out == (b"line " + REDACTED + b" end\n") * 20000
    big_reads = [n for n in reads if n >= 1024]
    assert len(big_reads) > 100, f"expected many page-sized reads, got {len(big_reads)} of {len(reads)}"
    assert len(pauses) < len(big_reads) // 4, f"{len(pauses)} pauses for {len(big_reads)} large reads"


class _ClosingConsole:
    """A console that accepts ``limit`` bytes, then fails as a closed pipe does."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data = limit, bytearray()

    def write(self, data: bytes) -> int:
        if len(self.data) >= self.limit:
            raise BrokenPipeError(32, "Broken pipe")
        self.data += data
        return len(data)

    def flush(self) -> None:
        return None


def test_a_console_that_goes_away_stops_the_job_and_the_receipt_says_so(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """``loom run wf.yml | head``: once stdout refuses output (EPIPE), the job's process group is
    killed, its secret file removed, later jobs skipped, and the receipt says the output could not
    be written (it used to say the job "could not start"), with the job's exit status."""
    from loom_core.workflow.runner import RunOptions, run_workflow

    path = write_workflow(
        """\
        jobs:
          chatty:
            timeout: 60
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script:
              - 'echo "$DATABASE_PASSWORD" > secret.path'
              - 'echo $$ > shell.pid'
              - 'while true; do echo "value $(cat "$DATABASE_PASSWORD")"; done'
          after:
            needs: [chatty]
            script: ["touch after.ran"]
        """
    )
    console, err = _ClosingConsole(64 * 1024), _ClosingConsole(1 << 20)
    from .conftest import clean_env

    result = run_workflow(
        RunOptions(
            workflow=path,
            environ=clean_env({"DB_PW": VALUE}),
            config=LoomConfig(),
            stdout=console,  # type: ignore[arg-type]
            stderr=err,  # type: ignore[arg-type]
            receipt=tmp_path / "receipt.json",
            handle_signals=False,
        )
    )
    assert result.exit_code == 1
    chatty, after = result.receipt.jobs
    assert chatty.status == "error" and after.status == "skipped"
    assert chatty.error is not None and chatty.error["code"] == "WORKFLOW_JOB_FAILED"
    assert "its stdout could not be written (BrokenPipeError" in chatty.error["message"]
    assert "could not start" not in chatty.error["message"]
    assert chatty.exit_code is not None and chatty.exit_code != 0, "the job was killed, not left running"
    assert not (tmp_path / "after.ran").exists()
    assert bytes(console.data).startswith(b"value " + REDACTED)
    assert (VALUE.encode() in bytes(console.data) + bytes(err.data)) is False
    assert "[REDACTED:SECRET_DATABASE_PASSWORD]" in chatty.stdout["tail"]
    assert not Path((tmp_path / "secret.path").read_text().strip()).exists()
    shell = int((tmp_path / "shell.pid").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{shell}").exists() or "Z" in Path(f"/proc/{shell}/stat").read_text().split()[2]


def test_failure_skips_dependents_and_removes_files(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """A failing job's files are removed, its dependents skipped, independents still run, exit 1."""
    path = write_workflow(
        """\
        jobs:
          build:
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script: ['echo "$DATABASE_PASSWORD" > secret.path', 'exit 7']
          deploy: {needs: [build], script: ["touch deploy.marker"]}
          docs: {script: ["touch docs.marker"]}
        """
    )
    result: Any
    result, _, _ = run_inprocess(path, {"DB_PW": VALUE})
    assert result.exit_code == 1
    statuses = {j.name: (j.status, j.exit_code) for j in result.receipt.jobs}
    assert statuses == {"build": ("failed", 7), "deploy": ("skipped", None), "docs": ("success", 0)}
    assert not (tmp_path / "deploy.marker").exists() and (tmp_path / "docs.marker").exists()
    assert not Path((tmp_path / "secret.path").read_text().strip()).exists()


def test_timeout_kills_process_group_and_removes_files(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """`timeout` kills the job's whole process group (a background child too) and removes files."""
    path = write_workflow(
        """\
        jobs:
          slow:
            timeout: 1
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script:
              - 'echo "$DATABASE_PASSWORD" > secret.path'
              - 'sleep 60 & echo $! > child.pid'
              - 'sleep 60'
        """
    )
    result: Any
    result, _, _ = run_inprocess(path, {"DB_PW": VALUE})
    job = result.receipt.jobs[0]
    assert result.exit_code == 1 and job.status == "timed_out"
    assert not Path((tmp_path / "secret.path").read_text().strip()).exists()
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_missing_env_var_fails_before_job_starts(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """env provider, variable unset: SECRETS_NOT_FOUND naming the reference; the job never ran."""
    path = write_workflow(
        """\
        jobs:
          first: {script: ["touch first.marker"]}
          deploy:
            needs: [first]
            secrets: {DATABASE_PASSWORD: {ref: "env://NOT_SET_ANYWHERE"}}
            script: ["touch deploy.marker"]
          later: {needs: [deploy], script: ["touch later.marker"]}
        """
    )
    result: Any
    result, _, _ = run_inprocess(path, {})
    assert result.error is not None and result.error.code == ErrorCode.SECRETS_NOT_FOUND
    assert "env://NOT_SET_ANYWHERE" in result.error.message and "'deploy'" in result.error.message
    assert (tmp_path / "first.marker").exists()
    assert not (tmp_path / "deploy.marker").exists() and not (tmp_path / "later.marker").exists()
    statuses = {j.name: j.status for j in result.receipt.jobs}
    assert statuses == {"first": "success", "deploy": "error", "later": "skipped"}
    assert result.receipt.status == "error" and result.receipt.error["code"] == "SECRETS_NOT_FOUND"


def test_cli_missing_var_and_unknown_scheme(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """The CLI prints the SECRETS_* code; an unknown scheme is SECRETS_PROVIDER_UNAVAILABLE, nothing runs."""
    write_workflow(
        """\
        jobs:
          a: {secrets: {S: {ref: "env://NOT_SET_ANYWHERE"}}, script: ["touch a.marker"]}
        """
    )
    proc = run_loom(["run", "workflow.yml", "--receipt", "r.json"], cwd=tmp_path)
    assert proc.returncode == 1 and b"error[SECRETS_NOT_FOUND]" in proc.stderr
    assert not (tmp_path / "a.marker").exists() and (tmp_path / "r.json").exists()
    write_workflow("jobs:\n  a: {secrets: {S: {ref: 'vault://kv/x'}}, script: ['touch a.marker']}\n")
    proc = run_loom(["run", "workflow.yml"], cwd=tmp_path)
    assert proc.returncode == 1 and b"error[SECRETS_PROVIDER_UNAVAILABLE]" in proc.stderr
    assert not (tmp_path / "a.marker").exists()


def test_short_and_blank_values_are_refused(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """Values shorter than secrets.min_length, or blank, fail with SECRETS_VALUE_UNSAFE before the job."""
    path = write_workflow("jobs:\n  a: {secrets: {S: {ref: 'env://V'}}, script: ['touch a.marker']}\n")
    for value in ("short", "        "):
        result: Any
        result, _, _ = run_inprocess(path, {"V": value})
        assert result.error.code == ErrorCode.SECRETS_VALUE_UNSAFE
        assert not (tmp_path / "a.marker").exists()
    config = LoomConfig.model_validate({"secrets": {"min_length": 12}})
    result, _, _ = run_inprocess(path, {"V": "eleven-byte"}, config=config)  # fine by default, not here
    assert result.error.code == ErrorCode.SECRETS_VALUE_UNSAFE
    result, _, _ = run_inprocess(path, {"V": "twelve-bytes"}, config=config)
    assert result.exit_code == 0 and (tmp_path / "a.marker").exists()


def test_values_larger_than_max_length_are_refused_before_the_job(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A 10 MB value took 43 s and 2.6 GB building its redactor; values over secrets.max_length
    (default 256 KiB) are SECRETS_VALUE_UNSAFE naming the setting, and a raised limit lets them in."""
    path = write_workflow("jobs:\n  a: {secrets: {S: {ref: 'env://V'}}, script: ['touch a.marker']}\n")
    big = "x" * 300_000
    result: Any
    result, _, _ = run_inprocess(path, {"V": big})
    assert result.error.code == ErrorCode.SECRETS_VALUE_UNSAFE and "secrets.max_length" in result.error.message
    assert not (tmp_path / "a.marker").exists()
    config = LoomConfig.model_validate({"secrets": {"max_length": 400_000}})
    result, _, _ = run_inprocess(path, {"V": big}, config=config)
    assert result.exit_code == 0 and (tmp_path / "a.marker").exists()


def test_job_selection_runs_the_job_and_its_needs(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """--job NAME runs NAME and everything it needs, nothing else."""
    path = write_workflow(
        """\
        jobs:
          a: {script: ["touch a.marker"]}
          b: {needs: [a], script: ["touch b.marker"]}
          c: {needs: [b], script: ["touch c.marker"]}
          other: {script: ["touch other.marker"]}
        """
    )
    result: Any
    result, _, _ = run_inprocess(path, {}, job="b")
    assert result.exit_code == 0
    assert [j.name for j in result.receipt.jobs] == ["a", "b"]
    assert {p.name for p in tmp_path.glob("*.marker")} == {"a.marker", "b.marker"}
    with pytest.raises(LoomError) as info:
        run_inprocess(path, {}, job="nope")
    assert info.value.code == ErrorCode.WORKFLOW_NOT_FOUND


def test_receipt_keeps_a_bounded_tail(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """A job printing 300 kB leaves a 64 KiB tail, the full byte count and truncated=true."""
    path = write_workflow("jobs:\n  big: {script: ['head -c 300000 /dev/zero | tr \"\\\\0\" x']}\n")
    result: Any
    result, out, _ = run_inprocess(path, {})
    assert result.exit_code == 0 and len(out) == 300000
    stdout = json.loads((tmp_path / "receipt.json").read_text())["jobs"][0]["stdout"]
    assert stdout["bytes"] == 300000 and stdout["truncated"] is True
    assert len(stdout["tail"]) == 64 * 1024


def test_file_first_value_absent_from_child_argv_and_environ(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """While the job runs, /proc/<pid>/environ and cmdline hold the path, never the value,
    and the env:// source variable itself is not inherited."""
    path = write_workflow(
        """\
        jobs:
          peek:
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script: ['echo $$ > job.pid', 'while [ ! -e release ]; do sleep 0.05; done']
        """
    )
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(r=run_inprocess(path, {"DB_PW": VALUE})))
    thread.start()
    try:
        _wait_for(tmp_path / "job.pid")
        pid = int((tmp_path / "job.pid").read_text())
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        (tmp_path / "release").touch()
        thread.join(30)
    assert (VALUE.encode() in environ) is False, "value in child's environ"
    assert (VALUE.encode() in cmdline) is False, "value in child's argv"
    entries = dict(e.split(b"=", 1) for e in environ.split(b"\0") if b"=" in e)
    assert b"DB_PW" not in entries
    assert Path(entries[b"DATABASE_PASSWORD"].decode()).name == "DATABASE_PASSWORD"
    assert box["r"][0].exit_code == 0


def test_job_name_not_found(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """--job with an unknown name is WORKFLOW_NOT_FOUND."""
    write_workflow("jobs:\n  a: {script: ['true']}\n")
    proc = run_loom(["run", "workflow.yml", "--job", "nope"], cwd=tmp_path)
    assert proc.returncode == 1 and b"error[WORKFLOW_NOT_FOUND]" in proc.stderr


def test_default_receipt_location_printed(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """Without --receipt the receipt goes to .loom/runs/<run-id>.json and its path is printed."""
    write_workflow("jobs:\n  a: {script: ['echo hi']}\n")
    proc = run_loom(["run", "workflow.yml"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [receipt] = list((tmp_path / ".loom" / "runs").glob("*.json"))
    assert f"receipt: {receipt}".encode() in proc.stderr
    assert json.loads(receipt.read_text())["run_id"] == receipt.stem
    assert proc.stdout == b"hi\n"


def test_background_child_holding_pipes_is_killed_when_job_ends(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A job that exits leaving a background child on its pipes ends; the child is killed."""
    path = write_workflow(
        """\
        jobs:
          a: {script: ['sleep 120 & echo $! > child.pid', 'echo done']}
          b: {needs: [a], script: ['touch b.marker']}
        """
    )
    result: Any
    result, out, _ = run_inprocess(path, {})
    assert result.exit_code == 0 and out == b"done\n"
    assert (tmp_path / "b.marker").exists()
    child = Path(f"/proc/{int((tmp_path / 'child.pid').read_text())}/stat")
    time.sleep(0.1)
    assert not child.exists() or child.read_text().split()[2] == "Z"


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


def test_a_chatty_background_child_does_not_keep_the_job_alive(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """The main shell exits at once while a background loop keeps printing: the job still ends
    (after the grace period) with the shell's status, and the loop is killed. Before, any child
    writing more often than the poll interval kept the job running until the timeout."""
    path = write_workflow(
        """\
        jobs:
          a:
            timeout: 60
            script:
              - '(while true; do echo tick; sleep 0.05; done) & echo $! > child.pid'
              - 'echo main-done'
          b: {needs: [a], script: ['touch b.marker']}
        """
    )
    result: Any
    result, out, _ = run_inprocess(path, {})
    job = result.receipt.jobs[0]
    assert job.status == "success" and job.exit_code == 0, job
    assert out.startswith(b"main-done\n") or b"main-done\n" in out
    assert (tmp_path / "b.marker").exists()
    time.sleep(0.1)
    assert _gone(int((tmp_path / "child.pid").read_text()))


def test_a_job_that_closes_its_output_still_times_out(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """``exec > build.log 2>&1`` closes the job's pipes while it keeps running: the timeout
    still applies (it used to be ignored, the job ran to its end and counted as a success),
    the group is killed and the secret file removed."""
    path = write_workflow(
        """\
        jobs:
          quiet:
            timeout: 1
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script:
              - 'echo "$DATABASE_PASSWORD" > secret.path'
              - 'echo $$ > shell.pid'
              - 'exec > build.log 2>&1'
              - 'sleep 60'
              - 'touch finished.marker'
        """
    )
    result: Any
    result, _, _ = run_inprocess(path, {"DB_PW": VALUE})
    job = result.receipt.jobs[0]
    assert job.status == "timed_out" and result.exit_code == 1, job
    assert not (tmp_path / "finished.marker").exists()
    assert not Path((tmp_path / "secret.path").read_text().strip()).exists()
    time.sleep(0.1)
    assert _gone(int((tmp_path / "shell.pid").read_text()))


@pytest.mark.parametrize("where", ["parent-is-a-file", "is-a-directory"])
def test_an_unwritable_receipt_path_is_refused_before_any_job_runs(
    tmp_path: Path, write_workflow: Callable[..., Path], where: str
) -> None:
    """The receipt is written first (status ``running``): a path that cannot take it fails with
    WORKFLOW_RECEIPT_UNWRITABLE while nothing has run. Before, the jobs ran and the record was
    lost to a traceback at the end."""
    path = write_workflow("jobs:\n  a: {script: ['touch ran.marker']}\n")
    (tmp_path / "adir").mkdir()
    receipt = tmp_path / "workflow.yml" / "r.json" if where == "parent-is-a-file" else tmp_path / "adir"
    result: Any
    result, _, _ = run_inprocess(path, {}, receipt=receipt)
    assert result.exit_code == 1
    assert result.error is not None and result.error.code == ErrorCode.WORKFLOW_RECEIPT_UNWRITABLE
    assert "nothing ran" in result.error.message and "--receipt" in result.error.message
    assert not (tmp_path / "ran.marker").exists()


def test_the_receipt_exists_while_the_run_is_going(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """A run that is killed outright still leaves a receipt: written with status ``running`` and
    every job ``pending`` before the first job starts, then rewritten at the end."""
    path = write_workflow("jobs:\n  a: {script: ['cat receipt.json > seen.json']}\n")
    result: Any
    result, _, _ = run_inprocess(path, {})
    assert result.exit_code == 0
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["status"] == "running" and [j["status"] for j in seen["jobs"]] == ["pending"]
    assert json.loads((tmp_path / "receipt.json").read_text())["status"] == "success"


def test_a_workflow_path_that_is_not_utf8_still_gets_its_receipt(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A file name with a byte that is not UTF-8 is recorded escaped instead of failing the
    receipt after the jobs ran."""
    source = write_workflow("jobs:\n  a: {script: ['true']}\n")
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/wf-\xff.yml"))
    source.rename(odd)
    result: Any
    result, _, _ = run_inprocess(odd, {}, receipt=tmp_path / "r.json")
    assert result.exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["workflow"].endswith("wf-\\xff.yml")


def test_loom_run_with_its_stdout_closed_runs_and_records(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """``loom run wf.yml >&-`` (no stdout at all): the job runs, its redacted output goes to the
    receipt, and the run succeeds. It used to crash on ``sys.stdout.buffer`` before any job."""
    import subprocess

    from .conftest import LOOM, clean_env

    write_workflow(
        """\
        jobs:
          a:
            secrets: {DATABASE_PASSWORD: {ref: "env://DB_PW"}}
            script: ['echo "hello $(cat "$DATABASE_PASSWORD")"']
        """
    )
    proc = subprocess.run(
        [*LOOM, "run", "workflow.yml", "--receipt", "r.json"],
        cwd=tmp_path,
        env=clean_env({"DB_PW": VALUE}),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),  # the child starts without a stdout
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["status"] == "success"
    assert receipt["jobs"][0]["stdout"]["tail"] == "hello [REDACTED:SECRET_DATABASE_PASSWORD]\n"


def test_a_job_that_cannot_start_fails_alone_and_says_what_is_missing(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A job whose PATH hides bash cannot start: it is an ``error`` naming the program and the
    PATH, its dependents are skipped, and a job that does not need it still runs (it used to
    abort the whole run with a bare FileNotFoundError)."""
    path = write_workflow(
        """\
        jobs:
          broken: {variables: {PATH: ./nowhere}, script: ['true']}
          after_broken: {needs: [broken], script: ['touch after.marker']}
          independent: {script: ['touch independent.marker']}
        """
    )
    result: Any
    result, _, err = run_inprocess(path, {})
    statuses = {j.name: j.status for j in result.receipt.jobs}
    assert statuses == {"broken": "error", "after_broken": "skipped", "independent": "success"}
    broken = result.receipt.jobs[0]
    assert broken.error is not None and broken.error["code"] == "WORKFLOW_JOB_FAILED"
    assert "could not start 'bash'" in broken.error["message"] and "PATH" in broken.error["message"]
    assert b"could not start 'bash'" in err
    assert result.exit_code == 1 and result.receipt.status == "failed"
    assert (tmp_path / "independent.marker").exists() and not (tmp_path / "after.marker").exists()


def test_a_job_killed_by_a_signal_says_so(tmp_path: Path, write_workflow: Callable[..., Path]) -> None:
    """``kill -9 $$`` inside the job: status failed, exit code -9 and a reason naming SIGKILL."""
    path = write_workflow("jobs:\n  a: {script: ['kill -9 $$']}\n")
    result: Any
    result, _, _ = run_inprocess(path, {})
    job = result.receipt.jobs[0]
    assert (job.status, job.exit_code, job.reason) == ("failed", -9, "killed by signal 9 (SIGKILL)")


def _wait_gone(pid: int, seconds: float = 15.0) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``seconds``: a bound, not a timing claim."""
    end = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_a_background_process_that_redirected_its_output_is_killed_after_the_job(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """A leftover that holds none of the job's pipes (``cmd >/dev/null 2>&1 &``) used to outlive
    `loom run`, its environment holding a ``file: false`` value. It gets the grace, then the
    job's process group is killed; the job's status is its main process's."""
    path = write_workflow(
        """\
        jobs:
          a:
            secrets: {API_TOKEN: {ref: "env://API_TOKEN", file: false}}
            script:
              - 'bash -c "sleep 25" >/dev/null 2>&1 </dev/null & echo $! > child.pid'
              - 'echo main-done'
          b: {needs: [a], script: ['touch b.marker']}
        """
    )
    result: Any
    result, out, _ = run_inprocess(path, {"API_TOKEN": TOKEN_VALUE})
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert result.exit_code == 0 and out == b"main-done\n"
        assert [j.status for j in result.receipt.jobs] == ["success", "success"]
        assert _wait_gone(child), "the job's background process outlived the run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_a_timed_out_job_leaves_no_process_that_ignores_sigterm(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """On timeout the group gets SIGTERM, and SIGKILL for whatever is still there afterwards: a
    background process ignoring SIGTERM no longer survives because the main shell died first."""
    path = write_workflow(
        """\
        jobs:
          slow:
            timeout: 1
            secrets: {API_TOKEN: {ref: "env://API_TOKEN", file: false}}
            script:
              - '(trap "" TERM; exec sleep 30) >/dev/null 2>&1 </dev/null & echo $! > child.pid'
              - 'sleep 60'
        """
    )
    result: Any
    result, _, _ = run_inprocess(path, {"API_TOKEN": TOKEN_VALUE})
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert result.receipt.jobs[0].status == "timed_out"
        assert _wait_gone(child), "a SIGTERM-proof background process outlived the timed-out job"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_a_run_failed_by_its_jobs_records_the_error_the_cli_prints(
    tmp_path: Path, write_workflow: Callable[..., Path]
) -> None:
    """The CLI said `error[WORKFLOW_JOB_FAILED]: ...` while the receipt's top-level `error` was
    null: the receipt now holds that same error."""
    write_workflow(
        """\
        jobs:
          a: {script: ['exit 3']}
          b: {needs: [a], script: ['true']}
          c: {script: ['true']}
        """
    )
    proc = run_loom(["run", "workflow.yml", "--receipt", "r.json"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["status"] == "failed"
    message = "jobs did not succeed: a (failed), b (skipped)"
    assert receipt["error"] == {"code": "WORKFLOW_JOB_FAILED", "message": message}
    assert f"error[WORKFLOW_JOB_FAILED]: {message}".encode() in proc.stderr
