"""Secrets from Secrets Manager through Powertools' cached parameters (never logged)."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

from .aws_clients import client

# Short enough that a rotated webhook secret or API key is picked up within minutes.
SECRET_CACHE_SECONDS = 300


def _secret_text(secret_id: str) -> str:
    if "secrets" not in DEFAULT_PROVIDERS:
        # Powertools would build its own boto3 session, a cold-start cost (bench/README.md); lend it ours.
        DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(boto3_client=client("secretsmanager"))
    value = parameters.get_secret(secret_id, max_age=SECRET_CACHE_SECONDS)
    return value if isinstance(value, str) else value.decode("utf-8")


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
