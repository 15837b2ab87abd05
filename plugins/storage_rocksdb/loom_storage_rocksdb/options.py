"""Tuning options (``[storage] options = {...}``) validated into rocksdict ``Options``.

Unknown keys and wrong types are refused with ``CONFIG_INVALID`` naming the
key, so a typo never silently leaves a default in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options

from loom_core.errors import ErrorCode, LoomError

MIB = 1024 * 1024

_COMPRESSION: dict[str, Callable[[], Any]] = {
    "lz4": DBCompressionType.lz4,
    "lz4hc": DBCompressionType.lz4hc,
    "zstd": DBCompressionType.zstd,
    "snappy": DBCompressionType.snappy,
    "zlib": DBCompressionType.zlib,
    "none": DBCompressionType.none,
}


@dataclass(frozen=True)
class Tuning:
    """The accepted options and their defaults."""

    compression: str = "lz4"
    write_buffer_size: int = 64 * MIB
    max_write_buffer_number: int = 2
    max_background_jobs: int = 2
    block_cache_size: int = 64 * MIB
    bloom_bits_per_key: int = 10
    max_open_files: int = -1
    keep_log_file_num: int = 3

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Tuning:
        """Validate ``options``; raise ``CONFIG_INVALID`` naming the bad key."""
        known = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                raise LoomError(
                    ErrorCode.CONFIG_INVALID,
                    f"storage option {key!r} is unknown to the rocksdb backend; "
                    f"accepted: {', '.join(sorted(known))}",
                )
            if key == "compression":
                if value not in _COMPRESSION:
                    raise LoomError(
                        ErrorCode.CONFIG_INVALID,
                        f"storage option 'compression' must be one of {', '.join(sorted(_COMPRESSION))}, "
                        f"not {value!r}",
                    )
            elif isinstance(value, bool) or not isinstance(value, int):
                raise LoomError(
                    ErrorCode.CONFIG_INVALID, f"storage option {key!r} must be an integer, not {value!r}"
                )
            elif value < (-1 if key == "max_open_files" else 0 if key == "bloom_bits_per_key" else 1):
                raise LoomError(ErrorCode.CONFIG_INVALID, f"storage option {key!r} is out of range: {value}")
            values[key] = value
        return cls(**values)

    def db_options(self, cache: Cache) -> Options:
        """Options for the database itself (also used as the template of every family)."""
        opts = self.family_options(cache)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        opts.set_max_background_jobs(self.max_background_jobs)
        opts.set_max_open_files(self.max_open_files)
        opts.set_keep_log_file_num(self.keep_log_file_num)
        return opts

    def family_options(self, cache: Cache) -> Options:
        """Options for one column family: compression, memtable size, table format."""
        opts = Options(raw_mode=True)
        opts.set_compression_type(_COMPRESSION[self.compression]())
        opts.set_write_buffer_size(self.write_buffer_size)
        opts.set_max_write_buffer_number(self.max_write_buffer_number)
        table = BlockBasedOptions()
        table.set_block_cache(cache)
        if self.bloom_bits_per_key:
            table.set_bloom_filter(self.bloom_bits_per_key, False)
        opts.set_block_based_table_factory(table)
        return opts
