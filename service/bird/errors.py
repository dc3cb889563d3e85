"""What goes wrong when we ask Bird something: every error the Bird package raises
about a request to Bird's API (section 1 of docs/bird-contract.md, "the contract").

All of them are subclasses of :class:`BirdError`::

    BirdError
    ├── BirdTransportError        the request did not get an answer (connect, timeout)
    └── BirdHTTPError             Bird answered with a non-2xx status
        ├── BirdRequestError      4xx: this request is wrong; retrying will not help
        │   ├── BirdAuthError     401/403: the access key is wrong or lacks rights
        │   └── BirdNotFound      404: unknown workspace, channel or call
        ├── BirdRateLimited       429: not processed, retry later
        └── BirdServerError       5xx: safe to retry later

Code outside the Bird package catches these (``service.bird.errors``); only
``service.bird.client`` raises them.
"""

from __future__ import annotations

from typing import Any


class BirdError(Exception):
    """Base of every error the client raises."""


class BirdTransportError(BirdError):
    """No answer from Bird: connection failed or timed out."""


class BirdHTTPError(BirdError):
    """Bird answered with a non-2xx status; ``code``/``details`` come from its error body."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"Bird answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BirdRequestError(BirdHTTPError):
    """4xx: the request was rejected."""


class BirdAuthError(BirdRequestError):
    """401/403: the access key was refused."""


class BirdNotFound(BirdRequestError):
    """404: the workspace, channel or call does not exist."""


class BirdRateLimited(BirdHTTPError):
    """429: the request was not processed."""


class BirdServerError(BirdHTTPError):
    """5xx: Bird failed; the request is safe to retry later."""
