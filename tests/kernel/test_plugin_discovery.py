"""Discovery, selective loading, conflicts, load failures and disabling, end to end.

Each test installs throwaway distributions into a directory and runs Loom in a
subprocess with that directory on ``PYTHONPATH``, as a user's environment would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kernel.fakedist import make_dist, run_loom, run_python

GOOD_PLUGIN = """
from pathlib import Path
from loom_core.hookspecs import hookimpl

Path("imported-{marker}").write_text("yes")


class Provider:
    scheme = "{name}"
    capabilities = frozenset()


@hookimpl
def loom_register_backends(registry):
    registry.add_secrets("{name}", lambda ctx: Provider(), description="fake")
"""


def good_plugin(name: str, marker: str) -> str:
    return GOOD_PLUGIN.format(name=name, marker=marker)


def install_fake(site: Path) -> None:
    """Install ``loom-fake 1.2.3`` offering secrets backend ``fake``; importing it leaves a marker."""
    make_dist(
        site, "loom-fake", "1.2.3", {"loom.secrets": {"fake": "fakeplug"}}, {"fakeplug": good_plugin("fake", "fake")}
    )


def host_error(call: str, site: Path, tmp_path: Path) -> list[str]:
    """Run ``PluginHost().<call>`` in a subprocess; return [code, message] of the LoomError (or output)."""
    code = (
        "from loom_core.plugins.host import PluginHost\n"
        "from loom_core.errors import LoomError\n"
        f"try:\n    PluginHost().{call}\n    print('NO ERROR')\n"
        "except LoomError as e:\n    print(e.code.value); print(e.message)\n"
    )
    return run_python(code, site, tmp_path).stdout.splitlines()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_listing_shows_builtins_with_distribution_and_version(tmp_path: Path) -> None:
    """``loom plugins`` lists the built-ins under distribution loom-framework with its version."""
    result = run_loom(["plugins", "--no-load", "--format", "json"], None, tmp_path)
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    from loom_core import __version__

    for key in [("cipher", "aes256gcm"), ("pii", "regex"), ("secrets", "env"), ("llm", "hash")]:
        assert rows[key]["distribution"] == "loom-framework"
        assert rows[key]["version"] == __version__
        assert rows[key]["status"] == "available"


def test_listing_does_not_import_unselected_plugins(site: Path, tmp_path: Path) -> None:
    """A plugin nobody selected is listed from metadata and never imported."""
    install_fake(site)
    result = run_loom(["plugins", "--format", "json"], site, tmp_path)
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("secrets", "fake")]["status"] == "available"
    assert rows[("secrets", "fake")]["distribution"] == "loom-fake"
    assert not (tmp_path / "imported-fake").exists()


def test_selected_plugin_is_imported_and_loaded(site: Path, tmp_path: Path) -> None:
    """``--load`` imports exactly the named plugin and reports it loaded."""
    install_fake(site)
    result = run_loom(["plugins", "--load", "secrets:fake", "--format", "json"], site, tmp_path)
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("secrets", "fake")]["status"] == "loaded"
    assert (tmp_path / "imported-fake").exists()


def test_two_distributions_claiming_one_name_is_a_conflict(site: Path, tmp_path: Path) -> None:
    """Two plugins with the same kind and name: PLUGIN_CONFLICT naming both distributions."""
    make_dist(site, "loom-dup-a", "1.0", {"loom.secrets": {"dup": "dup_a"}}, {"dup_a": good_plugin("dup", "a")})
    make_dist(site, "loom-dup-b", "2.0", {"loom.secrets": {"dup": "dup_b"}}, {"dup_b": good_plugin("dup", "b")})
    listing = run_loom(["plugins", "--format", "json"], site, tmp_path)
    rows = [r for r in json.loads(listing.stdout) if r["name"] == "dup"]
    assert {r["status"] for r in rows} == {"conflict"}
    assert listing.returncode == 1
    out = host_error("backend('secrets', 'dup')", site, tmp_path)
    assert out[0] == "PLUGIN_CONFLICT"
    assert "loom-dup-a 1.0" in out[1] and "loom-dup-b 2.0" in out[1]
    assert not (tmp_path / "imported-a").exists() and not (tmp_path / "imported-b").exists()


def test_import_failure_names_entry_point_distribution_version_and_cause(site: Path, tmp_path: Path) -> None:
    """A selected plugin that fails to import is PLUGIN_LOAD_FAILED with full provenance, never skipped."""
    make_dist(
        site,
        "loom-broken",
        "0.9.1",
        {"loom.secrets": {"broken": "brokenplug"}},
        {"brokenplug": "import definitely_not_installed_module_xyz\n"},
    )
    out = host_error("create('secrets', 'broken')", site, tmp_path)
    assert out[0] == "PLUGIN_LOAD_FAILED"
    for fragment in [
        "loom.secrets:broken",
        "loom-broken 0.9.1",
        "ModuleNotFoundError",
        "definitely_not_installed_module_xyz",
    ]:
        assert fragment in out[1]
    listing = run_loom(["plugins", "--load", "secrets:broken", "--format", "json"], site, tmp_path)
    row = next(r for r in json.loads(listing.stdout) if r["name"] == "broken")
    assert row["status"] == "failed" and "ModuleNotFoundError" in row["reason"]
    assert listing.returncode == 1


def test_plugin_registering_the_wrong_name_is_invalid(site: Path, tmp_path: Path) -> None:
    """The entry point name and the registered backend name must agree (PLUGIN_INVALID)."""
    make_dist(
        site,
        "loom-liar",
        "1.0",
        {"loom.secrets": {"liar": "liarplug"}},
        {"liarplug": good_plugin("other", "liar")},
    )
    code, message = host_error("backend('secrets', 'liar')", site, tmp_path)
    assert code == "PLUGIN_INVALID"
    assert "it registered secrets 'other'" in message  # says what it did register


def test_a_misspelt_registration_hook_is_named(site: Path, tmp_path: Path) -> None:
    """A plugin whose hook is ``loom_register_backend`` registers nothing; the error names the typo."""
    source = good_plugin("typo", "typo").replace("def loom_register_backends", "def loom_register_backend")
    make_dist(site, "loom-typo", "1.0", {"loom.secrets": {"typo": "typoplug"}}, {"typoplug": source})
    code, message = host_error("backend('secrets', 'typo')", site, tmp_path)
    assert code == "PLUGIN_INVALID"
    assert "defines no loom_register_backends hook (it has 'loom_register_backend')" in message


def test_an_entry_point_in_a_misspelt_group_is_pointed_out(site: Path, tmp_path: Path) -> None:
    """Declared under ``loom.secret`` the plugin is installed but never found: the error says where it is."""
    make_dist(site, "loom-grp", "1.0", {"loom.secret": {"grp": "grpplug"}}, {"grpplug": good_plugin("grp", "grp")})
    code, message = host_error("backend('secrets', 'grp')", site, tmp_path)
    assert code == "PLUGIN_NOT_FOUND"
    assert "installed in group(s) ['loom.secret'], which Loom does not read: declare it in 'loom.secrets'" in message


def test_disabled_by_env_and_by_config(site: Path, tmp_path: Path) -> None:
    """LOOM_DISABLE_PLUGINS and plugins.disabled disable without uninstalling."""
    install_fake(site)
    by_env = run_loom(["plugins", "--format", "json"], site, tmp_path, {"LOOM_DISABLE_PLUGINS": "secrets:fake"})
    row = next(r for r in json.loads(by_env.stdout) if r["name"] == "fake")
    assert row["status"] == "disabled"
    config = tmp_path / "c.toml"
    config.write_text('[plugins]\ndisabled = ["secrets:fake"]\n')
    by_config = run_loom(
        ["plugins", "--config", str(config), "--load", "secrets:fake", "--format", "json"], site, tmp_path
    )
    row = next(r for r in json.loads(by_config.stdout) if r["name"] == "fake")
    assert row["status"] == "disabled"
    assert not (tmp_path / "imported-fake").exists()


def test_selected_but_not_installed_is_reported_missing(tmp_path: Path) -> None:
    """A backend the config selects but nobody installed is a row with status missing, exit 1."""
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nbackend = "nosuchstore"\n')
    result = run_loom(["plugins", "--config", str(config), "--format", "json"], None, tmp_path)
    row = next(r for r in json.loads(result.stdout) if r["name"] == "nosuchstore")
    assert row["status"] == "missing" and result.returncode == 1
