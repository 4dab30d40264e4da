"""The service's configuration: one typed object read from environment variables.

Built by each process at start-up (``load_settings``), never at import time, so tests can pass their
own ``Settings(...)``. Keys are ``SecretStr``: their values only leave this object when a client is built.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BOOK = PROJECT_ROOT / "book" / "docs"
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "physical-ai-tutor"

# Values people paste from templates; a key like this is a mistake, not a key.
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "changethis", "your-api-key", "your_api_key", "xxx", "..."}


class ConfigurationError(SystemExit):
    """Raised instead of a traceback: one line that names the variable and what is wrong."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, frozen=True, hide_input_in_errors=True
    )

    # --- process and storage ---
    role: Literal["all", "gateway", "worker"] = Field(
        "all",
        description="What this process runs: 'all' (supervisord: Redis, gateway, worker) or one of 'gateway' and "
        "'worker' alone, on an external REDIS_URL.",
    )
    port: int = Field(7860, ge=1, le=65535, description="Port the gateway listens on (Spaces: 7860).")
    host: str = Field("0.0.0.0", description="Address the gateway binds.")
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Everything the stack writes at run time.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    redis_url: str | None = Field(
        None,
        validate_default=True,
        description="Redis address; default is the embedded server's unix socket under DATA_DIR (ROLE=all only).",
    )

    # --- Qdrant ---
    qdrant_url: AnyHttpUrl | None = Field(None, description="Qdrant server; unset means embedded local mode.")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = Field("physical_ai_book", pattern=r"^[A-Za-z0-9_\-]{1,64}$")

    # --- Cohere ---
    cohere_api_key: SecretStr | None = None
    cohere_base_url: AnyHttpUrl | None = Field(None, description="Override Cohere's API address.")
    cohere_chat_model: str = "command-a-03-2025"
    cohere_embed_model: str = "embed-v4.0"
    cohere_embed_dimension: int = Field(1024, ge=8, le=4096)
    cohere_rerank_model: str = "rerank-v3.5"
    cohere_timeout_s: float = Field(30.0, gt=0)
    # Limits shared by every worker through Redis (0 = none). A trial key allows about 20 chat calls a
    # minute, a production key 500; embed allows 2,000 inputs a minute.
    cohere_chat_per_minute: float = Field(0, ge=0)
    cohere_embed_inputs_per_minute: float = Field(0, ge=0)
    cohere_rerank_per_minute: float = Field(0, ge=0)
    cohere_limit_max_wait_s: float = Field(
        20.0, ge=0, description="How long a turn may wait for the Cohere rate limit before it gives up."
    )

    # --- the book ---
    book_source: str = Field(
        str(DEFAULT_BOOK), description="A folder of Markdown/MDX, or a Docusaurus site's sitemap.xml URL."
    )
    book_base_url: str = Field("/docs", description="Where the book is published; source links start here.")
    reindex_every_s: float = Field(
        0.0, ge=0, description="Queue an incremental re-index of BOOK_SOURCE this often; 0 never does."
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API (/api/admin/*); unset switches that API off."
    )
    admin_failures_per_minute_per_client: float = Field(
        10, ge=0, description="Failed admin token attempts per client address a minute, after 5 at once; 0: no limit."
    )

    # --- retrieval and turns ---
    retrieval_top_k: int = Field(5, ge=1, le=20)
    retrieval_candidates: int = Field(20, ge=1, le=100)
    offline_min_coverage: float = Field(
        0.36,
        ge=0,
        le=1,
        description="Offline: below this share of the question's content (IDF-weighted) in the best passage, "
        "the answer says the book does not cover it.",
    )
    rerank_min_relevance: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Cohere path: below this rerank relevance score of the best passage, the answer says the book "
        "does not cover the question (no chat call).",
    )
    turn_timeout_s: float = Field(60.0, gt=0, description="Longest a turn may run before it ends in error.")
    turn_events_ttl_s: int = Field(3600, ge=10, description="How long a turn's events stay resumable.")
    resume_grace_s: float = Field(
        15.0, ge=0, description="How long a turn keeps generating after its socket closed, awaiting a resume."
    )
    conversation_ttl_s: int = Field(86400, ge=60)
    conversation_max_turns: int = Field(6, ge=0, le=50, description="Earlier turns sent to the model.")
    max_question_chars: int = Field(2000, ge=10)
    max_selected_text_chars: int = Field(8000, ge=0)
    max_frame_bytes: int = Field(64 * 1024, ge=1024)
    worker_max_jobs: int = Field(200, ge=1)
    record_timings: bool = Field(False, description="Benchmarks: record per-turn queue-hop timings in Redis.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated browser origins (besides the service's own) allowed to open sockets and call "
        "the REST API; '*' allows any.",
    )
    space_id: str | None = Field(
        None, description="Set by Hugging Face Spaces; makes TRUST_PROXY_HEADERS default to true."
    )
    public_origin: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The service's own origin(s), scheme://host[:port], comma-separated (default on Spaces: "
        "https://$SPACE_HOST): its pages may open sockets, and redirects point there.",
    )
    space_host: str | None = Field(None, description="Set by Hugging Face Spaces: the Space's host name.")
    trust_proxy_headers: bool = Field(
        False, description="Take the client address from X-Forwarded-For (default true when SPACE_ID is set)."
    )
    asks_per_minute_per_client: float = Field(30, ge=0, description="0 disables the per-client ask limit.")
    max_sockets_per_client: int = Field(20, ge=1)
    resume_cancel_per_minute_per_socket: float = Field(
        60, ge=0, description="resume and cancel frames a socket may send a minute (bursts of 10); 0 disables."
    )
    max_pending_turns: int = Field(1000, ge=1, description="Queued + running turns before asks get 'busy'.")
    max_http_head_bytes: int = Field(
        32 * 1024, ge=4096, description="Largest HTTP request head (request line and headers); larger gets 400."
    )
    max_request_body_bytes: int = Field(128 * 1024, ge=1024, description="Largest body of an /api/* request (413).")
    http_request_timeout_s: float = Field(
        10.0, gt=0, description="Time for a request head to arrive (from the connection's opening), then its body."
    )
    max_http_connections: int = Field(
        512, ge=1, description="HTTP connections (not WebSockets) open at once per gateway process; more get 503."
    )
    max_events_per_turn: int = Field(20_000, ge=100)
    max_outbound_frames: int = Field(5_000, ge=10, description="Undelivered frames before a slow socket is closed.")
    shutdown_grace_s: float = Field(4.0, ge=0, description="On SIGTERM, how long turns in flight may finish.")

    # --- durable memory (shared/db) ---
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host/db (e.g. Neon's pooler); unset: SQLite under DATA_DIR."
    )
    database_pool_size: int = Field(5, ge=1, le=100, description="Connections kept per process (plus as many more).")
    history_retention_days: int = Field(180, ge=1, description="Conversations idle longer than this are purged.")
    auth_jwks_url: AnyHttpUrl | None = Field(None, description="The book's sign-in JWKS; enables id_token sign-in.")
    auth_issuer: str | None = Field(None, description="The `iss` an id_token must carry.")
    auth_audience: str | None = Field(None, description="The `aud` an id_token must carry.")

    @field_validator("allowed_origins", "public_origin", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_origin", mode="after")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            normal = normalize_origin(origin)
            if normal is None:
                raise ValueError("each must be an origin: http(s)://host[:port], with no path")
            origins.append(normal)
        return origins

    @field_validator("database_url", mode="after")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        raw = value.get_secret_value().strip()
        if not raw.startswith(("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")):
            raise ValueError("must start with postgresql:// (or postgres://, or sqlite:/// for a file)")
        return SecretStr(raw)

    @field_validator("cohere_api_key", "qdrant_api_key", "admin_token", mode="after")
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None  # an empty variable means "not set"
        if raw.lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder, not a real key")
        return SecretStr(raw)

    @field_validator("admin_token", mode="after")
    @classmethod
    def _admin_token_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it guards the admin API)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        if not value and info.data.get("role") in {"gateway", "worker"}:
            # only ROLE=all runs a Redis of its own; a lone replica would wait on a socket nobody serves
            raise ValueError(f"required when ROLE={info.data['role']} (the Redis shared by every replica)")
        return value or None

    @model_validator(mode="before")
    @classmethod
    def _trust_the_spaces_proxy(cls, data: Any) -> Any:
        """On Spaces every request comes through its proxy, so its X-Forwarded-For is the reader's address;
        an explicit TRUST_PROXY_HEADERS still wins."""
        if isinstance(data, dict) and data.get("space_id") and data.get("trust_proxy_headers") in (None, ""):
            return {**data, "trust_proxy_headers": True}
        return data

    @model_validator(mode="after")
    def _sign_in_is_complete(self) -> Settings:
        if self.auth_jwks_url is not None and not (self.auth_issuer and self.auth_audience):
            raise ValueError("AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE")
        return self

    @model_validator(mode="after")
    def _candidates_cover_top_k(self) -> Settings:
        if self.retrieval_candidates < self.retrieval_top_k:
            raise ValueError("RETRIEVAL_CANDIDATES must be at least RETRIEVAL_TOP_K")
        return self

    # --- derived values ---
    @property
    def cohere_enabled(self) -> bool:
        return self.cohere_api_key is not None

    @property
    def provider(self) -> Literal["cohere", "offline"]:
        return "cohere" if self.cohere_enabled else "offline"

    @property
    def redis_socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"unix://{self.redis_socket_path}"

    @property
    def public_origins(self) -> list[str]:
        """The service's own origins: PUBLIC_ORIGIN, else the Space's address on Spaces, else none known."""
        if self.public_origin:
            return self.public_origin
        return [f"https://{self.space_host.lower()}"] if self.space_host else []

    @property
    def sqlite_path(self) -> Path:
        """The embedded database used when DATABASE_URL is unset."""
        return self.data_dir / "tutor.sqlite3"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    def secret_values(self) -> list[str]:
        """Every configured secret, so that log filters can mask them wherever they appear."""
        secrets = [self.cohere_api_key, self.qdrant_api_key, self.admin_token, self.database_url]
        values = [s.get_secret_value() for s in secrets if s is not None]
        if self.database_url is not None:
            # a driver's error may quote the password alone
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                values.append(unquote(password))
        return values


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None when ``value`` is no origin."""
    try:
        parts = urlsplit(value.strip().rstrip("/"))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.username:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")


def load_settings(**overrides: object) -> Settings:
    """Read the environment; on a bad value stop with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        variable = loc[0].upper() if loc else "configuration"
        raise ConfigurationError(f"configuration error: {variable}: {first['msg']}") from None
