"""An httpx transport that sends requests with aiohttp: the Bird client keeps httpx's API
(``httpx.AsyncClient``, its timeouts, its exceptions) and spends about half the CPU
per request that httpcore does (bench/README.md, "Where the time goes").

What a failure means is what the outbox decides on (``service.bird.client``: a request
that surely did not reach Bird is tried again; one that may have is not), so the
mapping of aiohttp's errors onto httpx's is this module's whole point:

- not connected (refused, unreachable, no such host, TLS handshake failed):
  ``httpx.ConnectError``; no connection within the connect timeout, or no free
  connection of the pool within it: ``httpx.ConnectTimeout``. Nothing was sent.
- connected, and then no (whole) answer within the read timeout:
  ``httpx.ReadTimeout``; the connection broke or the answer was not HTTP:
  ``httpx.ReadError``. The request may have been performed.

(The ``httpx-aiohttp`` package maps every ``ClientConnectionError``, a server that
closed the connection after reading the request included, to ``ConnectTimeout``: a
command Bird may have performed would be sent again. Hence this module.)

aiohttp itself never retries a ``POST``; a ``GET`` that finds its kept-alive
connection closed is sent once more on a new one (RFC 9112 9.3.1), which is safe.

Answers are not decompressed here (httpx decodes ``Content-Encoding`` itself), and
redirects are not followed (httpx decides). The aiohttp session is made on first use,
inside the running event loop, and closed by :meth:`AiohttpTransport.aclose`.
"""

from __future__ import annotations

import aiohttp
import httpx

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``transport=`` for an ``httpx.AsyncClient``: HTTP/1.1 over a pool of at most
    ``limits.max_connections`` kept-alive connections (``limits.keepalive_expiry``
    seconds idle at most)."""

    def __init__(self, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 15.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                # httpx's headers are sent as they are: no User-Agent or Accept of
                # aiohttp's own added.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        connect = timeouts.get("connect")
        pool = timeouts.get("pool")
        timeout = aiohttp.ClientTimeout(
            total=None,
            # Waiting for a connection of the pool and making one: nothing sent yet.
            connect=None if connect is None and pool is None else (connect or 0) + (pool or 0),
            sock_connect=connect,
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        try:
            async with self._session_now().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                content = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:  # before ServerTimeoutError
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ClientError as exc:
            # Connected and sent (or sending): the connection broke, or the answer was
            # not HTTP. Bird may have performed the request.
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
        reason = (answer.reason or "").encode()
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            stream=httpx.ByteStream(content),  # httpx reads it, decoding Content-Encoding
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
