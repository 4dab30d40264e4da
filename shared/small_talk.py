"""Greetings, thanks and goodbyes: a short friendly reply instead of a search of the book.

A question counts as small talk only when *all* of it is: "hi", "thanks a lot!", "good morning", "who are
you?". "Hi, what is a topic?" is a question about the book and is answered as one.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

SmallTalk = Literal["greeting", "thanks", "goodbye", "about_me"]

_PHRASES: dict[SmallTalk, tuple[str, ...]] = {
    "greeting": (
        "hi", "hello", "hey", "hiya", "howdy", "yo", "greetings", "good morning", "good afternoon",
        "good evening", "good day", "how are you", "how are you doing", "how is it going", "what's up",
        "whats up", "sup", "hola", "bonjour", "salut", "hallo", "ciao", "namaste", "salaam", "salam",
        "assalamualaikum", "assalamu alaikum", "السلام علیکم", "السلام عليكم", "سلام", "آداب", "مرحبا",
        "नमस्ते", "你好",
    ),
    "thanks": (
        "thanks", "thank you", "thank you so much", "thanks a lot", "many thanks", "thx", "ty", "cheers",
        "great thanks", "ok thanks", "okay thanks", "thanks that helped", "that helped", "that was helpful",
        "perfect thanks", "awesome thanks", "nice", "great", "cool", "ok", "okay", "got it", "gracias",
        "merci", "danke", "شکریہ", "بہت شکریہ", "شكرا", "धन्यवाद", "谢谢",
    ),
    "goodbye": (
        "bye", "goodbye", "bye bye", "see you", "see you later", "good night", "farewell", "خدا حافظ",
        "اللہ حافظ", "مع السلامة",
    ),
    "about_me": ("who are you", "what are you", "what can you do", "are you a bot", "are you human"),
}  # fmt: skip

# Words that may surround a greeting without making it a question: "hi there", "thanks so much, tutor".
_FILLER = {
    "there", "tutor", "so", "very", "much", "again", "all", "everyone", "friend", "bot", "mate", "a", "lot",
    "that", "this", "it", "helped", "helps", "was", "is", "helpful", "really", "today", "for", "the", "help",
}  # fmt: skip

_LOOKUP: dict[str, SmallTalk] = {
    " ".join(phrase.split()): kind for kind, phrases in _PHRASES.items() for phrase in phrases
}


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s']+", " ", text)  # punctuation and emoji go; Urdu and Arabic letters are \w
    return " ".join(text.split())


def small_talk_kind(question: str) -> SmallTalk | None:
    """What kind of small talk the whole question is, or None when it asks something."""
    text = _normalised(question)
    if not text or len(text) > 60:
        return None
    if text in _LOOKUP:
        return _LOOKUP[text]
    words = [w for w in text.split() if w not in _FILLER]
    trimmed = " ".join(words)
    if trimmed in _LOOKUP:
        return _LOOKUP[trimmed]
    # "hello, thanks!" or "hi hi": every part is small talk; the first decides the reply.
    kinds = [_LOOKUP.get(w) for w in words]
    if words and all(kinds):
        return kinds[0]
    return None
