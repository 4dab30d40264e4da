"""Answers a reader can trust, through the real worker and gateway: declines with the nearest chapters, small
talk, ``grounded`` and ``suggestions`` on ``done``, code, the reader's language and level, and follow-ups on the
Cohere path (the fake Cohere server through the real SDK)."""

from __future__ import annotations

from fake_cohere.testing import RunningFake
from tests.conftest import SettingsFactory
from tests.stack import Turn, chat, running_stack
from worker.turns.reader_language import LINES
from worker.turns.system_prompt import LEVEL_PROMPTS

NOT_IN_BOOK = LINES["en"]["not_in_book"] + " The sources listed are the nearest chapters it has."


def assert_declined(turn: Turn, answer: str) -> None:
    done = turn.terminal
    assert done["type"] == "done" and done["grounded"] is False and done["suggestions"] == []
    assert done["answer"] == turn.text == answer
    assert turn.of("citation") == [], "a declined answer cites nothing"


async def test_a_question_the_book_does_not_cover_is_declined_with_the_nearest_chapters(
    make_settings: SettingsFactory,
) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        turn = await client.ask("What's the weather like in Paris today?")
    assert_declined(turn, NOT_IN_BOOK)
    sources = turn.of("sources")[0]["sources"]
    assert 1 <= len(sources) <= 3 and len({s["doc"] for s in sources}) == len(sources), "one per chapter"
    assert all(s["url"].startswith("/docs/") for s in sources)


async def test_a_new_subject_after_a_covered_one_is_judged_on_its_own(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        first = await client.ask("What is a ROS 2 topic?", conversation_id="switch")
        switched = await client.ask("What's the weather like in Paris today?", conversation_id="switch")
    assert first.terminal["grounded"] is True
    assert_declined(switched, NOT_IN_BOOK)


async def test_small_talk_gets_a_short_reply_without_sources(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        hello = await client.ask("Hello there!")
        thanks = await client.ask("thanks!")
    assert_declined(hello, LINES["en"]["greeting"])
    assert_declined(thanks, LINES["en"]["thanks"])
    assert hello.of("sources")[0]["sources"] == []


async def test_a_grounded_answer_suggests_questions_the_book_answers(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        turn = await client.ask("What is a ROS 2 topic?")
        done = turn.terminal
        assert done["grounded"] is True and turn.of("citation")
        assert 1 <= len(done["suggestions"]) <= 3
        assert all(s.endswith("?") and len(s) <= 80 for s in done["suggestions"])
        follow = await client.ask(done["suggestions"][0])
    assert follow.terminal["grounded"] is True, "a suggested question is one the book answers"


async def test_code_is_quoted_fenced_and_cited_when_asked_for(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        turn = await client.ask("Show me a Python publisher in rclpy")
    answer = turn.terminal["answer"]
    assert "```python\n" in answer and "create_publisher" in answer
    fenced = [c for c in turn.of("citation") if c["text"].startswith("```python")]
    assert fenced and answer[fenced[0]["start"] : fenced[0]["end"]] == fenced[0]["text"]


async def test_offline_the_answer_stays_english_and_says_so_in_the_readers_language(
    make_settings: SettingsFactory,
) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        asked_in_english = await client.ask("What is a ROS 2 topic?", language="ur")
        asked_in_urdu = await client.ask("ROS 2 میں ٹاپک کیا ہوتا ہے؟")
    answer = asked_in_english.terminal["answer"]
    assert answer.startswith(LINES["ur"]["english_only"] + "\n\n") and "topic" in answer
    assert asked_in_english.terminal["grounded"] is True
    # BM25 cannot match Urdu words to the English book: offline, that is said in Urdu
    assert_declined(asked_in_urdu, LINES["ur"]["not_in_book"])


async def test_a_language_that_is_not_bcp47_is_refused(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        await client.send({"type": "ask", "question": "What is a topic?", "language": "klingonese"})
        error = await client.receive()
        await client.send({"type": "ask", "question": "What is a topic?", "level": "expert"})
        level_error = await client.receive()
    assert error["type"] == level_error["type"] == "error"
    assert error["code"] == level_error["code"] == "invalid_frame" and "klingonese" not in error["message"]


async def test_cohere_declines_below_the_rerank_threshold_without_a_chat_call(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        turn = await client.ask("How do I bake sourdough bread at home?")
    assert_declined(turn, NOT_IN_BOOK)
    assert fake_cohere.stats()["requests"]["chat"] == 0
    assert fake_cohere.stats()["requests"]["rerank"] == 1


async def test_cohere_answers_in_the_readers_language_and_level(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        level = await client.ask("How does a humanoid robot keep its balance?", level="beginner", language="ur")
        system = fake_cohere.stats()["last_chat_request"]["messages"][0]["content"]
        detected = await client.ask("ROS 2 topic کیا ہوتا ہے؟")
        detected_system = fake_cohere.stats()["last_chat_request"]["messages"][0]["content"]
    assert level.terminal["grounded"] is True and level.terminal["provider"] == "cohere"
    assert "Answer in Urdu (language tag ur)" in system and LEVEL_PROMPTS["beginner"] in system
    assert detected.terminal["type"] == "done" and "Answer in Urdu" in detected_system


async def test_cohere_follow_ups_retrieve_with_the_previous_question(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        await client.ask("What is the zero moment point?", conversation_id="zmp")
        follow = await client.ask("Why does it matter when walking?", conversation_id="zmp")
    assert follow.terminal["grounded"] is True
    sources = follow.of("sources")[0]["sources"]
    assert "balance" in sources[0]["doc"], [s["doc"] for s in sources]


async def test_a_model_answer_that_cites_nothing_is_not_grounded(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    selection = "The zero moment point must stay inside the support polygon."
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        # a selection is always answered; the fake model (English words only) finds nothing in it for this
        # question and says so, citing nothing
        turn = await client.ask("یہ کیا ہے؟", selected_text=selection)
    assert fake_cohere.stats()["requests"]["chat"] == 1
    assert turn.of("citation") == [] and turn.terminal["grounded"] is False and turn.terminal["suggestions"] == []
