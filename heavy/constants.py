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
HTTP_MAX_CONNECTIONS = 1024

#: Seconds an idle keep-alive connection is kept for reuse: under the shortest common server timer (5 s:
#: uvicorn under `heavy serve`/`heavy sim`, llama-server), so heavy seldom sends on a connection the server
#: is closing, where a POST fails rather than being sent twice (heavy/http_aiohttp.py).
HTTP_KEEPALIVE_EXPIRY = 4.0

#: Seconds a host's resolved addresses are reused: a thousand new connections to one API are one lookup.
HTTP_DNS_TTL = 10

#: Bounds of a response's head (aiohttp's parser enforces them as the bytes arrive): at most this many
#: header lines of at most HTTP_MAX_HEADER_LINE bytes each, so ~2 MiB in the worst case. Real APIs send
#: a few KiB; a server sending more is refused with a ProviderResponseError instead of growing memory.
HTTP_MAX_HEADER_LINE = 16384
HTTP_MAX_HEADERS = 128

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

#: Share of hypotheses sampled as executed programs where code may run (`crosscheck`, and `heavy` with the
#: python tool): 6 chains + 2 programs at N = 8 won on the tuning questions (bench/crosscheck_rules.py).
CROSSCHECK_PROGRAMS = 0.25

#: Candidates longer than this (characters) are cut (keeping head and tail) in aggregator prompts,
#: so N long answers cannot overflow the aggregator's context.
AGGREGATOR_CANDIDATE_CHARS = 6000

#: Default port of `heavy sim`.
SIM_PORT = 8399

# --- heavy local: the embedded llama.cpp model server (`heavy local`, heavy/local/) ----------------

#: Environment variable naming heavy's cache directory, and its default. Builds and model weights
#: (hundreds of MB to GBs) live there, never inside a project.
LOCAL_HOME_ENV = "HEAVY_HOME"
LOCAL_DEFAULT_HOME = "~/.cache/heavy"

#: llama-cpp-python sdist whose vendored llama.cpp we build `llama-server` from. Pinned (with its
#: sha256 in heavy/local/catalog.py) so every machine serves with the same code.
LOCAL_LLAMA_CPP_PYTHON_VERSION = "0.3.36"

#: Where `heavy local start` listens. Must match the `local` preset's default in heavy/models.py
#: (http://127.0.0.1:8377/v1); another port needs HEAVY_LOCAL_BASE_URL.
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 8377

#: The model id llama-server answers to (`--alias`), i.e. the `local` preset's default model.
LOCAL_MODEL_ALIAS = "local"

#: Model served when none is named or recorded by `heavy local setup`: the best answers that still
#: run at ~25 tokens/s on a 2-core CPU.
LOCAL_DEFAULT_MODEL = "qwen2.5-coder-1.5b"

#: Parallel decoding slots (`-np`). llama.cpp batches the slots' tokens into one forward pass, so
#: aggregate tokens/s rises with slots up to a point. Measured for 8 concurrent 128-token answers with
#: qwen2.5-coder-1.5b on 2 cores: 1 slot ~17 tok/s, 2 ~20, 4 ~22 (best), 8 ~15.
LOCAL_DEFAULT_SLOTS = 4

#: Context tokens per slot (llama-server gets `-c slots * this`). Room for a question, a ~300-token
#: answer, and a synthesis prompt holding 8 candidates.
LOCAL_CTX_PER_SLOT = 4096

#: Seconds `heavy local start` waits for /health (loading a GB model from a cold disk is slow);
#: seconds `heavy local stop` waits after SIGTERM before SIGKILL.
LOCAL_START_TIMEOUT = 180.0
LOCAL_STOP_TIMEOUT = 10.0
#: The smoke test of a fresh llama-server build: seconds to load a model and generate, and tokens to generate.
LOCAL_SMOKE_TIMEOUT = 300.0
LOCAL_SMOKE_TOKENS = 4

#: Lines of the server log shown when llama-server dies at startup.
LOCAL_LOG_TAIL_LINES = 15

# --- reliability ------------------------------------------------------------------------------------

#: Attempts per call (the first one included) on retryable errors: connection drops, timeouts,
#: 408/409/429/5xx/529. Four attempts ride out a typical 429 burst without stalling a run for minutes.
RETRY_MAX_ATTEMPTS = 4

#: Exponential backoff: base * 2**attempt, capped, with "full jitter" in [50 %, 100 %] so N siblings
#: that failed together do not come back together.
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 20.0

#: A server's Retry-After is honoured up to this many seconds; a longer wait is not worth holding a
#: Heavy run for, so the call fails and the run decides on what it has.
RETRY_AFTER_CAP = 60.0

#: Retries shared by all hypotheses of one run, per hypothesis: a 429 storm over N siblings may cost
#: at most about this many retries each on average before the run stops retrying.
RETRY_BUDGET_PER_HYPOTHESIS = 2

#: Times one call is sent again after an endpoint refused a field the model profiles did not know of
#: (heavy.providers.adapt): each resend must have learned something new, so a call never loops. Two covers a
#: model refusing two fields heavy sends (OpenAI's errors name one parameter at a time).
LEARNED_RESENDS = 2

#: Burst allowance of the requests/tokens-per-minute limiters, in seconds of the per-minute rate.
RATE_BURST_SECONDS = 6.0

#: Times a hypothesis whose stream broke mid-way is re-sampled from scratch.
STREAM_RESTARTS = 1

# --- OpenAI Responses API (heavy/providers/responses.py) --------------------------------------------

#: Seconds between polls (`GET responses/{id}`) of a background response. The "pro" models the background
#: mode is for think for minutes, so a finished answer waits at most this long to be noticed, while a run of
#: N hypotheses costs N polls every this many seconds.
RESPONSES_POLL_INTERVAL = 2.0

#: Polls in a row that may fail with a retryable error (a dropped connection, a 5xx, a timeout) before a
#: background response is given up (and cancelled): the job on the server is fine, and re-creating it
#: (what a retry of the whole call does) would pay for minutes of thinking again.
RESPONSES_POLL_ATTEMPTS = 3

#: Seconds the best-effort `POST responses/{id}/cancel` of an abandoned background response may take.
RESPONSES_CANCEL_TIMEOUT = 10.0

# --- heavy serve: what a client may ask of the proxy ---------------------------------------------------

#: Ceilings of numeric values a client may set through `heavy serve` (``heavy.options.<name>``, and
#: ``max_tokens`` for the body's max_tokens / max_completion_tokens). Each bounds a multiple of the upstream
#: calls or local work one request causes: ``retries: 300`` on judge would be 300 more aggregator calls.
#: A key ``<strategy>.<option>`` applies to one strategy only. Every built-in default sits below its
#: ceiling (a test checks it). The operator raises one with `heavy serve --option-limit NAME=MAX`.
SERVE_OPTION_LIMITS: dict[str, float] = {
    "retries": 3, "rounds": 4, "iterations": 4, "steps": 4, "layers": 4, "agents": 16, "k": 8, "wave": 16,
    "test_calls": 4, "tests_per_call": 10, "max_tests": 50, "per_test_timeout": 10.0, "draws": 20_000,
    "window": 4096, "tail": 4096, "top_logprobs": 20, "max_tokens": 32_768,
}

#: Ceiling of any numeric option without its own entry above (a third-party strategy's included).
SERVE_DEFAULT_OPTION_LIMIT = 64

#: Options that are identifiers, not amounts: no ceiling (any option whose name ends in "seed" too).
SERVE_UNLIMITED_OPTIONS = ("seed", "shuffle_seed")

#: Options no client may set, whatever the server enables: the sandbox's memory/process/time limits are
#: the operator's protection of the machine. A strategy can mark more with
#: ``Field(json_schema_extra={"operator_only": True})``.
SERVE_OPERATOR_ONLY_OPTIONS = ("sandbox",)

#: Options that run code or reach a tool when set: refused unless the operator enabled python
#: (`heavy serve --tools python`). A strategy can mark more with ``Field(json_schema_extra={"runs_code": True})``;
#: a whole strategy that runs code says so with the class attribute ``runs_code = True``.
SERVE_CODE_OPTIONS = ("verify", "tools")

#: Deepest JSON nesting accepted in a request body (a chat request nests about 5 levels; thousands of
#: levels would exhaust the parser's recursion instead of being a clear 400).
SERVE_MAX_JSON_DEPTH = 32

#: Seconds a client has to send a request's head (from connecting, or from the end of its previous
#: response) and then its body. A client slower than that gets 408 and its connection closed, so slow
#: senders cannot pile up; the body is read in full before the request counts against its client's limit.
SERVE_HEADER_TIMEOUT_S = 10.0
SERVE_BODY_TIMEOUT_S = 30.0

#: Largest request body `heavy serve` and `heavy mcp --http` accept (413 beyond; `--max-body-bytes`), and the
#: requests one client (by address) may have in flight at once (429 beyond; `--max-concurrent`).
SERVE_MAX_BODY_BYTES = 4 * 1024 * 1024
SERVE_MAX_CONCURRENT_PER_CLIENT = 32

#: Most tools one request may offer (OpenAI accepts 128; `heavy serve --max-tools` moves it). Each is sent to
#: every hypothesis, and a 4 MB body holds about 85,000 of them.
SERVE_MAX_TOOLS = 128

#: Most stop sequences one request may give (OpenAI's limit: more are refused upstream anyway).
SERVE_MAX_STOP = 4

#: Strategy options that name models (moa's ``layer_models``): each named model must be one a remote client
#: may name (`--allow-model`). A strategy can mark more with ``Field(json_schema_extra={"names_models": True})``.
SERVE_MODEL_OPTIONS = ("layer_models",)

#: Most hypotheses one run (or one sampling round of a strategy) may ask for. The fan-out is meant to be
#: in flight at once: HTTP_MAX_CONNECTIONS admits 1024 parallel requests, and every hypothesis is kept in
#: memory with its text until the run ends. An N far above this (`heavy ask -n 100000`) is a typo or an
#: attack, not a workload: it took 630 MB in 7 s against the simulator before the cap.
MAX_N = 1024

#: Sandboxes started as root run as uid (and gid) SANDBOX_UID_BASE + the launcher's pid: a uid no other
#: sandbox running at the same time has, so RLIMIT_NPROC (counted per uid) bounds each sandbox alone.
#: 0x70000000 + pid_max (at most 2**22) lies above systemd-nspawn's container range (ends 0x6FFFFFFF)
#: and below systemd's "foreign" range (from 0x7FFF0000); no account should own uids there.
SANDBOX_UID_BASE = 0x70000000
SANDBOX_UID_SPAN = 1 << 22

#: Most hypotheses one `heavy serve` request may ask for (the operator moves it with `heavy serve --max-n`):
#: a client's n multiplies the upstream calls one request causes, as an option ceiling does.
SERVE_MAX_N = 64

#: Probe inputs `execute` derives from the tests to break ties between candidates that pass the same tests
#: (each probe is one extra call per distinct program, run in the same sandbox as the tests). With the one
#: or two examples a user has, ties are the rule; 16 edge-case neighbours of the examples' inputs were
#: enough to separate right from wrong programs on bench/code_tasks.jsonl (docs/benchmarks.md).
EXECUTE_PROBES = 16
