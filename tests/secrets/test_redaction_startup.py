"""A job printing little output never pays for importing numpy (a fifth of `loom run`'s start-up)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from loom_core.contracts.secrets import SecretValue
from loom_core.secrets import redaction_matcher
from loom_core.secrets.redaction import Redactor

value = b"startup-probe-value-41c9"
redactor = Redactor({"TOKEN": SecretValue(value)})
stream = redactor.stream()
small = stream.feed(b"log line " * 1000 + value + b" done") + stream.finish()
assert value not in small and b"[REDACTED:SECRET_TOKEN]" in small
print("small", "numpy" in sys.modules)
chunk = b"z" * (256 * 1024)
out = b"".join(stream.feed(chunk + value) for _ in range(redaction_matcher.LAZY_BYTES // len(chunk) + 2))
out += stream.finish()
assert value not in out and out.count(b"[REDACTED:SECRET_TOKEN]") == redaction_matcher.LAZY_BYTES // len(chunk) + 2
print("large", "numpy" in sys.modules)
"""


def test_numpy_is_imported_only_once_output_passes_lazy_bytes() -> None:
    """In a fresh interpreter: redacting a few KiB leaves numpy unimported; past LAZY_BYTES the
    prefilter (and numpy) is loaded, and redaction is complete on both sides of the switch."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.split(b"\n")[:2] == [b"small False", b"large True"]
