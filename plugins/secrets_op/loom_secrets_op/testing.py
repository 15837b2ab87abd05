"""A stand-in ``op`` executable for tests: the real CLI's interface over a JSON vault.

It accepts ``op read [--no-newline|-n] [--force] <reference>``, prints the
value (plus a newline unless ``--no-newline``) on stdout and exits 0, or
prints ``[ERROR] YYYY/MM/DD HH:MM:SS <message>`` on stderr and exits 1 with
the wording ``op`` uses for: not signed in (no token), a malformed or
unknown token, a vault or item or field that does not exist, a vault the
token may not read (403), two items with one title, and malformed references. It can also
leave a helper behind that keeps its stdout open, as the real CLI may. Every call appends its
argv, environment and pid to a JSON-lines log so tests can check what the child
was given and whether it is still running. State lives in files whose paths are written into the script,
because the provider deliberately gives the child almost no environment.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

_SCRIPT = r'''#!{python}
import base64, json, os, sys, time

STATE = {state!r}
LOG = {log!r}

def now():
    return time.strftime("%Y/%m/%d %H:%M:%S")

def fail(message, stdout=b""):
    if stdout:
        sys.stdout.buffer.write(stdout)
        sys.stdout.flush()
    sys.stderr.write("[ERROR] " + now() + " " + message + "\n")
    sys.exit(1)

with open(LOG, "a") as log:
    log.write(json.dumps({{"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid()}}) + "\n")
with open(STATE) as fh:
    state = json.load(fh)
if state.get("delay"):
    time.sleep(state["delay"])
if state.get("helper_pid_file"):
    helper = os.fork()
    if helper == 0:  # a helper left behind: it keeps op's stdout and stderr open, and the token
        time.sleep(300)
        os._exit(0)
    with open(state["helper_pid_file"], "w") as fh:
        fh.write(str(helper))

args = sys.argv[1:]
if not args or args[0] != "read":
    fail("unknown command " + repr(args[0] if args else "") + " for \"op\"")
newline = True
refs = []
for arg in args[1:]:
    if arg in ("--no-newline", "-n"):
        newline = False
    elif arg == "--force":
        pass
    elif arg.startswith("-"):
        fail("unknown flag: " + arg)
    else:
        refs.append(arg)
if len(refs) != 1:
    fail("expected exactly 1 argument, a secret reference, got " + str(len(refs)))
ref = refs[0]
prefix = "could not read secret '" + ref + "': "

token = os.environ.get("OP_SERVICE_ACCOUNT_TOKEN")
if not token:
    fail(prefix + "error initializing client: You are not currently signed in. "
         "Please run `op signin --help` for instructions")
grant = state["tokens"].get(token)
if grant is None:
    fail(prefix + "error initializing client: Validation: (failed to session.DecodeSACredentials), "
         "Server: (failed to DecodeSACredentials), illegal base64 data at input byte 12")
if state.get("crash_with_stdout"):
    fail(prefix + "unexpected internal error", stdout=base64.b64decode(state["crash_with_stdout"]))

if not ref.startswith("op://"):
    fail("invalid secret reference " + repr(ref) + ": secret references must start with op://")
path = ref[len("op://"):].split("?", 1)[0]
parts = path.split("/")
if len(parts) > 4:
    fail(prefix + "too many '/': secret references should match op://<vault>/<item>[/<section>]/<field>")
if len(parts) < 3 or not all(parts):
    fail("invalid secret reference " + repr(ref) + ": secret references should match "
         "op://<vault>/<item>[/<section>]/<field>")
vault, item, field = parts[0], parts[1], parts[-1]
section = parts[2] if len(parts) == 4 else None
vaults = state["vaults"]
if vault not in vaults:
    fail(prefix + "could not get item " + vault + "/" + item + ": \"" + vault +
         "\" isn't a vault in this account. Specify the vault with its ID or name.")
if vault not in grant["vaults"]:
    fail(prefix + "(403) Forbidden: You aren't authorized to access this resource.")
items = vaults[vault]
if item not in items:
    fail(prefix + "could not get item " + vault + "/" + item + ": \"" + item + "\" isn't an item in the \""
         + vault + "\" vault. Specify the item with its UUID, name, or domain.")
if item in state.get("duplicates", {{}}).get(vault, {{}}):
    fail(prefix + "could not resolve item UUID for item " + item + ": More than one item matches \"" + item
         + "\". Try again and specify the item by its ID:\n\t* for the item \"" + item + "\" in vault " + vault
         + ": " + state["duplicates"][vault][item][0] + "\n\t* for the item \"" + item + "\" in vault " + vault
         + ": " + state["duplicates"][vault][item][1])
fields = items[item]
key = (section + "/" if section else "") + field
if key not in fields:
    fail(prefix + "item '" + vault + "/" + item + "' does not have a field '" + field + "'")
sys.stdout.buffer.write(base64.b64decode(fields[key]) + (b"\n" if newline else b""))
sys.exit(0)
'''


class FakeOp:
    """The stand-in's files: the executable, its vault state and its call log."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "op"
        self.state_path = directory / "op-state.json"
        self.log_path = directory / "op-calls.jsonl"
        self.state: dict[str, Any] = {"tokens": {}, "vaults": {}}
        self._save()
        self.path.write_text(
            _SCRIPT.format(python=sys.executable, state=str(self.state_path), log=str(self.log_path))
        )
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_path)

    def grant(self, token: str, vaults: list[str]) -> None:
        """Make ``token`` a valid service account token that may read ``vaults``."""
        self.state["tokens"][token] = {"vaults": list(vaults)}
        self._save()

    def put(self, vault: str, item: str, field: str, value: bytes, section: str | None = None) -> str:
        """Store ``value``; returns its ``op://`` reference."""
        key = f"{section}/{field}" if section else field
        self.state["vaults"].setdefault(vault, {}).setdefault(item, {})[key] = base64.b64encode(value).decode()
        self._save()
        return f"op://{vault}/{item}/{key}"

    def put_duplicate(self, vault: str, item: str, field: str, value: bytes) -> str:
        """Store two items titled ``item`` (both with ``value``); ``op`` then refuses the name."""
        ref = self.put(vault, item, field, value)
        ids = [base64.b32encode(os.urandom(15)).decode().lower()[:26] for _ in range(2)]
        self.state.setdefault("duplicates", {}).setdefault(vault, {})[item] = ids
        self._save()
        return ref

    def set_delay(self, seconds: float) -> None:
        self.state["delay"] = seconds
        self._save()

    def leave_helper(self, pid_file: Path) -> None:
        """Make every call fork a long-sleeping child holding op's stdout and stderr, then answer.

        The real CLI can leave such a helper behind; its pid is written to ``pid_file``.
        """
        self.state["helper_pid_file"] = str(pid_file)
        self._save()

    def crash_printing(self, stdout: bytes) -> None:
        """Make every call print ``stdout`` and then fail with an unrecognised error."""
        self.state["crash_with_stdout"] = base64.b64encode(stdout).decode()
        self._save()

    def calls(self) -> list[dict[str, Any]]:
        """Every recorded call: ``{"argv": [...], "env": {...}, "pid": ...}``."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]
