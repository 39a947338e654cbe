"""Embedded CDSi evaluation and forecast engine.

Pure: imports only the standard library, and does no I/O after the supporting
data is loaded. Must not import any other Cairn package.
"""

__all__: list[str] = []
