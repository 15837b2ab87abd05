"""Index settings: tuning options from ``ctx.options`` and the text analyzer.

The analyzer is baked into the index on disk, so the analysis settings are
recorded in ``loom-index.json`` next to it; reopening with different ones is
refused (``CONFIG_INVALID``) instead of silently mixing two tokenizations. An
index written by an older analyzer *format* of this plugin is emptied at open
instead (it is derived data): the engine then sees its document count differ
from storage and rebuilds it.

Format 2 (current): letters with their combining marks, and digits, form
words (the simple tokenizer of format 1 cut Hindi words at every virama), except that Chinese,
Japanese and Korean characters are terms of their own (those scripts do not
put spaces between words, so a whole sentence used to be one unsearchable
term); words of 100 bytes or more are dropped. Format 1: Unicode alphanumeric
runs, words of 40 bytes or more dropped (a 21-letter Cyrillic word).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tantivy import Filter, TextAnalyzer, TextAnalyzerBuilder, Tokenizer

from loom_core.errors import ErrorCode, LoomError

SETTINGS_FILE = "loom-index.json"
FORMAT = 2
#: Tantivy refuses less than this much writer memory per indexing thread.
MIN_HEAP_PER_THREAD = 15_000_000
#: Tokens of this many UTF-8 bytes or more are dropped (base64 blobs).
MAX_TOKEN_BYTES = 100
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
#: One CJK character, or a run of other letters (with their combining marks: Devanagari vowel
#: signs and viramas, Arabic harakat) and digits.
WORD_PATTERN = rf"[{_CJK}]|[[\p{{Alphabetic}}\p{{N}}\p{{M}}]--[{_CJK}]]+"

STEMMERS = frozenset(
    {
        "arabic", "danish", "dutch", "english", "finnish", "french", "german", "greek", "hungarian",
        "italian", "norwegian", "portuguese", "romanian", "russian", "spanish", "swedish", "tamil",
        "turkish", "none",
    }
)


@dataclass(frozen=True)
class Analysis:
    """How text is cut into terms; persisted with the index."""

    stemmer: str = "english"
    ascii_fold: bool = True

    def analyzer(self) -> TextAnalyzer:
        """Words (see the module docstring), long-token removal, lowercase, folding, stemming.
        Only the current format is built: an index of an older one is emptied at open."""
        builder = TextAnalyzerBuilder(Tokenizer.regex(WORD_PATTERN)).filter(Filter.remove_long(MAX_TOKEN_BYTES))
        builder = builder.filter(Filter.lowercase())
        if self.ascii_fold:
            builder = builder.filter(Filter.ascii_fold())
        if self.stemmer != "none":
            builder = builder.filter(Filter.stemmer(self.stemmer))
        return builder.build()


@dataclass(frozen=True)
class Tuning:
    """Accepted ``[index] options`` keys and their defaults."""

    stemmer: str = "english"
    ascii_fold: bool = True
    writer_heap_bytes: int = 64_000_000
    writer_threads: int = 1

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Tuning:
        """Validate ``options``; ``CONFIG_INVALID`` names the first bad key."""
        known = cls.__dataclass_fields__
        for key, value in options.items():
            if key not in known:
                raise _invalid(f"index option {key!r} is unknown; accepted: {', '.join(sorted(known))}")
            if key == "stemmer" and value not in STEMMERS:
                raise _invalid(f"index option 'stemmer' must be one of {', '.join(sorted(STEMMERS))}")
            if key == "ascii_fold" and not isinstance(value, bool):
                raise _invalid("index option 'ascii_fold' must be true or false")
            if key in ("writer_heap_bytes", "writer_threads") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise _invalid(f"index option {key!r} must be a positive integer, not {value!r}")
        tuning = cls(**dict(options))
        if tuning.writer_heap_bytes < MIN_HEAP_PER_THREAD * tuning.writer_threads:
            raise _invalid(
                f"index option 'writer_heap_bytes' must be at least {MIN_HEAP_PER_THREAD} per writer thread "
                f"({MIN_HEAP_PER_THREAD * tuning.writer_threads} for {tuning.writer_threads})"
            )
        return tuning

    @property
    def analysis(self) -> Analysis:
        return Analysis(stemmer=self.stemmer, ascii_fold=self.ascii_fold)


def check_recorded(directory: Path, analysis: Analysis) -> None:
    """Record ``analysis`` in a new index directory, or refuse a mismatch with the recorded one.

    An index of an older analyzer format with the same options is emptied (see the module
    docstring). The caller holds the data directory (the storage lock is taken first).
    """
    path = directory / SETTINGS_FILE
    wanted = {"format": FORMAT, **asdict(analysis)}
    if path.exists():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LoomError(ErrorCode.INDEX_IO, f"cannot read {path}: {exc}") from None
        older = isinstance(recorded, dict) and isinstance(recorded.get("format"), int) and recorded["format"] < FORMAT
        if older and {**recorded, "format": FORMAT} == wanted:
            _empty(directory)
            recorded = None
        elif recorded != wanted:
            raise _invalid(
                f"the index in {directory} was built with analysis settings {recorded}, "
                f"but the configuration asks for {wanted}; restore the old options, or delete "
                "the index directory so it is rebuilt from storage"
            )
        if recorded is not None:
            return
    try:
        path.write_text(json.dumps(wanted, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise LoomError(ErrorCode.INDEX_IO, f"cannot write {path}: {exc.strerror or exc}") from None


def _empty(directory: Path) -> None:
    """Remove an index of an older format (every file of the directory; it is rebuilt)."""
    try:
        for child in directory.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    except OSError as exc:
        raise LoomError(
            ErrorCode.INDEX_IO, f"cannot clear the older-format index in {directory}: {exc.strerror or exc}"
        ) from None


def _invalid(message: str) -> LoomError:
    return LoomError(ErrorCode.CONFIG_INVALID, message)
