"""Settings from the environment or `.env` (see `.env.example`). Nothing connects at import time."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.locales import LOCALES

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/prakerja.db"
DEV_PII_KEY = "dev-only-change-me"
# Telegram allows 1–256 of these characters in a webhook secret; we want at least 32 of them (about 190 bits).
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,256}")
MIN_PII_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    bot_api_url: str = "https://api.telegram.org"
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # Comma-separated in the environment; NoDecode stops pydantic-settings from reading them as JSON first.
    staff_chat_id: Annotated[list[int], NoDecode] = []
    agent_ids: Annotated[list[int], NoDecode] = []
    admin_ids: Annotated[list[int], NoDecode] = []
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    default_locale: str = "id"
    pii_hash_key: SecretStr = SecretStr(DEV_PII_KEY)
    # Only for `prakerja-bot rehash` (key rotation): the key the stored hashes were made with.
    pii_hash_key_old: SecretStr | None = None
    log_format: Literal["json", "text"] = "json"
    # What Telegram lets a bot send into one group in any minute: messages, and forum topics created.
    staff_messages_per_minute: int = 20
    staff_topics_per_minute: int = 20
    # Flood throttle per participant (bot/handlers/throttle.py): updates at once, then updates a second, and the
    # quiet seconds that end a burst.
    flood_burst: float = Field(default=20.0, gt=0)
    flood_rate: float = Field(default=2.0, gt=0)
    flood_quiet: float = Field(default=10.0, gt=0)
    retention_days: int = 30  # days that personal data (sent messages, questions, case chats) is kept
    # /metrics: served on the webhook port only with this bearer token; or on its own address (METRICS_HOST/PORT,
    # e.g. 127.0.0.1 for a local Prometheus). Neither set: not served at all.
    metrics_token: SecretStr | None = None
    metrics_host: str | None = None
    metrics_port: int | None = None
    # The web console's public address (login links point there), e.g. https://helpdesk.example.org
    web_url: str = "http://127.0.0.1:8080"

    @field_validator("staff_chat_id", "agent_ids", "admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("metrics_token", "metrics_host", "metrics_port", "pii_hash_key_old", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `METRICS_TOKEN=` as copied from .env.example means "not set", never "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError("DEFAULT_LOCALE must be 'id' or 'en'")
        return value

    @property
    def pii_key(self) -> bytes:
        return self.pii_hash_key.get_secret_value().encode()

    def require_production_secrets(self) -> None:
        """Real participants' data: refuse the development placeholder key (or one short enough to guess): with it,
        the stored NIK hashes fall to a brute force in seconds (birth date and last 4 digits are stored in clear)."""
        key = self.pii_hash_key.get_secret_value()
        if key == DEV_PII_KEY:
            raise ValueError(
                "PII_HASH_KEY is the development placeholder; set a real secret (e.g. `openssl rand -hex 32`)"
            )
        if len(key) < MIN_PII_KEY_LENGTH:
            raise ValueError(
                f"PII_HASH_KEY is shorter than {MIN_PII_KEY_LENGTH} characters; use `openssl rand -hex 32`"
            )

    def require_webhook_secret(self) -> str:
        """The secret Telegram sends back with every update: an empty or short one would let anyone post updates."""
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret is not None else ""
        if not secret:
            raise ValueError("WEBHOOK_SECRET is not set: Telegram must prove each request is its own")
        if not WEBHOOK_SECRET_PATTERN.fullmatch(secret):
            raise ValueError(
                "WEBHOOK_SECRET must be 32–256 characters of A-Z, a-z, 0-9, _ and - (e.g. `openssl rand -hex 32`)"
            )
        return secret
