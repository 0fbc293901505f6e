"""One channel of every provider kind at its dialect of the fake upstream
(relay/devtools/fake_upstream/), for the tests of real clients, of the channel
probe and of the demo: the model each serves, the vector size the fake
answers for it, and a size the provider takes natively."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accounts.models import Group, GroupModel
from relay.devtools.fake_upstream import vector
from relay.devtools.fake_upstream.bedrock import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from relay.models import Channel, ChannelModel

BEARER = "sk-upstream-credential-0001"
BEDROCK_PAIR = f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}"
PRICE_NANOS = 50_000_000  # $0.05 per million tokens


@dataclass(frozen=True)
class Dialect:
    kind: str
    path: str  # the channel's base_url below the fake's root (and its options)
    model: str  # the public name clients ask for
    upstream_model: str  # the provider's name ("": the same)
    native: int  # the fake's vector size for the model
    dimensions: int | None  # a size the provider gives natively; None: it takes none
    credential: str = BEARER

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.model}"

    @property
    def served_as(self) -> str:
        return self.upstream_model or self.model

    @property
    def takes_options(self) -> bool:
        """Azure's deployments path has no ``/x/{options}/`` form in the fake."""
        return self.kind != "azure"

    def base_url(self, fake_url: str, options: str = "") -> str:
        root = f"{fake_url}/x/{options}" if options else fake_url
        return f"{root}/{self.path}".rstrip("/")

    def stats_key(self, options: str = "") -> str:
        """The fake's stats route for this dialect (the OpenAI dialect's and
        Azure's are keyed by the options alone)."""
        return options if self.kind in ("openai", "azure") else f"{self.kind}:{options}"


DIALECTS = (
    Dialect("openai", "v1", "text-embedding-3-small", "", 1536, 64),
    Dialect("azure", "", "text-embedding-3-small", "embed-small-eastus", 1536, 64),
    Dialect("gemini", "gemini", "gemini-embedding-001", "", 3072, 64),
    Dialect("cohere", "cohere", "embed-v4.0", "", 1536, 256),
    Dialect("voyage", "voyage/v1", "voyage-3.5", "", 1024, 256),
    Dialect("jina", "jina/v1", "jina-embeddings-v3", "", 1024, 64),
    Dialect("mistral", "mistral/v1", "mistral-embed", "", 1024, None),
    Dialect("mistral", "mistral/v1", "codestral-embed", "", 1536, 64),
    Dialect("ollama", "ollama", "all-minilm", "", 384, None),
    # Titan takes one text a call: every batch is split into calls of one.
    Dialect(
        "bedrock",
        "bedrock",
        "titan-embed-text-v2",
        "amazon.titan-embed-text-v2:0",
        1024,
        256,
        BEDROCK_PAIR,
    ),
    Dialect("bedrock", "bedrock", "cohere.embed-english-v3", "", 1024, None, BEDROCK_PAIR),
)
WITH_DIMENSIONS = tuple(d for d in DIALECTS if d.dimensions is not None)


def priced_group(name: str, dialects) -> Group:
    group = Group.objects.create(name=name)
    for dialect in dialects:
        GroupModel.objects.get_or_create(
            group=group, model=dialect.model, defaults={"price_per_mtok_nanos": PRICE_NANOS}
        )
    return group


def dialect_channel(
    group: Group | None,
    fake_url: str,
    dialect: Dialect,
    *,
    options: str = "",
    credential: str | None = None,
) -> Channel:
    """A channel of ``dialect``'s kind at its dialect of the fake, serving its model."""
    channel = Channel.objects.create(
        name=f"{dialect.kind}-{dialect.model}".replace(".", "-").replace(":", "-"),
        kind=dialect.kind,
        base_url=dialect.base_url(fake_url, options),
        credential=dialect.credential if credential is None else credential,
    )
    if group is not None:
        channel.groups.add(group)
    ChannelModel.objects.create(
        channel=channel, model=dialect.model, upstream_model=dialect.upstream_model
    )
    return channel


def expected(texts: list[str], dimensions: int) -> np.ndarray:
    """The fake's vectors of ``texts``, one row each, as float32."""
    return np.array([vector(text, dimensions) for text in texts], dtype=np.float32)


def as_float32(rows) -> np.ndarray:
    """A client's vectors as float32 rows (JSON floats round to the same float32)."""
    return np.array([np.asarray(row, dtype=np.float64) for row in rows]).astype(np.float32)
