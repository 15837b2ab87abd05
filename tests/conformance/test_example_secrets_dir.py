"""Runs the walkthrough's example provider (examples/secrets_dir) through the secrets kit, uninstalled.

The example's package and its test module are imported by path, so the
example the documentation shows is the example that is tested.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "secrets_dir"


def _load(name: str, path: Path, package: bool = False) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load("loom_secrets_dir", EXAMPLE / "loom_secrets_dir" / "__init__.py", package=True)
plugin = _load("loom_secrets_dir.plugin", EXAMPLE / "loom_secrets_dir" / "plugin.py")
example_tests = _load("loom_secrets_dir_example_tests", EXAMPLE / "tests" / "test_conformance.py")

TestDirProvider = example_tests.TestDirProvider


def test_symlink_out_of_root_refused(tmp_path: Path) -> None:
    """Proves a file that links outside the secrets directory is refused with SECRETS_ACCESS_DENIED."""
    root = tmp_path / "secrets"
    root.mkdir()
    (tmp_path / "outside").write_bytes(b"outside-value-1234")
    (root / "link").symlink_to(tmp_path / "outside")
    provider = plugin.create(BackendContext(options={"root": str(root)}))
    with pytest.raises(LoomError) as info:
        provider.resolve(SecretRef.parse("dir://link"))
    assert info.value.code is ErrorCode.SECRETS_ACCESS_DENIED


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({}, ErrorCode.SECRETS_PROVIDER_UNAVAILABLE),
        ({"root": "/nonexistent/loom-secrets"}, ErrorCode.SECRETS_PROVIDER_UNAVAILABLE),
        ({"root": "/tmp", "mode": "x"}, ErrorCode.CONFIG_INVALID),
    ],
)
def test_bad_configuration_fails_closed(options: dict[str, str], code: ErrorCode) -> None:
    """Proves a missing or wrong root and unknown options are coded errors at build time."""
    with pytest.raises(LoomError) as info:
        plugin.create(BackendContext(options=options))
    assert info.value.code is code


def test_the_example_runs_in_a_workflow_configured_from_secrets_providers(tmp_path: Path) -> None:
    """The walkthrough's provider takes ``root`` from ``[secrets.providers.dir]``: a `loom run` with
    that configuration injects the file's bytes and redacts them. Providers used to be built
    without options, so the example could not run at all."""
    from loom_core.config import validate_config
    from loom_core.plugins.host import PluginHost
    from loom_core.workflow.runner import RunOptions, run_workflow

    root = tmp_path / "secrets"
    root.mkdir()
    (root / "db_password").write_bytes(b"dir-provider-value-5150")
    workflow = tmp_path / "w.yml"
    workflow.write_text(
        "jobs:\n  a:\n    secrets: {PW: {ref: \"dir://db_password\"}}\n    script: ['echo \"pw=$(cat \"$PW\")\"']\n"
    )
    config = validate_config({"secrets": {"providers": {"dir": {"root": str(root)}}}}, {})
    host = PluginHost(environ={"PATH": "/usr/bin:/bin"})
    host.register_plugin(plugin, "loom-secrets-dir-example")
    out, err = io.BytesIO(), io.BytesIO()
    result = run_workflow(
        RunOptions(workflow=workflow, environ={"PATH": "/usr/bin:/bin"}, config=config, host=host,
                   stdout=out, stderr=err, receipt=tmp_path / "r.json", handle_signals=False)
    )
    assert result.exit_code == 0, err.getvalue()
    assert out.getvalue() == b"pw=[REDACTED:SECRET_PW]\n"


def test_provider_tables_must_be_named_by_a_scheme() -> None:
    """``[secrets.providers."Not A Scheme"]`` is CONFIG_INVALID naming the key."""
    from loom_core.config import validate_config

    with pytest.raises(LoomError) as info:
        validate_config({"secrets": {"providers": {"Not A Scheme": {}}}}, {})
    assert info.value.code is ErrorCode.CONFIG_INVALID and "secrets.providers" in info.value.message
