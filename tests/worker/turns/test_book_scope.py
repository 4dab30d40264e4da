"""Whether the book covers a question: the share of its content, weighted by rarity, in the best passage."""

from __future__ import annotations

from tests.factories import passage
from worker.knowledge.vocabulary import TermRarity
from worker.turns.book_scope import content_terms, coverage, offline_covers, rerank_covers

RARITY = TermRarity(passages=100, frequency={"robot": 90, "balanc": 5, "zmp": 3, "humanoid": 40})


def test_asking_words_are_not_content() -> None:
    assert content_terms("Can you explain how a humanoid keeps its balance, with an example?") == {
        "humanoid", "keep", "balanc"
    }  # fmt: skip


def test_coverage_weighs_the_rare_words_of_the_question() -> None:
    best = "A humanoid robot keeps its balance by keeping the ZMP inside the support polygon."
    assert coverage("How does a humanoid keep its balance?", best, RARITY) == 1.0
    weather = coverage("What is the weather in Paris for the robot?", best, RARITY)
    assert 0 < weather < 0.2, "sharing only a common word covers little"
    assert coverage("Why?", best, RARITY) == 1.0, "nothing asked, nothing missing"


def test_each_path_decides_on_its_own_measure() -> None:
    best = passage(text="The zero moment point (ZMP) keeps a humanoid balanced.", score=0.9)
    assert offline_covers("What is the ZMP of a humanoid?", [best], RARITY, 0.36)
    assert not offline_covers("How do I bake sourdough bread?", [best], RARITY, 0.36)
    assert not offline_covers("What is the ZMP?", [], RARITY, 0.36)
    assert rerank_covers([best], 0.5) and not rerank_covers([best], 0.95) and not rerank_covers([], 0.1)
