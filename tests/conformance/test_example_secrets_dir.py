"""Runs the walkthrough's example provider (examples/secrets_dir) through the secrets kit, uninstalled.

The example's package and its test module are imported by path, so the
example the documentation shows is the example that is tested.
"""

from __future__ import annotations

import importlib.util
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
