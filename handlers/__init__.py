"""Handlers: the registry's rules for each message type, as plain classes.

May import parsers, storage and forecast; never Twisted or SQLAlchemy.
"""

__all__: list[str] = []
