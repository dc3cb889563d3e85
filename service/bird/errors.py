"""What goes wrong when we ask Bird something: every error the Bird package raises
about a request to Bird's API (section 1 of docs/bird-contract.md, "the contract").

All of them are subclasses of :class:`BirdError`::

    BirdError
    ├── BirdInvalidCallId         not sent: the id cannot name one of the channel's calls
    ├── BirdTransportError        the request did not get an answer
    │   ├── BirdUnreachable       nothing reached Bird (connect failed): not performed
    │   └── BirdNoAnswer          sent, but no answer (timeout, connection lost): Bird
    │                             may or may not have performed it
    └── BirdHTTPError             Bird answered with a non-2xx status
        ├── BirdRequestError      4xx: this request is wrong; retrying will not help
        │   ├── BirdAuthError     401/403: the access key is wrong or lacks rights
        │   └── BirdNotFound      404: unknown workspace, channel or call
        ├── BirdRateLimited       429: not processed, retry later
        └── BirdServerError       5xx: documented as safe to retry later, yet a proxy's
                                  5xx may follow a request Bird performed

``performed`` says what each means for the request: ``"no"`` (surely not performed:
retrying is safe), ``"maybe"``, or ``"refused"`` (a 4xx: retrying will not help).

Code outside the Bird package catches these (``service.bird.errors``); only
``service.bird.client`` raises them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

Performed = Literal["no", "maybe", "refused"]


class BirdError(Exception):
    """Base of every error the client raises."""

    performed: ClassVar[Performed] = "maybe"


class BirdInvalidCallId(BirdError):
    """The request was not sent: the call id is not one Bird gives (a UUID-like id of
    letters, digits and dashes), so it cannot name a call of the channel, and putting
    it in the URL could reach another path."""

    performed: ClassVar[Performed] = "refused"

    def __init__(self, call_id: str) -> None:
        super().__init__(f"not a call id: {call_id[:80]!r}")
        self.call_id = call_id


class BirdTransportError(BirdError):
    """No answer from Bird: connection failed or timed out."""


class BirdUnreachable(BirdTransportError):
    """The request never reached Bird (connection refused, connect timeout, no
    connection free in the pool)."""

    performed: ClassVar[Performed] = "no"


class BirdNoAnswer(BirdTransportError):
    """The request was sent but no answer came (read timeout, connection lost)."""


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

    performed: ClassVar[Performed] = "refused"


class BirdAuthError(BirdRequestError):
    """401/403: the access key was refused."""


class BirdNotFound(BirdRequestError):
    """404: the workspace, channel or call does not exist."""


class BirdRateLimited(BirdHTTPError):
    """429: the request was not processed."""

    performed: ClassVar[Performed] = "no"


class BirdServerError(BirdHTTPError):
    """5xx: Bird failed; the request is safe to retry later."""
