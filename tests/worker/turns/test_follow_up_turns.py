"""Follow-ups whose subject is only in the earlier turn ("Why does it suit a walking robot?") retrieve the
right chapter offline, through the real worker, on both books of ../shared/corpora (eval/follow_ups.yaml)."""

from __future__ import annotations

import pytest

from eval.answers import load_follow_ups
from tests.conftest import SettingsFactory
from tests.factories import CORPORA
from tests.stack import chat, running_stack


@pytest.mark.parametrize("book", ["book-a", "book-b"])
async def test_follow_ups_retrieve_the_earlier_turns_subject(make_settings: SettingsFactory, book: str) -> None:
    conversations = [c for c in load_follow_ups() if c.book == book]
    assert len(conversations) >= 10
    missed = []
    settings = make_settings(book_source=str(CORPORA / book))
    async with running_stack(settings) as url, chat(url) as client:
        for number, talk in enumerate(conversations):
            conversation = f"{book}-{number}"
            await client.ask(talk.first, conversation_id=conversation)
            follow = await client.ask(talk.then, conversation_id=conversation)
            assert follow.terminal["type"] == "done"
            docs = [s["doc"] for s in follow.of("sources")[0]["sources"]]
            if not set(docs) & set(talk.docs):
                missed.append((talk.then, docs))
            elif not follow.terminal["grounded"]:
                missed.append((talk.then, "declined"))
    assert len(missed) <= len(conversations) // 10, missed
