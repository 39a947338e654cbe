"""Listeners: Twisted protocols that frame bytes and hand raw messages on, and the HTTP site.

May import ``parsers`` (framing only); never storage, forecast, config or handlers.
"""

__all__: list[str] = []
