"""Tantivy full-text index backend for Loom."""

from loom_index_tantivy.index import TantivyIndex

__all__ = ["TantivyIndex"]
