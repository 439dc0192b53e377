"""Per-key rate limits: a token bucket per API key, so one client cannot crowd out the rest.

Each event request takes one token; a bucket holds at most ``burst`` and refills at ``rate``
per second. A request finding it empty is refused with 429 and told when a token will be
there (``Retry-After``), before anything is read or written.

Pure: the caller passes the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["RateLimits", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """Tokens of one key: ``take`` one per request."""

    rate: float
    """Tokens added per second."""
    burst: int
    """Most tokens held (and so most requests at once after a quiet spell)."""
    tokens: float = -1.0
    """Tokens now; a new bucket starts full."""
    updated: float = 0.0

    def take(self, now: float) -> float | None:
        """Take a token at ``now``: ``None`` if there was one, else seconds until there is."""
        if self.tokens < 0:
            self.tokens, self.updated = float(self.burst), now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


@dataclass(slots=True)
class RateLimits:
    """One ``TokenBucket`` per key name; ``rate`` 0 means no limit."""

    rate: float
    burst: int
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> int | None:
        """``None`` if ``key`` may send a request at ``now``, else whole seconds to wait."""
        if self.rate <= 0:
            return None
        bucket = self._buckets.setdefault(key, TokenBucket(self.rate, self.burst))
        wait = bucket.take(now)
        return None if wait is None else max(1, math.ceil(wait))

    def forget_all_but(self, keys: set[str]) -> None:
        """Drop the buckets of revoked keys (so the dict is bounded by the key file)."""
        for name in set(self._buckets) - keys:
            del self._buckets[name]
