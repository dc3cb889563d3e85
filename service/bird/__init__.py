"""The Bird boundary: everything that knows Bird's shapes, as docs/bird-contract.md
("the contract") describes them.

- ``deliveries``: a webhook delivery read into a ``Delivery``, and what it means as
  one of our events (assumptions A1-A6).
- ``commands``: ``BirdCalls``, our actions as Bird commands, outbound calls and a
  call's status.
- ``errors``: what goes wrong when we ask Bird something.
- ``signature``: webhook signatures, checked and made.
- ``client`` and ``schemas``: Bird's JSON itself, the HTTP client and Bird's
  published request schemas (``voice-schemas.json``); only this package and the
  simulator use them.

Nothing outside this package builds or reads a Bird JSON body.
"""
