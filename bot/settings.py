"""Settings from the environment or `.env` (see `.env.example`). Nothing connects at import time."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/prakerja.db"
DEV_PII_KEY = "dev-only-change-me"


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
    log_format: Literal["json", "text"] = "json"
    # What Telegram lets a bot send into one group in any minute: messages, and forum topics created.
    staff_messages_per_minute: int = 20
    staff_topics_per_minute: int = 20
    retention_days: int = 30  # days that personal data (sent messages, questions, case chats) is kept

    @field_validator("staff_chat_id", "agent_ids", "admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in ("id", "en"):
            raise ValueError("DEFAULT_LOCALE must be 'id' or 'en'")
        return value

    @property
    def pii_key(self) -> bytes:
        return self.pii_hash_key.get_secret_value().encode()

    def require_production_secrets(self) -> None:
        """Webhook workers serve real participants: refuse to start on the development placeholder key."""
        if self.pii_hash_key.get_secret_value() == DEV_PII_KEY:
            raise ValueError("PII_HASH_KEY is the development placeholder; set a real secret")
