"""A fake embeddings server for tests, benchmarks and the demo, speaking the
wire format of every provider the relay has an adaptor for.

Deterministic unit vectors (the same text always gives the same vector,
``vector(text, dimensions)``, whatever the dialect), real cl100k_base token
counts, and behaviour chosen per channel through the URL, so one server can
stand in for many upstreams.

The OpenAI dialect (openai.py), at the root:

    /v1/embeddings                                  a healthy upstream
    /x/status=503/v1/embeddings                     always fails with 503
    /x/latency=200,usage=none/v1/embeddings         slow, and omits usage
    /x/usage=total/v1/...   only total_tokens       /x/usage=zero/v1/...  zeros
    /x/usage=123/v1/...     reports 123 prompt tokens
    /x/floats/v1/...        ignores encoding_format (floats only)
    /x/name=foo/v1/...      reports model "foo"
    /x/key=sk-x/v1/...      requires this credential (401 otherwise)
    /x/lead/v1/...          puts model and usage before data (as Jina does)
    /x/cut=1000/v1/...      hangs up after 1,000 bytes of its answer
    /x/fail_if=X/v1/...     fails with 503 a call with an input containing X
    /x/slow_if=X/v1/...     answers 0.2 s later a call with an input containing X
    /x/reverse/v1/...       lists the vectors last first (each with its index)
    /x/quota/v1/...         the account is out of quota (429 insufficient_quota)
    /openai/deployments/{deployment}/embeddings      Azure's path

The other dialects, each under its kind, so that a channel's ``base_url`` is
``{fake}/{kind}`` plus the provider's own version path, or
``{fake}/x/{options}/{kind}...``:

    gemini   {fake}/gemini       POST /v1beta/models/{model}:batchEmbedContents
    cohere   {fake}/cohere       POST /v2/embed
    voyage   {fake}/voyage/v1    POST /embeddings
    jina     {fake}/jina/v1      POST /embeddings
    mistral  {fake}/mistral/v1   POST /embeddings
    ollama   {fake}/ollama       POST /api/embed
    bedrock  {fake}/bedrock      POST /model/{model id}/invoke (SigV4-signed)

Each checks the provider's authentication, enforces its per-call caps with
the provider's own error status and body, honours its dimension parameter
and reports usage its way. Their options: ``latency=MS``, ``status=N`` (fail
with N, in the dialect's error shape), ``quota`` (the account is out of
money or quota, as that provider says it), ``key=K`` (require this credential;
for Bedrock ``ACCESS_KEY_ID:SECRET``, else the test pair in bedrock.py),
``usage=none`` or ``usage=N``, and ``items=N`` / ``tokens=N`` to lower the
per-call caps so that a test can prove a batch was split.

``GET /_stats`` returns per-route counters (requests, peak concurrency, the
largest call's item count, the last body and credential seen), keyed by the
options for the OpenAI dialect and ``kind:options`` for the others;
``POST /_reset`` clears them.

Run: ``python -m relay.devtools.fake_upstream --port 9100 --latency-ms 20 --processes 2``.
"""

from relay.devtools.fake_upstream.common import encoded, error, parse_options, vector
from relay.devtools.fake_upstream.server import FakeUpstream, main, serve

__all__ = ["FakeUpstream", "encoded", "error", "main", "parse_options", "serve", "vector"]
