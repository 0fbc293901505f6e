"""The config file the apply_config tests start from (docs/config.md's
example), with an upstream key taken from the environment and an imported
key secret that must never be printed."""

from __future__ import annotations

import copy

import yaml

UPSTREAM_KEY = "sk-upstream-0123456789-do-not-print"
IMPORTED_SECRET = "sk-imported-0123456789abcdef"

EXAMPLE = f"""
currency: USD
base_prices:
  text-embedding-3-small: "0.02"
  text-embedding-3-large: 0.13
groups:
  default: {{models: [text-embedding-3-small, text-embedding-3-large], price_ratio: 1.0,
             rpm: 600, tpm: 1000000, concurrency: 50}}
  vip:     {{models: [text-embedding-3-small], prices: {{text-embedding-3-small: "0.016"}},
             rpm: 6000}}
channels:
  openai-main: {{kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY,
                models: [text-embedding-3-small, text-embedding-3-large], groups: [default, vip],
                priority: 0, weight: 10}}
  local-bge:   {{kind: openai, base_url: "http://127.0.0.1:8080/v1", api_key: "sk-local",
                models: {{text-embedding-3-small: "BAAI/bge-m3"}}, groups: [default], priority: 1,
                enabled: false}}
tenants:
  acme: {{name: "Acme Corp", balance: "25.00", groups: [default, vip]}}
keys:
  - {{tenant: acme, group: default, name: ci, secret: "{IMPORTED_SECRET}"}}
  - {{tenant: acme, group: vip, name: batch, rpm: 60, models: [text-embedding-3-small],
     expires: "2027-01-01T00:00:00Z"}}
"""


def example() -> dict:
    return copy.deepcopy(yaml.safe_load(EXAMPLE))
