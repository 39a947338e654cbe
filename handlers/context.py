"""What a handler knows about the message it is handling, besides its content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from handlers.identity import Principal
from handlers.ndc import NdcMatch
from handlers.roles import Role, View, view_of


class Logger(Protocol):
    """The slice of a structlog bound logger handlers use."""

    def info(self, event: str, **kw: Any) -> Any:
        """Log an informational event."""

    def debug(self, event: str, **kw: Any) -> Any:
        """Log a debug event."""

    def warning(self, event: str, **kw: Any) -> Any:
        """Log a warning event."""

    def bind(self, **kw: Any) -> Logger:
        """Return a logger with more context."""


class CodeLookup(Protocol):
    """Code tables (CVX, MVX, HL7 and CDC tables) as the validator needs them."""

    def has(self, table: str, code: str) -> bool:
        """Whether ``code`` is in ``table``."""

    def text(self, table: str, code: str) -> str:
        """The text of a code, or ``""`` when the table or code is unknown."""

    def ndc(self, code: str) -> NdcMatch:
        """Look up an RXA-5 NDC in CDC's NDC → CVX crosswalk."""

    @property
    def no_release_reason(self) -> str:
        """Why no NDC crosswalk is loaded."""


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Facts the pipeline established before dispatching.

    Attributes:
        sender: MSH-4, the sending facility.
        region: the region the sender's data belongs to.
        journal_id: the journal row of this message.
        received_at: when the message arrived (UTC).
        today: the registry's current date, for "not in the future" rules.
        sender_known: whether the sender is a configured facility.
        principal: the organization the listener authenticated (None on an
            open listener, where every sender acts as a provider, as the
            development mode always did).
    """

    sender: str
    region: str
    journal_id: int
    received_at: datetime
    today: date
    sender_known: bool = True
    principal: Principal | None = None

    @property
    def role(self) -> Role:
        """What the sender's agreement lets it do (open listeners: provider)."""
        return self.principal.role if self.principal is not None else Role.PROVIDER

    @property
    def view(self) -> View:
        """How much of a patient record the sender sees."""
        return view_of(self.role)
