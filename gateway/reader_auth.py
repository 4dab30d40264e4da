"""Who a request or a socket belongs to: a reader token (``POST /api/readers``, or a ``hello`` that made
one) or, with sign-in configured, a verified id token whose subject is the reader. Tokens are compared
through their hashes in the database and are never logged."""

from __future__ import annotations

from typing import Protocol

from shared.db.database import Database
from shared.db.readers import NewReader, create_reader, reader_by_subject, reader_by_token


class InvalidCredentials(Exception):
    """A token that is not one of ours, forged, expired, or for another issuer or audience."""


class IdTokenVerifier(Protocol):
    async def subject(self, id_token: str) -> str:
        """The verified token's stable subject; raises ``InvalidCredentials``."""
        ...


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class ReaderAuth:
    def __init__(self, database: Database, sign_in: IdTokenVerifier | None = None) -> None:
        self._database = database
        self._sign_in = sign_in

    async def create(self) -> NewReader:
        return await create_reader(await self._database.ready_sessions())

    async def by_token(self, token: str) -> str:
        """The reader of a REST bearer: a reader token, or an id token when sign-in is on."""
        if self._sign_in is not None and looks_like_jwt(token):
            return await self.by_id_token(token)
        reader_id = await reader_by_token(await self._database.ready_sessions(), token)
        if reader_id is None:
            raise InvalidCredentials
        return reader_id

    async def by_id_token(self, id_token: str, joining: str | None = None) -> str:
        if self._sign_in is None:
            raise InvalidCredentials
        subject = await self._sign_in.subject(id_token)
        return await reader_by_subject(await self._database.ready_sessions(), subject, joining)
