"""A provider's error reaches the user once, prefixed with job, secret and reference (named once)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loom_core.errors import ErrorCode

from .conftest import run_inprocess


def test_the_reference_is_named_once(write_workflow: Callable[..., Path]) -> None:
    path = write_workflow(
        'jobs:\n  deploy:\n    secrets: {PW: {ref: "env://NOT_SET_ANYWHERE"}}\n    script: ["true"]\n'
    )
    result: Any
    result, _, _ = run_inprocess(path, {})
    assert result.error.code == ErrorCode.SECRETS_NOT_FOUND
    message = result.error.message
    assert message.startswith("job 'deploy': secret PW (env://NOT_SET_ANYWHERE): environment variable")
    assert message.count("env://NOT_SET_ANYWHERE") == 1
