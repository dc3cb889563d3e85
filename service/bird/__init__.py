"""Everything that knows Bird's shapes: the HTTP client, webhook signatures, the
published request schemas and the adapter that turns deliveries into our events.

Nothing outside this package builds or reads a Bird JSON body.
"""
