"""Sign-in: id tokens signed with keys made here, verified against a JWKS served over real HTTP. Forged,
expired, wrong-issuer and wrong-audience tokens are refused; rotated keys are fetched; a JWKS that is down
makes sign-in unavailable, not the socket; and a device's anonymous history joins the account."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from fake_cohere.testing import RunningFake
from gateway.reader_auth import InvalidCredentials
from gateway.sign_in import JwksVerifier, SignInUnavailable
from tests.conftest import SettingsFactory
from tests.sign_in_keys import AUDIENCE, ISSUER, Jwks, SigningKey, jwks_server
from tests.stack import chat, running_gateway, running_worker, worker_ready


@contextlib.asynccontextmanager
async def verifier(jwks: Jwks, refetch_min_s: float = 30.0) -> AsyncIterator[JwksVerifier]:
    async with httpx.AsyncClient() as http:
        yield JwksVerifier(jwks.url, ISSUER, AUDIENCE, http, refetch_min_s=refetch_min_s)


def hmac_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """The classic confusion attack, built by hand (PyJWT refuses to sign HS256 with a public key)."""

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).decode().rstrip("=")

    signing_input = f"{part(orjson.dumps(header))}.{part(orjson.dumps({**claims, 'exp': int(time.time()) + 600}))}"
    return f"{signing_input}.{part(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


async def test_good_tokens_name_their_subject_and_bad_ones_are_refused() -> None:
    key, other = SigningKey(), SigningKey()
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = jwt.encode(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
        other.private,
        algorithm="RS256",
        headers={"kid": key.kid},  # claims to be signed by the published key
    )
    bad = {
        "forged": forged,
        "expired": key.token(exp=int(time.time()) - 3600),
        "wrong issuer": key.token(iss="https://evil.example"),
        "wrong audience": key.token(aud="another-app"),
        "no expiry": key.token(exp=None),
        "no subject": key.token(subject=""),
        "alg none": jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, None, algorithm="none"),
        "hmac with the public key": hmac_token(
            {"alg": "HS256", "kid": key.kid}, {"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, public_pem
        ),
        "not a token": "not.a.token",
    }
    async with jwks_server([key]) as jwks, verifier(jwks) as check:
        assert await check.subject(key.token("reader-42")) == "reader-42"
        for name, token in bad.items():
            with pytest.raises(InvalidCredentials):
                await check.subject(token)
                pytest.fail(f"{name} was accepted")
        assert jwks.served == 1, "the key set is fetched once and cached"


async def test_a_rotated_key_is_fetched_and_unknown_key_ids_do_not_hammer_the_jwks() -> None:
    old, new = SigningKey(), SigningKey()
    async with jwks_server([old]) as jwks:
        async with verifier(jwks, refetch_min_s=0) as check:
            assert await check.subject(old.token()) == "reader-42"
            jwks.keys = [old, new]  # the provider rotated its keys
            assert await check.subject(new.token("reader-7")) == "reader-7"
            assert jwks.served == 2
        async with verifier(jwks, refetch_min_s=60) as check:
            assert await check.subject(old.token()) == "reader-42"
            for _ in range(10):
                with pytest.raises(InvalidCredentials):
                    await check.subject(SigningKey().token())  # key ids nobody published
            assert jwks.served == 3, "one fetch for the set, then none for a minute whatever the key ids"


async def test_a_jwks_that_is_down_makes_sign_in_unavailable_until_it_is_back() -> None:
    key = SigningKey()
    async with jwks_server([key]) as jwks, verifier(jwks, refetch_min_s=0) as check:
        jwks.down = True
        with pytest.raises(SignInUnavailable):
            await check.subject(key.token())
        jwks.down = False
        assert await check.subject(key.token()) == "reader-42"
        jwks.down = True  # once the keys are known, a JWKS outage does not matter
        assert await check.subject(key.token()) == "reader-42"


async def test_signed_in_readers_over_the_socket_and_rest(make_settings: SettingsFactory) -> None:
    key = SigningKey()
    async with jwks_server([key]) as jwks:
        settings = make_settings(auth_jwks_url=jwks.url, auth_issuer=ISSUER, auth_audience=AUDIENCE)
        async with running_worker(settings) as worker, running_gateway(settings) as url:
            await worker_ready(worker)
            async with httpx.AsyncClient(base_url=url) as api:
                async with chat(url) as client:
                    # anonymous on this device first: a hello without a token makes a reader
                    await client.send({"type": "hello"})
                    anonymous = await client.receive()
                    turn = await client.ask("What is a URDF?")
                assert worker.state.history_writer is not None
                await worker.state.history_writer.wait_written(1)
                async with chat(url) as client:
                    await client.send(
                        {"type": "hello", "id_token": key.token("ada"), "reader_token": anonymous["reader_token"]}
                    )
                    signed_in = await client.receive()
                    assert signed_in["type"] == "welcome" and "reader_token" not in signed_in
                    for bad in [key.token("ada", exp=int(time.time()) - 3600), SigningKey().token("ada")]:
                        await client.send({"type": "hello", "id_token": bad})
                        refused = await client.receive()
                        assert refused["type"] == "error" and refused["code"] == "unauthorized"
                        assert bad not in str(refused)
                    assert (await client.ask("And what is TF?")).terminal["type"] == "done"
                async with chat(url) as client:  # another device of the same account
                    await client.send({"type": "hello", "id_token": key.token("ada")})
                    assert (await client.receive())["reader_id"] == signed_in["reader_id"]
                listed = await api.get("/api/conversations", headers={"Authorization": f"Bearer {key.token('ada')}"})
                assert listed.status_code == 200
                assert turn.events[0]["conversation_id"] in [c["id"] for c in listed.json()["conversations"]]
                old_token = await api.get(
                    "/api/conversations", headers={"Authorization": f"Bearer {anonymous['reader_token']}"}
                )
                assert old_token.status_code == 401, "the anonymous reader joined the account"
                jwks.down = True
                forged = await api.get(
                    "/api/conversations", headers={"Authorization": f"Bearer {SigningKey().token('ada')}"}
                )
                assert forged.status_code == 401


async def test_a_turn_running_while_its_reader_signs_in_joins_the_account_and_its_conversation_goes_on(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    key = SigningKey()
    async with jwks_server([key]) as jwks:
        settings = cohere_settings(auth_jwks_url=jwks.url, auth_issuer=ISSUER, auth_audience=AUDIENCE)
        async with running_worker(settings) as worker, running_gateway(settings) as url:
            await worker_ready(worker)
            writer = worker.state.history_writer
            assert writer is not None
            await fake_cohere.set_knobs(tokens_per_second=10)
            async with chat(url) as device, chat(url) as signed_in:
                await device.send({"type": "hello"})
                anonymous = await device.receive()
                await device.send({"type": "ask", "question": "What is a URDF?"})
                running = await device.collect(until="delta")
                conversation_id = running.events[0]["conversation_id"]
                await signed_in.send(
                    {"type": "hello", "id_token": key.token("ada"), "reader_token": anonymous["reader_token"]}
                )
                account = await signed_in.receive()
                assert account["type"] == "welcome" and account["reader_id"] != anonymous["reader_id"]
                await device.collect(running)  # its record names the anonymous reader, now joined
                assert running.terminal["type"] == "done"
                await writer.wait_written(1)
                await fake_cohere.set_knobs(tokens_per_second=0)
                follow_up = await signed_in.ask("And how is it loaded?", conversation_id=conversation_id)
                assert follow_up.events[0]["conversation_id"] == conversation_id, "the account continues it"
                await writer.wait_written(2)
            assert writer.dropped == 0
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key.token('ada')}"}) as api:
                opened = (await api.get(f"/api/conversations/{conversation_id}")).json()
            assert [t["turn_id"] for t in opened["turns"]] == [running.turn_id, follow_up.turn_id]
