"""Every exception the SDK raises, in one tree.

QuoteModError
 ├── InvalidActionError        a mod returned an action its event may not return
 ├── ModFailedError            a mod raised, timed out or returned garbage (wraps the cause)
 ├── SerializationError        a mod's source cannot be bundled or loaded
 ├── SignatureError
 │    └── SignatureVerificationError   a bundle's signature does not verify
 ├── ConversationAccessError (also PermissionError)   a mod asked for another request's messages
 └── StrategyError (also ValueError)   tokens violate a constrained-generation strategy
"""

from __future__ import annotations


class QuoteModError(Exception):
    """Base of all SDK errors."""


class InvalidActionError(QuoteModError):
    """Raised when a mod returns an action that is not valid for the event it handled."""

    def __init__(self, message: str, *, event: str = "", action: str = "") -> None:
        super().__init__(message)
        self.event = event
        self.action = action


class ModFailedError(QuoteModError):
    """Raised when a mod call fails (exception, time budget, invalid action); names the mod."""

    def __init__(self, message: str, *, mod: str, kind: str = "exception") -> None:
        super().__init__(message)
        self.mod = mod
        self.kind = kind


class SerializationError(QuoteModError):
    """Raised when a mod cannot be serialized (no retrievable source) or a bundle cannot be loaded."""


class SignatureError(QuoteModError):
    """Base of signing problems (bad key material, unknown key)."""


class SignatureVerificationError(SignatureError):
    """Raised when a bundle's signature does not match its content or the given public key."""


class ConversationAccessError(QuoteModError, PermissionError):
    """Raised when a mod asks for the conversation of a request other than the one it is handling."""


class StrategyError(QuoteModError, ValueError):
    """Raised when tokens violate a constrained-generation strategy or a strategy is misused."""
