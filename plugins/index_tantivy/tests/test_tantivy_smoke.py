"""Tantivy-specific behaviour beyond the shared index conformance suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loom_index_tantivy.index import TantivyIndex
from loom_index_tantivy.plugin import create

from loom_core.contracts import BackendContext
from loom_core.contracts.index import IndexDocument, IndexQuery
from loom_core.errors import ErrorCode, LoomError


def test_stemming_and_folding(tmp_path: Path) -> None:
    """Proves the English analyzer matches inflections and accents (running ~ run, café ~ cafe)."""
    index = create(BackendContext(data_dir=tmp_path))
    index.upsert([IndexDocument("a", "s", 0, "Running to the café", 1)])
    index.commit()
    assert [h.id for h in index.search(IndexQuery("run cafe"))] == ["a"]
    index.close()


def test_second_process_gets_index_locked(tmp_path: Path) -> None:
    """Proves another process opening the same index directory gets INDEX_LOCKED naming it."""
    index = create(BackendContext(data_dir=tmp_path / "ix"))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from loom_core.contracts import BackendContext
        from loom_core.errors import LoomError
        from loom_index_tantivy.plugin import create
        try:
            create(BackendContext(data_dir=Path({str(tmp_path / "ix")!r})))
        except LoomError as exc:
            print(exc.code, exc.message)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    index.close()
    assert result.stdout.startswith("INDEX_LOCKED"), result.stdout + result.stderr
    assert str(tmp_path / "ix") in result.stdout


def test_an_index_of_the_older_analyzer_format_is_emptied_to_be_rebuilt(tmp_path: Path) -> None:
    """An index written by analyzer format 1 (whole CJK sentences as one term) would answer
    format-2 queries wrongly; with the same options it is emptied at open and recorded as the
    current format, so the engine, seeing the count differ from storage, rebuilds it."""
    import json

    from loom_index_tantivy.settings import FORMAT, SETTINGS_FILE

    index = create(BackendContext(data_dir=tmp_path))
    index.upsert([IndexDocument("a", "s", 0, "我住在東京", 1)])
    index.commit()
    index.close()
    settings_path = tmp_path / SETTINGS_FILE
    recorded = json.loads(settings_path.read_text())
    settings_path.write_text(json.dumps({**recorded, "format": 1}))
    reopened = create(BackendContext(data_dir=tmp_path))
    try:
        assert reopened.count() == 0
        assert json.loads(settings_path.read_text())["format"] == FORMAT
        reopened.upsert([IndexDocument("a", "s", 0, "我住在東京", 1)])
        reopened.commit()
        assert [h.id for h in reopened.search(IndexQuery("東京"))] == ["a"]
    finally:
        reopened.close()
    settings_path.write_text(json.dumps({**recorded, "format": 1, "stemmer": "none"}))
    with pytest.raises(LoomError) as info:  # other options too: refused, as any analysis change
        create(BackendContext(data_dir=tmp_path))
    assert info.value.code is ErrorCode.CONFIG_INVALID


def test_analysis_change_refused(tmp_path: Path) -> None:
    """Proves reopening an index with different analysis options fails closed with CONFIG_INVALID."""
    create(BackendContext(data_dir=tmp_path)).close()
    with pytest.raises(LoomError) as info:
        create(BackendContext(data_dir=tmp_path, options={"stemmer": "none"}))
    assert info.value.code is ErrorCode.CONFIG_INVALID


def test_unknown_option_refused(tmp_path: Path) -> None:
    """Proves a mistyped option is refused with CONFIG_INVALID naming it."""
    with pytest.raises(LoomError) as info:
        create(BackendContext(data_dir=tmp_path, options={"stemer": "english"}))
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "stemer" in info.value.message


def test_unusable_directory_is_index_io(tmp_path: Path) -> None:
    """Proves an index directory that is a regular file fails with INDEX_IO naming the path."""
    target = tmp_path / "not-a-dir"
    target.write_bytes(b"x")
    with pytest.raises(LoomError) as info:
        create(BackendContext(data_dir=target))
    assert info.value.code is ErrorCode.INDEX_IO
    assert str(target) in info.value.message


def test_failed_rebuild_keeps_old_content(tmp_path: Path) -> None:
    """Proves a rebuild whose document source fails midway leaves the committed content intact."""
    index = create(BackendContext(data_dir=tmp_path))
    index.upsert([IndexDocument("old", "s", 0, "kept words", 1)])
    index.commit()

    def broken() -> Iterator[IndexDocument]:
        yield IndexDocument("new", "s", 0, "fresh words", 2)
        raise RuntimeError("storage read failed")

    with pytest.raises(RuntimeError):
        index.rebuild(broken())
    index.commit()
    assert index.ids() == {"old"}
    index.close()


def test_close_commits_queued_changes(tmp_path: Path) -> None:
    """Proves close() commits upserts that were queued but not committed yet."""
    index = create(BackendContext(data_dir=tmp_path))
    index.upsert([IndexDocument("d", "s", 0, "queued words", 1)])
    index.close()
    reopened = create(BackendContext(data_dir=tmp_path))
    assert reopened.ids() == {"d"}
    reopened.close()


@pytest.fixture(scope="module")
def fuzz_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TantivyIndex]:
    index = create(BackendContext(data_dir=tmp_path_factory.mktemp("fuzz")))
    index.upsert(
        [IndexDocument("a", "s", 0, "hello world (c) AND x:y", 1), IndexDocument("b", "s", 0, "é ü 東京", 2)]
    )
    index.commit()
    yield index
    index.close()


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200))
def test_any_text_searches_without_raising(fuzz_index: TantivyIndex, text: str) -> None:
    """Proves arbitrary Unicode text either searches or, when blank, raises INDEX_QUERY_INVALID: never
    a native tantivy error."""
    try:
        hits = fuzz_index.search(IndexQuery(text))
    except LoomError as exc:
        assert exc.code is ErrorCode.INDEX_QUERY_INVALID
        assert not text.strip()
    else:
        assert all(h.id in {"a", "b"} for h in hits)


def test_lone_surrogates_are_query_invalid(tmp_path: Path) -> None:
    """Proves text that is not valid Unicode (lone surrogates from a JSON body) is INDEX_QUERY_INVALID
    in a query and a ValueError (nothing applied) in a document."""
    index = create(BackendContext(data_dir=tmp_path))
    with pytest.raises(LoomError) as info:
        index.search(IndexQuery("a\ud800b"))
    assert info.value.code is ErrorCode.INDEX_QUERY_INVALID
    with pytest.raises(LoomError):
        index.search(IndexQuery("ok", streams=["s\ud800"]))
    with pytest.raises(ValueError):
        index.upsert([IndexDocument("ok", "s", 0, "fine", 1), IndexDocument("x", "s", 0, "a\ud800", 1)])
    index.commit()
    assert index.count() == 0
    index.close()
