"""Fault injection: what Bird does on a bad day, seeded and reproducible.

A :class:`Faults` given to the simulator (``BirdSimulator(..., faults=Faults(...))``) makes
some of the service's requests fail, answer late or not at all (the API faults), and some of
Bird's deliveries repeat or arrive late and out of order (the delivery faults, A6 of
docs/bird-contract.md). ``Faults()``, the default, injects nothing.

API faults, each a probability per request (``api_*`` for createCall and the POST/PATCH
commands, ``get_*`` for ``GET`` of a call; at most one fault per request):

- ``error``: 500 or 503 (even odds) with Bird's error body, and the request is NOT performed
  (the contract: 5xx are not processed);
- ``rate_limited``: 429 ``{"code": "rate_limited"}``, not performed;
- ``slow``: performed, then answered only after ``slow_answer_s`` real seconds;
- ``dropped``: performed first with probability ``dropped_performed``, then never answered:
  the connection is held open until the client gives up (closes it), for at most
  ``drop_hold_s`` real seconds; a client still waiting then gets a 504 from "the gateway".

A request that Bird rejects anyway (access key, path, JSON, schema, call state) is answered as
always and never faulted.

Delivery faults: ``delivery_duplicate`` is the probability that a delivery is sent twice (a
new request id each time); ``delivery_delay_s`` delays each delivery by a random time up to
that many simulated seconds, each independently, so that deliveries of a call close together
arrive out of order (their ``updatedAt`` stays the moment the event happened).

Each fault injected is counted in the simulator's ``fault_counts`` under its name:
``error-500``, ``error-503``, ``rate-limited``, ``slow``, ``dropped-performed``,
``dropped-not-performed`` (also in :attr:`RecordedRequest.fault`), ``delivery-duplicate``,
``delivery-delayed``, and ``delivery-replay`` (the simulator's ``replay_stale``).

Randomness: every choice is drawn from a stream seeded by ``seed`` and the name of what it is
about: ``create`` (createCall requests), ``call-N/api``, ``call-N/get`` and
``call-N/delivery`` (the N-th call the simulator created, from 0, bridge legs included).
The same seed thus gives the same faults to the same requests and events of each call, even
when concurrent calls interleave differently from one run to the next. A kind of request with
no fault configured draws nothing.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Final

ERROR_500: Final = "error-500"
ERROR_503: Final = "error-503"
RATE_LIMITED: Final = "rate-limited"
SLOW: Final = "slow"
DROPPED_PERFORMED: Final = "dropped-performed"
DROPPED_NOT_PERFORMED: Final = "dropped-not-performed"
DELIVERY_DUPLICATE: Final = "delivery-duplicate"
DELIVERY_DELAYED: Final = "delivery-delayed"
DELIVERY_REPLAY: Final = "delivery-replay"

API_FAULTS: Final = (
    ERROR_500,
    ERROR_503,
    RATE_LIMITED,
    SLOW,
    DROPPED_PERFORMED,
    DROPPED_NOT_PERFORMED,
)
"""What :attr:`RecordedRequest.fault` may hold (and keys of ``fault_counts``)."""

PROBABILITIES: Final = (
    "api_error",
    "api_rate_limited",
    "api_slow",
    "api_dropped",
    "get_error",
    "get_rate_limited",
    "get_slow",
    "get_dropped",
    "dropped_performed",
    "delivery_duplicate",
)
SECONDS: Final = ("slow_answer_s", "drop_hold_s", "delivery_delay_s")

HELP: Final = """\
faults (--faults NAME=VALUE,...; probabilities 0..1 unless NAME ends in _s):
  api_error           createCall/POST/PATCH answered 500 or 503, not performed
  api_rate_limited    ... answered 429 rate_limited, not performed
  api_slow            ... performed, answered only after slow_answer_s
  api_dropped         ... never answered (held until the client gives up)
  get_error, get_rate_limited, get_slow, get_dropped
                      the same for GET of a call
  dropped_performed   share of dropped requests performed all the same (0.5)
  slow_answer_s       real seconds before a slow answer (15)
  drop_hold_s         real seconds a dropped request is held at most (30)
  delivery_duplicate  a delivery is sent twice
  delivery_delay_s    each delivery waits a random time up to this (simulated
                      seconds), so close ones arrive out of order (A6)
A request Bird rejects anyway (key, schema, state) is never faulted. The same
--seed gives the same faults to the same requests and events of each call.
example: --faults api_error=0.1,api_slow=0.05,delivery_duplicate=0.5 --seed 7"""


@dataclass(frozen=True)
class Faults:
    """The faults to inject (see the module docstring); all zero by default."""

    seed: int = 0
    api_error: float = 0.0
    api_rate_limited: float = 0.0
    api_slow: float = 0.0
    api_dropped: float = 0.0
    get_error: float = 0.0
    get_rate_limited: float = 0.0
    get_slow: float = 0.0
    get_dropped: float = 0.0
    dropped_performed: float = 0.5
    slow_answer_s: float = 15.0
    drop_hold_s: float = 30.0
    delivery_duplicate: float = 0.0
    delivery_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in PROBABILITIES:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value:g}")
        for name in SECONDS:
            value = _number(name, getattr(self, name))
            if value < 0 or math.isinf(value):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value:g}")
        for prefix in ("api", "get"):
            total = sum(self.weights(get=prefix == "get"))
            if total > 1.0 + 1e-9:
                raise ValueError(
                    f"{prefix}_error + {prefix}_rate_limited + {prefix}_slow + {prefix}_dropped"
                    f" must not exceed 1 (one fault per request), got {total:g}"
                )

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0) -> Faults:
        """``"api_error=0.1,api_slow=0.05"`` (``ValueError`` with a one-line reason)."""
        values: dict[str, float] = {}
        known = (*PROBABILITIES, *SECONDS)
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"fault {item!r} is not NAME=VALUE")
            if name not in known:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(known)})")
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"fault {name} must be a number, got {text.strip()!r}") from None
            values[name] = value
        return cls(seed=seed, **values)

    def weights(self, *, get: bool) -> tuple[float, float, float, float]:
        """The probabilities of error, rate_limited, slow and dropped."""
        if get:
            return (self.get_error, self.get_rate_limited, self.get_slow, self.get_dropped)
        return (self.api_error, self.api_rate_limited, self.api_slow, self.api_dropped)

    @property
    def enabled(self) -> bool:
        """Whether any fault can happen."""
        return (
            any(self.weights(get=False))
            or any(self.weights(get=True))
            or bool(self.delivery_duplicate or self.delivery_delay_s)
        )

    def describe(self) -> str:
        """The non-default settings, as ``--faults`` takes them, and the seed."""
        default = Faults()
        changed = [
            f"{field.name}={getattr(self, field.name):g}"
            for field in dataclasses.fields(self)
            if field.name != "seed" and getattr(self, field.name) != getattr(default, field.name)
        ]
        return f"{','.join(changed) or 'none'} (seed {self.seed})"


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


class FaultDice:
    """The simulator's random choices, one seeded stream per subject (module docstring)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._streams: dict[str, random.Random] = {}

    def stream(self, subject: str) -> random.Random:
        rng = self._streams.get(subject)
        if rng is None:
            rng = self._streams[subject] = random.Random(f"{self.faults.seed}/{subject}")
        return rng

    def api_fault(self, subject: str, *, get: bool) -> str | None:
        """The fault for one request that Bird would carry out (None: none)."""
        weights = self.faults.weights(get=get)
        if not any(weights):
            return None
        rng = self.stream(subject)
        draw = rng.random()
        kind: str | None = None
        for candidate, weight in zip(
            ("error", RATE_LIMITED, SLOW, "dropped"), weights, strict=True
        ):
            if draw < weight:
                kind = candidate
                break
            draw -= weight
        if kind == "error":
            return rng.choice((ERROR_500, ERROR_503))
        if kind == "dropped":
            performed = rng.random() < self.faults.dropped_performed
            return DROPPED_PERFORMED if performed else DROPPED_NOT_PERFORMED
        return kind  # None, slow or rate-limited

    def delivery(self, subject: str, *, always_duplicate: bool) -> tuple[bool, float]:
        """For one delivery: whether it is sent twice, and its extra delay (simulated s)."""
        faults = self.faults
        duplicate = always_duplicate
        if not duplicate and faults.delivery_duplicate > 0:
            duplicate = self.stream(subject).random() < faults.delivery_duplicate
        delay_s = 0.0
        if faults.delivery_delay_s > 0:
            delay_s = self.stream(subject).uniform(0.0, faults.delivery_delay_s)
        return duplicate, delay_s
