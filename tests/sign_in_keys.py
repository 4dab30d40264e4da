"""Sign-in for tests: RSA keys made here, the id tokens they sign, and a JWKS served over real HTTP (used by
the gateway's sign-in tests and the browser's)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fake_cohere.testing import serve_asgi

ISSUER = "https://auth.book.example"
AUDIENCE = "physical-ai-tutor"


@dataclass
class SigningKey:
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, subject: str = "reader-42", **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class Jwks:
    keys: list[SigningKey]
    down: bool = False
    served: int = 0
    url: str = ""


@contextlib.asynccontextmanager
async def jwks_server(keys: list[SigningKey]) -> AsyncIterator[Jwks]:
    state = Jwks(keys)

    async def key_set(_request: Request) -> JSONResponse:
        state.served += 1
        if state.down:
            return JSONResponse({"error": "down"}, status_code=503)
        return JSONResponse({"keys": [key.jwk() for key in state.keys]})

    async with serve_asgi(Starlette(routes=[Route("/.well-known/jwks.json", key_set)])) as base:
        state.url = f"{base}/.well-known/jwks.json"
        yield state
