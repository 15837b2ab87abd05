"""``loom run``: jobs in dependency order, secrets resolved per job, output redacted, a receipt.

Order of a run, each step failing closed before the next:
load + check -> debug-trace guard -> Docker engine (if a job has ``image``)
-> ``loom_startup`` -> per job: resolve -> files -> process -> cleanup
-> ``loom_shutdown`` -> receipt. A resolution failure aborts the run before
that job starts; a failed job skips its dependents and the run goes on with
the jobs that do not need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.secrets.bounded import CallInterrupted, CallTimedOut, call_bounded
from loom_core.secrets.providers import CLOSE_GRACE_SECONDS, ProviderPool
from loom_core.workflow import docker as docker_mod
from loom_core.workflow.check import load_workflow
from loom_core.workflow.graph import Job, Workflow
from loom_core.workflow.guard import check_debug_trace, trace_sources
from loom_core.workflow.inject import SecretFiles, job_environment, scrubbed_environ, sweep_stale_dirs
from loom_core.workflow.process import SignalWatch, run_streaming
from loom_core.workflow.receipt import JobRecord, Receipt, ReceiptPathRefused, Tail, utc_now, write_receipt
from loom_core.workflow.redact import make_redactor, scrubber, stream_filter
from loom_core.workflow.resolve import resolve_job

EXIT_SIGNAL_BASE = 128  # a run stopped by signal N exits 128 + N, as shells report it


@dataclass
class RunOptions:
    """Everything a run needs; the CLI fills it from arguments, tests directly."""

    workflow: Path
    job: str | None = None
    receipt: Path | None = None
    environ: Mapping[str, str] | None = None
    host: PluginHost | None = None
    config: Any = None
    stdout: BinaryIO | None = None
    stderr: BinaryIO | None = None
    docker: str = "docker"
    secrets_dir: str | None = None
    handle_signals: bool = True


@dataclass
class RunResult:
    """The finished receipt, where it was written, and the exit status for the CLI."""

    receipt: Receipt
    receipt_path: Path
    exit_code: int
    error: LoomError | None = None
    messages: list[str] = field(default_factory=list)


def script_text(job: Job, trace: bool) -> str:
    """The whole script under ``set -e`` (and ``set -x`` when debug tracing is on)."""
    head = "set -e\n" + ("set -x\n" if trace else "")
    return head + "\n".join(job.script) + "\n"


def _new_run_id() -> str:
    from ulid import ULID

    return str(ULID())


def _default_config(environ: Mapping[str, str]) -> Any:
    from loom_core.config import load_config

    return load_config(None, environ)


def _console(stream: Any) -> BinaryIO:
    """The binary side of ``sys.stdout``/``sys.stderr``; a discarding sink when it was closed
    at start-up (``loom run wf.yml >&-``: Python then sets it to None). The receipt keeps
    each job's output either way."""
    if stream is None or not hasattr(stream, "buffer"):
        return open(os.devnull, "wb")  # lives as long as the run
    buffer: BinaryIO = stream.buffer
    return buffer


def _display_path(path: Path) -> str:
    """``path`` as text that always encodes: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class Run:
    """One ``loom run`` in progress."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.environ: dict[str, str] = dict(os.environ if opts.environ is None else opts.environ)
        self.config = opts.config if opts.config is not None else _default_config(self.environ)
        self.min_length = int(self.config.secrets.min_length)
        self.max_length = int(self.config.secrets.max_length)
        self.resolve_timeout = float(self.config.secrets.resolve_timeout_seconds)
        self.abandoned = False  # a provider call was given up on (timed out or interrupted)
        self.host = opts.host or PluginHost.for_config(self.config, self.environ)
        self.out: BinaryIO = opts.stdout if opts.stdout is not None else _console(sys.stdout)
        self.err: BinaryIO = opts.stderr if opts.stderr is not None else _console(sys.stderr)
        self.pool = ProviderPool(self.host, self.environ, self.config.secrets.providers)
        self.run_id = _new_run_id()
        self.watch: SignalWatch | None = None
        self.workdir = opts.workflow.resolve().parent
        self.env_sources: list[str] = []  # every env:// source of the workflow: no job inherits one

    # -- console ----------------------------------------------------------
    def say(self, text: str, redactor: Any = None) -> None:
        """A Loom lifecycle message on stderr, through the current job's redactor.

        A closed or full stderr loses the message, not the run's bookkeeping: the
        receipt is the record, and cleanup must still happen.
        """
        with contextlib.suppress(OSError):
            self.err.write(("loom: " + scrubber(redactor)(text) + "\n").encode("utf-8", "replace"))
            self.err.flush()

    # -- the run ------------------------------------------------------------
    def execute(self) -> RunResult:
        try:
            stale = sweep_stale_dirs(self.opts.secrets_dir)
        except Exception as exc:  # housekeeping; this run's own files do not depend on it
            stale = []
            self.say(f"could not look for secrets directories left by killed runs: {type(exc).__name__}")
        if stale:
            self.say(f"removed {len(stale)} secrets director{'y' if len(stale) == 1 else 'ies'} left by "
                     "runs that were killed: " + ", ".join(p.name for p in stale))
        workflow = load_workflow(self.opts.workflow, self.pool)
        order = workflow.closure(self.opts.job) if self.opts.job else workflow.order()
        every_secret = [s for job in workflow.jobs.values() for s in job.secrets.values()]
        self.env_sources = sorted({s.ref.split("://", 1)[1] for s in every_secret if s.scheme == "env"})
        digest = hashlib.sha256(self.opts.workflow.read_bytes()).hexdigest()
        receipt = Receipt(
            run_id=self.run_id,
            workflow=_display_path(self.opts.workflow),
            workflow_sha256=digest,
            selected_job=self.opts.job,
        )
        records = {name: self._record(workflow.jobs[name]) for name in order}
        receipt.jobs = list(records.values())
        path = self.opts.receipt or Path.cwd() / ".loom" / "runs" / f"{self.run_id}.json"
        result = RunResult(receipt, path, 0)
        # Written first (status running): an unwritable path is refused while nothing has run, and a
        # run killed outright still leaves a record of what it was.
        failure = _write_receipt(receipt, path, "before the first job; nothing ran", interim=True)
        if failure is not None:
            receipt.status, result.error, result.exit_code = "error", failure, 1
            return result
        started = False
        if self.opts.handle_signals and threading.current_thread() is threading.main_thread():
            self.watch = SignalWatch()
            self.watch.install()
        try:
            check_debug_trace(workflow, order, self.environ)
            if any(workflow.jobs[name].image for name in order):
                # what `docker run` gets: no vault credential, no env:// source reaches `docker info`
                engine_env = scrubbed_environ(self.environ, {}, self.env_sources, self.pool.protected())
                docker_mod.require_engine(engine_env, self.opts.docker)
            self.host.hook.loom_startup(component="workflow", config=self.config)
            started = True
            trace = bool(trace_sources(workflow, order, self.environ))
            self._run_jobs(workflow, order, records, trace)
        except LoomError as exc:
            result.error = exc
            receipt.error = {"code": exc.code.value, "message": exc.message}
            for record in records.values():
                if record.status == "pending":
                    record.status, record.reason = "skipped", f"run aborted: {exc.code.value}"
        finally:
            if started:
                try:
                    self.host.hook.loom_shutdown(component="workflow")
                except Exception as exc:  # shutdown problems must not hide the run's outcome
                    self.say(f"loom_shutdown failed: {type(exc).__name__}")
            # No value of the run is held any more to mask these with: they carry codes, not texts.
            for message in self.pool.close(grace=CLOSE_GRACE_SECONDS if self.abandoned else None):
                self.say(message)
            if self.watch is not None:
                self.watch.uninstall()
            receipt.finished_at = utc_now()
            receipt.status = self._status(receipt, result)
            if receipt.status == "failed" and receipt.error is None:  # what the CLI reports, recorded
                failed = jobs_failed(receipt)
                receipt.error = {"code": failed.code.value, "message": failed.message}
            failure = _write_receipt(receipt, path, "at the end of the run; the jobs' outcome is above")
            self.say(failure.message if failure is not None else f"receipt: {_display_path(path)}")
            result.error = result.error or failure
        result.exit_code = self._exit_code(receipt, result)
        return result

    def _record(self, job: Job) -> JobRecord:
        return JobRecord(
            name=job.name,
            image=job.image,
            command="docker" if job.image else "local",
            secrets=[{"name": s.name, "ref": s.ref, "scheme": s.scheme, "file": s.file} for s in job.secrets.values()],
        )

    def _interrupted(self) -> int | None:
        return self.watch.received if self.watch is not None else None

    def _run_jobs(self, workflow: Workflow, order: list[str], records: dict[str, JobRecord], trace: bool) -> None:
        for index, name in enumerate(order, 1):
            job, record = workflow.jobs[name], records[name]
            if self._interrupted() is not None:
                record.status, record.reason = "skipped", "run interrupted"
                continue
            blocked = [n for n in job.needs if records[n].status != "success"]
            if blocked:
                record.status = "skipped"
                record.reason = "needs did not succeed: " + ", ".join(blocked)
                self.say(f"job {name}: skipped ({record.reason})")
                continue
            self.say(f"job {name} ({index}/{len(order)}): starting")
            self._run_job(workflow, job, record, trace)

    def _run_job(self, workflow: Workflow, job: Job, record: JobRecord, trace: bool) -> None:
        def scrub_for(values: dict[str, SecretValue]) -> Any:
            # a provider error may quote a value this job resolved before the failing one
            return scrubber(make_redactor(values, self.host.hook, self.min_length) if values else None)

        try:
            values = call_bounded(
                lambda: resolve_job(
                    job, self.pool, min_length=self.min_length, max_length=self.max_length, scrub_with=scrub_for
                ),
                timeout=self.resolve_timeout,
                interrupted=self._interrupted,
            )
            redactor = make_redactor(values, self.host.hook, self.min_length)
        except CallInterrupted as stop:
            self.abandoned = True
            record.status = "interrupted"
            record.reason = f"loom run received signal {stop.signal} while this job's secrets were resolved"
            return
        except CallTimedOut:
            self.abandoned = True
            record.status = "error"
            failure = LoomError(
                ErrorCode.SECRETS_PROVIDER_FAILED,
                f"job {job.name!r}: its secrets were not resolved within {self.resolve_timeout:g} s "
                "(secrets.resolve_timeout_seconds): a provider is not answering; check that its vault is "
                "reachable, or raise the limit",
                details={"job": job.name, "refs": [s.ref for s in job.secrets.values()]},
            )
            record.error = {"code": failure.code.value, "message": failure.message}
            raise failure from None
        except KeyboardInterrupt:  # no signal watch (not the main thread): the call is left running
            self.abandoned = True
            raise
        except LoomError as exc:
            record.status = "error"
            record.error = {"code": exc.code.value, "message": exc.message}
            signal = self._interrupted()
            if signal is not None:  # a provider stopped by the signal (its child killed): the signal is the cause
                record.status, record.reason = "interrupted", f"loom run received signal {signal}"
            raise
        signal = self._interrupted()
        if signal is not None:  # arrived while the last value was being resolved: write no file
            record.status, record.reason = "interrupted", f"loom run received signal {signal}"
            return
        if values:
            self.say(
                f"job {job.name}: resolved {len(values)} secret(s): "
                + ", ".join(f"{s.name} ({s.ref}, {'file' if s.file else 'env'})" for s in job.secrets.values()),
                redactor,
            )
        base = scrubbed_environ(self.environ, values, self.env_sources, self.pool.protected())
        tails = (Tail(), Tail())
        filters = (stream_filter(redactor), stream_filter(redactor))
        record.started_at = utc_now()
        clock = time.monotonic()
        program: str | None = None
        try:
            with SecretFiles(job, values, self.opts.secrets_dir) as files:
                argv, env, on_kill = self._command(workflow, job, base, values, files, trace)
                program = argv[0]
                outcome = run_streaming(
                    argv,
                    env=env,
                    cwd=self.workdir,
                    timeout=job.timeout,
                    sinks=(self.out, self.err),
                    filters=filters,
                    tails=tails,
                    watch=self.watch,
                    on_kill=on_kill,
                    pass_fds=() if files.lock_fd is None else (files.lock_fd,),
                )
        except LoomError as exc:
            record.status = "error"
            record.error = {"code": exc.code.value, "message": scrubber(redactor)(exc.message)}
            raise
        except OSError as exc:
            # This job's own failure (its program is missing from the PATH it set, its secret files
            # cannot be written): its dependents are skipped, jobs that do not need it still run.
            record.status = "error"
            message = f"job {job.name!r} could not start" + (f" {program!r}" if program else "")
            message += f": {type(exc).__name__}: {exc.strerror or exc}"
            if isinstance(exc, FileNotFoundError) and program:
                message += " (is it on the PATH the job runs with?)"
            record.error = {"code": ErrorCode.WORKFLOW_JOB_FAILED.value, "message": scrubber(redactor)(message)}
            self.say(record.error["message"])
            return
        finally:
            record.finished_at = utc_now()
            record.duration_seconds = round(time.monotonic() - clock, 3)
            record.stdout, record.stderr = tails[0].to_dict(), tails[1].to_dict()
        record.exit_code = outcome.returncode
        if outcome.how == "output_failed":
            stream = "stdout" if outcome.failed_stream == 0 else "stderr"
            record.status = "error"
            message = (
                f"job {job.name!r} was stopped: its {stream} could not be written ({outcome.error}); "
                "whatever reads loom's output closed it or its disk is full. The job's process group was "
                "killed; its output so far is in the receipt"
            )
            record.error = {"code": ErrorCode.WORKFLOW_JOB_FAILED.value, "message": scrubber(redactor)(message)}
            raise LoomError(ErrorCode.WORKFLOW_JOB_FAILED, record.error["message"])
        if outcome.how == "timed_out":
            record.status, record.reason = "timed_out", f"exceeded timeout of {job.timeout} s; process group killed"
        elif outcome.how == "interrupted":
            record.status, record.reason = "interrupted", f"loom run received signal {outcome.signal}"
        else:
            record.status = "success" if outcome.returncode == 0 else "failed"
            if outcome.returncode < 0:
                record.reason = f"killed by signal {-outcome.returncode} ({_signal_name(-outcome.returncode)})"
        self.say(f"job {job.name}: {record.status} (exit {outcome.returncode})")

    def _command(
        self,
        workflow: Workflow,
        job: Job,
        base: dict[str, str],
        values: Mapping[str, SecretValue],
        files: SecretFiles,
        trace: bool,
    ) -> tuple[list[str], dict[str, str], Any]:
        script = script_text(job, trace)
        if not job.image:
            paths = {name: str(p) for name, p in files.paths.items()}
            env = job_environment(base, workflow.variables, job, values, paths)
            return ["bash", "-c", script], env, None
        name = docker_mod.container_name(self.run_id, job.name)
        plain = {**workflow.variables, **job.variables}
        argv = docker_mod.docker_argv(
            job,
            script=script,
            workdir=self.workdir,
            variables=plain,
            secret_files=files.paths,
            name=name,
            docker=self.opts.docker,
        )
        # Docker copies `-e NAME` (file: false) values from its own environment.
        direct = Job(name=job.name, script=job.script, secrets={k: s for k, s in job.secrets.items() if not s.file})
        env = job_environment(base, {}, direct, values, {})

        def kill_container() -> None:
            import subprocess

            subprocess.run(
                [self.opts.docker, "kill", name],
                env=base,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )

        return argv, env, kill_container

    # -- outcome --------------------------------------------------------------
    def _status(self, receipt: Receipt, result: RunResult) -> str:
        if self._interrupted() is not None or any(j.status == "interrupted" for j in receipt.jobs):
            return "interrupted"
        if result.error is not None:
            return "error"
        return "success" if all(j.status == "success" for j in receipt.jobs) else "failed"

    def _exit_code(self, receipt: Receipt, result: RunResult) -> int:
        if receipt.status == "interrupted":
            return EXIT_SIGNAL_BASE + (self._interrupted() or 2)  # no signal seen: as for SIGINT
        return 0 if receipt.status == "success" else 1


def jobs_failed(receipt: Receipt) -> LoomError:
    """``WORKFLOW_JOB_FAILED`` naming each job that did not succeed, with its status: the error
    of a run that failed only because jobs did (the receipt's ``error``, the CLI's message)."""
    failed = [f"{j.name} ({j.status})" for j in receipt.jobs if j.status != "success"]
    return LoomError(ErrorCode.WORKFLOW_JOB_FAILED, "jobs did not succeed: " + ", ".join(failed))


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _write_receipt(receipt: Receipt, path: Path, when: str, *, interim: bool = False) -> LoomError | None:
    """Write ``receipt``; the coded error saying why it could not be written (``when`` says at
    which point of the run), or ``None``. ``interim``: see :func:`write_receipt`."""
    try:
        write_receipt(receipt, path, interim=interim)
    except ReceiptPathRefused as exc:
        return LoomError(
            ErrorCode.WORKFLOW_RECEIPT_UNWRITABLE,
            f"cannot write the receipt {_display_path(path)} ({exc}) {when}; pass --receipt a file path",
        )
    except OSError as exc:
        return LoomError(
            ErrorCode.WORKFLOW_RECEIPT_UNWRITABLE,
            f"cannot write the receipt {_display_path(path)} ({type(exc).__name__}: {exc.strerror or exc}) "
            f"{when}; pass --receipt a path in a writable directory",
        )
    return None


def run_workflow(opts: RunOptions) -> RunResult:
    """Run a workflow; see :class:`Run`. Pre-run and resolution failures are in ``result.error``."""
    return Run(opts).execute()
