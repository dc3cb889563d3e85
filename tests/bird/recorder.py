"""A Bird that checks every request like Bird would, for the Bird package's tests
through httpx's MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx

from service.bird import schemas
from service.bird.client import BirdClient

BASE = "https://api.bird.test"
CALLS = "/workspaces/ws-1/channels/ch-1/calls"

# (path suffix, method) -> operation name of voice-schemas.json
OPERATION = {
    ("", "POST"): "createCall",
    ("answer", "POST"): "answerCall",
    ("hangup", "POST"): "hangupCall",
    ("say", "POST"): "say",
    ("playback", "POST"): "playback",
    ("gather", "POST"): "gather",
    ("record", "POST"): "record",
    ("bridge", "POST"): "bridge",
}


class Recorder:
    """A MockTransport handler that checks every request like Bird would: the access
    key, the path, and the body against Bird's published schemas (422 otherwise).
    Answers ``answers`` in turn, then a queued command."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[tuple[str, Any]] = []
        self._answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["authorization"] == "AccessKey key-1"
        path = request.url.path
        assert path.startswith(CALLS)
        rest = path[len(CALLS) :].strip("/").split("/")
        suffix = rest[1] if len(rest) > 1 else ""
        if request.method != "GET":
            operation = OPERATION[(suffix, request.method)]
            body = json.loads(request.content) if request.content else None
            self.bodies.append((operation, body))
            problems = schemas.problems(operation, body)
            if problems:
                return httpx.Response(422, json={"code": "invalid", "message": "; ".join(problems)})
        if self._answers:
            return self._answers.pop(0)
        return httpx.Response(202, json={"id": "cmd-1", "callId": "call-1", "status": "queued"})


def client_for(recorder: Recorder, **kwargs: Any) -> BirdClient:
    """A client of workspace ws-1, channel ch-1, answered by ``recorder``, that never sleeps."""

    async def no_sleep(_: float) -> None:
        return None

    return BirdClient(
        base_url=BASE,
        access_key="key-1",
        workspace_id="ws-1",
        channel_id="ch-1",
        transport=httpx.MockTransport(recorder),
        sleep=no_sleep,
        **kwargs,
    )
