"""The HTTP service (Starlette): Bird's webhook, health checks and the operator API.

Endpoints parse and answer HTTP; what happens to a call is ``service.runtime``'s.
"""
