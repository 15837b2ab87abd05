"""The ``loom`` command line: help, version, error format, lazy start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel.fakedist import run_loom

HEAVY = ["fastapi", "numpy", "tantivy", "rocksdict", "pydantic", "uvicorn", "pluggy", "stevedore"]


def test_help_lists_commands_and_version_matches(tmp_path: Path) -> None:
    """``--help`` lists the commands; ``--version`` prints the package version."""
    from loom_core import __version__

    helped = run_loom(["--help"], None, tmp_path)
    assert helped.returncode == 0
    for command in ["plugins", "config"]:
        assert f"  {command}" in helped.stdout
    assert run_loom(["--version"], None, tmp_path).stdout.strip() == f"loom {__version__}"


def test_help_imports_no_heavy_dependency() -> None:
    """``loom --help`` must stay fast: none of the heavy libraries may be imported."""
    code = (
        "import sys\n"
        "from loom_core.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_errors_are_coded_on_stderr_in_text_and_json(tmp_path: Path) -> None:
    """Failures print ``error[CODE]: message`` on stderr (or JSON) and exit non-zero."""
    text = run_loom(["config", "check", "missing.toml"], None, tmp_path)
    assert text.returncode != 0
    assert text.stderr.startswith("error[CONFIG_NOT_FOUND]: ")
    assert text.stdout == ""
    as_json = run_loom(["--format", "json", "config", "check", "missing.toml"], None, tmp_path)
    payload = json.loads(as_json.stderr)
    assert payload["error"]["code"] == "CONFIG_NOT_FOUND"
    assert as_json.returncode != 0


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown command exits 2 with USAGE_ERROR."""
    result = run_loom(["frobnicate"], None, tmp_path)
    assert result.returncode == 2 and "error[USAGE_ERROR]" in result.stderr


def test_config_check_accepts_the_example_and_refuses_a_literal_secret(tmp_path: Path) -> None:
    """``loom config check`` validates a file, including the literal-secret rule."""
    root = Path(__file__).resolve().parents[2]
    ok = run_loom(["config", "check", str(root / "config.example.toml")], None, tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nauth_token = "s3cr3t-value-here"\n')
    refused = run_loom(["config", "check", str(bad)], None, tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error[CONFIG_SECRET_LITERAL]: server.auth_token")
    assert ("s3cr3t-value-here" in refused.stderr) is False


def test_config_check_warns_about_settings_that_do_nothing_yet(tmp_path: Path) -> None:
    """`[pii] enabled = true` or a cost limit would make an operator believe something protects them;
    `loom config check` says they have no effect (the example file, defaults only, gets no warning)."""
    root = Path(__file__).resolve().parents[2]
    example = run_loom(["config", "check", str(root / "config.example.toml")], None, tmp_path)
    assert "warning:" not in example.stdout
    relied_on = tmp_path / "pii.toml"
    relied_on.write_text(
        '[pii]\nenabled = true\nblocklist = ["Project Falcon"]\n[alerts]\ndaily_cost_limit_usd = 5.0\n'
    )
    text = run_loom(["config", "check", str(relied_on)], None, tmp_path)
    assert text.returncode == 0
    warnings = [line for line in text.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and "[pii]" in warnings[0] and "[alerts]" in warnings[1]
    assert "Project Falcon" not in text.stdout  # blocklisted terms are sensitive: not repeated
    as_json = run_loom(["--format", "json", "config", "check", str(relied_on)], None, tmp_path)
    assert len(json.loads(as_json.stdout)["warnings"]) == 2


def test_an_unexpected_failure_is_coded_and_does_not_print_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug or a backend's uncoded exception printed a traceback whose message could quote a value
    the code held. It is INTERNAL_ERROR naming the type and place now; LOOM_DEBUG=1 shows the rest."""
    from loom_core.cli import config_cmd
    from loom_core.cli.main import main

    def broken(args: object) -> int:
        raise RuntimeError("value-7f3a-that-must-not-print")

    monkeypatch.setattr(config_cmd, "run", broken)
    monkeypatch.delenv("LOOM_DEBUG", raising=False)
    assert main(["config", "check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error[INTERNAL_ERROR]: loom config failed unexpectedly: RuntimeError in test_cli.py")
    assert "value-7f3a" not in err and "Traceback" not in err and "LOOM_DEBUG=1" in err
    assert main(["--format", "json", "config", "check"]) == 1
    assert json.loads(capsys.readouterr().err)["error"]["details"] == {"exception": "RuntimeError"}
    monkeypatch.setenv("LOOM_DEBUG", "0")  # off, as every Loom flag spells it
    assert main(["config", "check"]) == 1
    capsys.readouterr()
    monkeypatch.setenv("LOOM_DEBUG", "1")
    with pytest.raises(RuntimeError, match="value-7f3a"):
        main(["config", "check"])


def test_a_closed_output_is_reported_as_such(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`loom ... | head` made the new INTERNAL_ERROR handler call a closed pipe a Loom bug."""
    from loom_core.cli import config_cmd, pipes
    from loom_core.cli.main import main

    def closed(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    silenced: list[bool] = []
    monkeypatch.setattr(config_cmd, "run", closed)
    monkeypatch.setattr(pipes, "silence_stdout", lambda: silenced.append(True))
    assert main(["config", "check"]) == 1
    assert capsys.readouterr().err == "loom config: the output was closed before it was complete\n"
    assert silenced == [True]


def test_a_malformed_load_target_is_a_usage_error(tmp_path: Path) -> None:
    """`loom plugins --load foo:bar` exited 1 with a coded error; a malformed argument is exit 2 with
    the usage line, as the README says of every malformed command line."""
    result = run_loom(["plugins", "--load", "foo:bar"], None, tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("usage: loom plugins")
    assert "expected KIND:NAME" in result.stderr
