"""Tunables in one place.

Everything here is a default: each has a per-call override (a `Heavy(...)` argument, a CLI flag or a
strategy option). Changing a value here changes behaviour for every user, so each says why it is what
it is.
"""

from __future__ import annotations

#: Hypotheses per run when the caller does not say. Eight is where self-consistency gains on
#: GSM8K-style tasks flatten for small models while still fitting one provider's burst limits.
DEFAULT_N = 8

#: Sampling temperature for hypotheses: diversity is the point of sampling N times.
DEFAULT_TEMPERATURE = 0.7

#: Temperature for judge/aggregator calls: we want their most likely reading, not variety.
AGGREGATOR_TEMPERATURE = 0.0

#: Default strategy name (resolved through the entry-point registry, never imported by name).
DEFAULT_STRATEGY = "heavy"

#: In-flight requests per provider. High enough to admit the whole fan-out of a typical run
#: (N = 8 .. 64) without queueing; a provider wrapper can lower it for rate-limited accounts.
DEFAULT_PROVIDER_CONCURRENCY = 64

#: Connection pool size of the one shared HTTP client per provider. Must admit the fan-out,
#: otherwise hypotheses queue for a connection and "parallel" sampling is serial in disguise.
HTTP_MAX_CONNECTIONS = 256
HTTP_MAX_KEEPALIVE = 64

#: Per-request network timeouts (seconds). Reading is long because reasoning models may think for
#: minutes before the first byte; connecting is short because a dead host should fail fast.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 600.0
WRITE_TIMEOUT = 30.0
POOL_TIMEOUT = 600.0

#: How much of an error body to keep in a ProviderError (enough to read, never a whole page).
ERROR_BODY_EXCERPT = 500

#: Majority share above which the `heavy` strategy trusts the vote and skips synthesis.
HEAVY_MAJORITY_THRESHOLD = 0.5

#: Candidates longer than this (characters) are cut (keeping head and tail) in aggregator prompts,
#: so N long answers cannot overflow the aggregator's context.
AGGREGATOR_CANDIDATE_CHARS = 6000

#: Default port of `heavy sim`.
SIM_PORT = 8399
