"""RocksDB storage backend for Loom (through rocksdict)."""

from loom_storage_rocksdb.storage import RocksStorage

__all__ = ["RocksStorage"]
