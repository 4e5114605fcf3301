"""Deduplication algorithms, one short module each (after text-dedup)."""
