"""Ingest: walking, hashing, parallel decoding, batched embedding and batched writing."""

from embedstore.ingest.reembed import reembed_collection
from embedstore.ingest.run import IndexOptions, index_paths
from embedstore.ingest.walk import FileEntry, glob_match, walk

__all__ = ["FileEntry", "IndexOptions", "glob_match", "index_paths", "reembed_collection", "walk"]
