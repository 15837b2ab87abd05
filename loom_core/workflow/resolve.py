"""Resolve one job's secret references, just before the job starts.

Every failure is a ``LoomError`` with a ``SECRETS_*`` code whose message names
the job, the secret and the reference, never a value; messages also pass
through the redactor of whatever the job already resolved.
"""

from __future__ import annotations

from collections.abc import Callable

from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError, raised_at
from loom_core.secrets.forms import value_problem
from loom_core.secrets.providers import ProviderPool
from loom_core.workflow.graph import Job, SecretSpec
from loom_core.workflow.refs import check_syntax

Scrub = Callable[[str], str]


def _fail(job: Job, spec: SecretSpec, code: ErrorCode, reason: str) -> LoomError:
    return LoomError(
        code,
        f"job {job.name!r}: secret {spec.name} ({spec.ref}): {reason}",
        details={"job": job.name, "secret": spec.name, "ref": spec.ref},
    )


def check_value(job: Job, spec: SecretSpec, value: SecretValue, min_length: int, max_length: int) -> None:
    """Refuse blank or short values (redaction could not mask them safely) and values too large
    to redact at a reasonable cost."""
    if len(value) > max_length:
        raise _fail(
            job,
            spec,
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"the resolved value is {len(value)} bytes, more than secrets.max_length ({max_length}); "
            "redacting it would cost seconds of CPU and hundreds of MB per MiB: raise the limit if it "
            "is really meant to be injected",
        )
    problem = value_problem(value.reveal(), min_length)
    if problem == "blank":
        raise _fail(job, spec, ErrorCode.SECRETS_VALUE_UNSAFE, "the resolved value is blank")
    if problem == "short":
        raise _fail(
            job,
            spec,
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"the resolved value is shorter than secrets.min_length ({min_length} bytes, surrounding "
            "whitespace not counted); "
            "short values cannot be redacted without destroying ordinary output",
        )


def resolve_job(
    job: Job,
    pool: ProviderPool,
    *,
    min_length: int,
    max_length: int,
    scrub_with: Callable[[dict[str, SecretValue]], Scrub],
) -> dict[str, SecretValue]:
    """Resolve every secret of ``job`` or raise the first failure (nothing is returned partly)."""
    values: dict[str, SecretValue] = {}
    for spec in job.secrets.values():
        try:
            ref = check_syntax(spec.ref)
            provider = pool.get(ref.scheme)
            provider.validate(ref)
            value = provider.resolve(ref)
            if not isinstance(value, SecretValue):
                raise _fail(
                    job, spec, ErrorCode.SECRETS_PROVIDER_FAILED, "the provider returned no SecretValue"
                )
            check_value(job, spec, value, min_length, max_length)
        except LoomError as exc:
            scrub = scrub_with(values)
            code = exc.code if exc.code.value.startswith("SECRETS_") else ErrorCode.SECRETS_PROVIDER_FAILED
            prefix = f"job {job.name!r}: secret {spec.name} ({spec.ref}): "
            # providers start their messages with the reference, which the prefix already names
            own = exc.message.removeprefix(f"{spec.ref}: ").removeprefix(f"{spec.ref!r}: ")
            message = exc.message if exc.message.startswith(prefix) else prefix + own
            raise LoomError(
                code,
                scrub(message),
                details={"job": job.name, "secret": spec.name, "ref": spec.ref},
            ) from None
        except Exception as exc:
            raise _fail(
                job, spec, ErrorCode.SECRETS_PROVIDER_FAILED, f"provider raised {type(exc).__name__}{raised_at(exc)}"
            ) from None
        values[spec.name] = value
    return values
