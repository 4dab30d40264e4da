"""The fake server's behaviour settings, changeable at run time (``PUT /_fake/knobs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Endpoint = Literal["embed", "rerank", "chat"]
ENDPOINTS: tuple[Endpoint, ...] = ("embed", "rerank", "chat")


def _all_endpoints() -> list[Endpoint]:
    return list(ENDPOINTS)


def _no_rate_limits() -> dict[Endpoint, int | None]:
    return dict.fromkeys(ENDPOINTS)


class Knobs(BaseModel):
    """How the fake behaves. Every field has a harmless default: fast, correct, never failing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- latency ---
    embed_latency_ms: float = Field(0, ge=0, description="Delay before every embed answer.")
    rerank_latency_ms: float = Field(0, ge=0, description="Delay before every rerank answer.")
    chat_first_token_ms: float = Field(0, ge=0, description="Delay before the first chat token.")
    tokens_per_second: float = Field(0, ge=0, description="Chat token pace; 0 means as fast as possible.")

    # --- injected failures ---
    fail_status: int | None = Field(None, ge=400, le=599, description="Status of the injected failures.")
    fail_count: int = Field(0, ge=0, description="How many of the next requests fail (counts down).")
    fail_endpoints: list[Endpoint] = Field(default_factory=_all_endpoints)
    retry_after_ms: int = Field(
        1000, ge=1, description="Advertised wait on injected 429/503 (`retry-after` and `retry-after-ms`)."
    )
    break_stream_after_tokens: int | None = Field(
        None, ge=0, description="Cut chat streams (no message-end) after this many content-delta events."
    )

    # --- limits ---
    rate_limit_per_minute: dict[Endpoint, int | None] = Field(default_factory=_no_rate_limits)
    max_texts_per_embed: int = Field(96, ge=1, description="Cohere's limit of texts per embed call.")

    # --- content ---
    embed_dimension: int = Field(1024, ge=8, le=8192, description="Used when the request has no dimension.")
    answer_sentences: int = Field(3, ge=1, description="Sentences in a grounded chat answer.")

    def updated(self, changes: dict[str, Any]) -> Knobs:
        """A validated copy with ``changes`` applied (a partial update); raises ``ValidationError``."""
        merged = self.model_dump()
        if "rate_limit_per_minute" in changes and isinstance(changes["rate_limit_per_minute"], dict):
            limits = dict(merged["rate_limit_per_minute"])
            limits.update(changes["rate_limit_per_minute"])
            changes = {**changes, "rate_limit_per_minute": limits}
        merged.update(changes)
        return Knobs.model_validate(merged)

    def fails(self, endpoint: Endpoint) -> bool:
        return self.fail_status is not None and self.fail_count > 0 and endpoint in self.fail_endpoints
