"""Sign-in with the book's own accounts: an id token (a JWT from Better-Auth's JWT plugin, or any OpenID
provider) verified against the provider's JWKS. The key set is fetched with httpx (async, unlike PyJWT's
``PyJWKClient``), cached, and fetched again when a token names a key id it does not have (the provider
rotated its keys), at most once per ``REFETCH_MIN_S``. Signature, ``exp``, ``iss`` and ``aud`` are checked;
the reader is the token's ``sub``. Only asymmetric algorithms are accepted: a token signed with the
public key as an HMAC secret, or with ``alg: none``, is refused."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import jwt

from gateway.reader_auth import InvalidCredentials

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
REFETCH_MIN_S = 30.0
FETCH_TIMEOUT_S = 5.0
LEEWAY_S = 30  # clocks differ a little between the provider and us
MAX_JWKS_BYTES = 256 * 1024


class SignInUnavailable(Exception):
    """The key set cannot be fetched and no cached key fits: not the reader's fault, try again later."""


class JwksVerifier:
    def __init__(
        self, jwks_url: str, issuer: str, audience: str, http: httpx.AsyncClient, refetch_min_s: float = REFETCH_MIN_S
    ) -> None:
        self._url = jwks_url
        self._refetch_min_s = refetch_min_s
        self._tried_at = -refetch_min_s
        self._issuer = issuer
        self._audience = audience
        self._http = http
        self._keys: dict[str | None, Any] = {}
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def subject(self, id_token: str) -> str:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise InvalidCredentials from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidCredentials
        key = await self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                id_token,
                key=key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            raise InvalidCredentials from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise InvalidCredentials
        return subject

    async def _key(self, kid: str | None) -> Any:
        if (key := self._known(kid)) is not None:
            return key
        async with self._lock:
            if (key := self._known(kid)) is not None:
                return key  # fetched by a concurrent call meanwhile
            if time.monotonic() - self._tried_at < self._refetch_min_s:
                # the set was fetched (or found down) a moment ago: do not ask again for every token
                if not self._keys:
                    raise SignInUnavailable
                raise InvalidCredentials
            await self._fetch()
        if (key := self._known(kid)) is not None:
            return key
        raise InvalidCredentials

    def _known(self, kid: str | None) -> Any:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # a token without a key id, from a set of one key
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        import httpx  # already loaded by whoever built self._http; see gateway.app.sign_in_client

        self.fetches += 1
        self._tried_at = time.monotonic()
        try:
            response = await self._http.get(self._url, timeout=FETCH_TIMEOUT_S)
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError("the key set is too large")
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            logger.warning("sign-in keys could not be fetched (%s)", type(exc).__name__)
            if not self._keys:
                raise SignInUnavailable from None
            raise InvalidCredentials from None  # a key id we do not have, and no way to learn it now
        self._keys = {key.key_id: key.key for key in key_set.keys}
