"""Secrets from Secrets Manager, cached per container for a few minutes (never logged).

A GetSecretValue and a dictionary, rather than Powertools' Parameters utility: importing that package
loads every provider (SSM, AppConfig, DynamoDB, JMESPath transforms) and was the largest part of the
webhook's cold import after boto3 (bench/README.md, cold_import); one call and a timestamp do what we use.
"""

from __future__ import annotations

import json
import time

from .aws_clients import client

# Short enough that a rotated webhook secret or API key is picked up within minutes.
SECRET_CACHE_SECONDS = 300
_cache: dict[str, tuple[float, str]] = {}  # secret id -> (when read, text)


def _secret_text(secret_id: str) -> str:
    now = time.monotonic()
    cached = _cache.get(secret_id)
    if cached is not None and now - cached[0] < SECRET_CACHE_SECONDS:
        return cached[1]
    answer = client("secretsmanager").get_secret_value(SecretId=secret_id)
    text = answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"].decode("utf-8")
    _cache[secret_id] = (now, text)
    return str(text)


def cache_clear() -> None:
    """Forget every secret read (tests that change AWS endpoints between cases)."""
    _cache.clear()


def runware_api_key(secret_id: str) -> str:
    """The API key, stored either as the plain secret string or as JSON {"apiKey": ...}."""
    text = _secret_text(secret_id).strip()
    if text.startswith("{"):
        key = json.loads(text).get("apiKey", "")
        return str(key)
    return text


def webhook_secrets(secret_id: str) -> list[str]:
    """Accepted webhook HMAC secrets: current first, then previous (non-empty during a rotation)."""
    text = _secret_text(secret_id)
    try:
        parsed = json.loads(text)
    except ValueError:
        return [text]
    if not isinstance(parsed, dict):
        return [text]
    return [str(parsed[name]) for name in ("current", "previous") if parsed.get(name)]


def signing_secret(secret_id: str) -> str:
    """The secret new webhook URLs are signed with (always the current one)."""
    accepted = webhook_secrets(secret_id)
    if not accepted:
        raise ValueError("the webhook secret holds no 'current' value")
    return accepted[0]
