"""The reader's language: the ask's ``language`` when given, else read from the script of the question.

Script detection is exact where it is used (Urdu's own letters, Devanagari, Han, Hangul…) and never guesses
between Latin-script languages: for those the Cohere path is told to answer in the question's own language,
which the model reads better than any detector of a ten-word question. Offline the answer is the book's
English, and one line in the reader's language says so (``LINES``: a few languages, written for this project).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import langcodes

Line = Literal["english_only", "not_in_book", "greeting", "thanks", "goodbye", "about_me"]
Reply = Literal["not_in_book", "greeting", "thanks", "goodbye", "about_me"]

# Letters Urdu uses and Arabic does not (ٹ ڈ ڑ ں ھ ے ۓ); Persian shares پ چ ژ گ with Urdu, not these.
_URDU_LETTERS = frozenset("ٹڈڑںھےۓ")
_PERSIAN_HINTS = frozenset("پچژگ")
# The first word of a Unicode character name, for scripts whose language is unambiguous enough.
_SCRIPT_LANGUAGE = {
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "GURMUKHI": "pa",
    "GUJARATI": "gu",
    "TAMIL": "ta",
    "TELUGU": "te",
    "KANNADA": "kn",
    "MALAYALAM": "ml",
    "THAI": "th",
    "HANGUL": "ko",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "CJK": "zh",
    "HEBREW": "he",
    "GREEK": "el",
    "CYRILLIC": "ru",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
    "ETHIOPIC": "am",
}


@dataclass(frozen=True)
class ReaderLanguage:
    tag: str | None
    """BCP 47 tag, or None when neither the ask nor the script says (a Latin-script question)."""

    @property
    def base(self) -> str | None:
        return langcodes.Language.get(self.tag).language if self.tag else None

    @property
    def is_english(self) -> bool:
        return self.base == "en"

    @property
    def name(self) -> str | None:
        """The language's English name, for the system prompt ("Urdu", "Chinese (Traditional)")."""
        return langcodes.Language.get(self.tag).display_name() if self.tag else None

    def line(self, which: Reply) -> str:
        """One of the fixed lines in this language when it is one of the few written here, else English."""
        return LINES.get(self.base or "en", {}).get(which) or LINES["en"][which]

    def english_note(self) -> str | None:
        """Offline: the line that says the answer is the book's English, in the reader's language."""
        if self.base is None or self.is_english:
            return None
        return LINES.get(self.base, {}).get("english_only")


def detect_script_language(text: str) -> str | None:
    """The language the question's letters say, or None (Latin script, digits only, mixed evenly)."""
    counts: dict[str, int] = {}
    arabic_script = urdu = persian = latin = 0
    for char in text:
        if not char.isalpha():
            continue
        if char in _URDU_LETTERS:
            urdu += 1
        if char in _PERSIAN_HINTS:
            persian += 1
        name = unicodedata.name(char, "")
        script = name.split(" ", 1)[0]
        if script == "ARABIC":
            arabic_script += 1
        elif script == "LATIN":
            latin += 1
        elif script in _SCRIPT_LANGUAGE:
            language = _SCRIPT_LANGUAGE[script]
            counts[language] = counts.get(language, 0) + 1
    if arabic_script:
        # Urdu and Persian share most letters with Arabic; their own letters decide, Arabic otherwise.
        counts["ur" if urdu else "fa" if persian else "ar"] = arabic_script
    if "ja" in counts and "zh" in counts:
        counts["ja"] += counts.pop("zh")  # Japanese mixes kana and kanji; kana alone says Japanese
    if not counts:
        return None
    language, letters = max(counts.items(), key=lambda item: item[1])
    # A Latin-script question that names one non-Latin term is still Latin-script.
    return language if letters >= latin else None


def reader_language(question: str, requested: str | None) -> ReaderLanguage:
    return ReaderLanguage(requested or detect_script_language(question))


LINES: dict[str, dict[Line, str]] = {
    "en": {
        "not_in_book": "The book does not seem to cover that, so I will not guess.",
        "greeting": "Hello! Ask me anything about the book.",
        "thanks": "You're welcome! Ask again whenever you like.",
        "goodbye": "Goodbye, and happy reading!",
        "about_me": "I am this book's tutor: ask me about what it covers, and I answer from its pages.",
    },
    "ur": {
        "english_only": "یہ جواب کتاب کے انگریزی متن سے لیا گیا ہے۔",
        "not_in_book": "کتاب میں اس سوال کا جواب نہیں ملا۔",
        "greeting": "السلام علیکم! کتاب کے بارے میں کچھ بھی پوچھیے۔",
        "thanks": "آپ کا شکریہ! کوئی اور سوال ہو تو ضرور پوچھیے۔",
        "goodbye": "خدا حافظ! پڑھائی جاری رکھیے۔",
        "about_me": "میں اس کتاب کا ٹیوٹر ہوں: کتاب کے بارے میں سوال پوچھیے۔",
    },
    "ar": {
        "english_only": "هذه الإجابة مأخوذة من النص الإنجليزي للكتاب.",
        "not_in_book": "لم أجد إجابة هذا السؤال في الكتاب.",
        "greeting": "مرحبًا! اسألني أي شيء عن الكتاب.",
        "thanks": "على الرحب والسعة! اسأل إن كان لديك سؤال آخر.",
        "goodbye": "مع السلامة! قراءة ممتعة.",
        "about_me": "أنا مساعد هذا الكتاب: اسألني عن محتواه.",
    },
    "hi": {
        "english_only": "यह उत्तर पुस्तक के अंग्रेज़ी पाठ से लिया गया है।",
        "not_in_book": "पुस्तक में इस प्रश्न का उत्तर नहीं मिला।",
        "greeting": "नमस्ते! पुस्तक के बारे में कुछ भी पूछिए।",
        "thanks": "आपका स्वागत है! कोई और प्रश्न हो तो पूछिए।",
        "goodbye": "फिर मिलेंगे! पढ़ते रहिए।",
        "about_me": "मैं इस पुस्तक का ट्यूटर हूँ: पुस्तक के बारे में प्रश्न पूछिए।",
    },
    "es": {
        "english_only": "Esta respuesta está tomada del texto en inglés del libro.",
        "not_in_book": "No encontré la respuesta a esta pregunta en el libro.",
        "greeting": "¡Hola! Pregúntame lo que quieras sobre el libro.",
        "thanks": "¡De nada! Pregunta cuando quieras.",
        "goodbye": "¡Hasta luego! Feliz lectura.",
        "about_me": "Soy el tutor de este libro: pregúntame sobre su contenido.",
    },
    "fr": {
        "english_only": "Cette réponse est tirée du texte anglais du livre.",
        "not_in_book": "Je n'ai pas trouvé la réponse à cette question dans le livre.",
        "greeting": "Bonjour ! Posez-moi une question sur le livre.",
        "thanks": "Avec plaisir ! N'hésitez pas à poser une autre question.",
        "goodbye": "Au revoir et bonne lecture !",
        "about_me": "Je suis le tuteur de ce livre : posez-moi des questions sur son contenu.",
    },
    "de": {
        "english_only": "Diese Antwort stammt aus dem englischen Text des Buches.",
        "not_in_book": "Die Antwort auf diese Frage steht nicht im Buch.",
        "greeting": "Hallo! Frag mich etwas zum Buch.",
        "thanks": "Gern geschehen! Frag ruhig weiter.",
        "goodbye": "Tschüss und viel Spaß beim Lesen!",
        "about_me": "Ich bin der Tutor dieses Buches: Frag mich etwas zu seinem Inhalt.",
    },
    "zh": {
        "english_only": "此回答摘自本书的英文原文。",
        "not_in_book": "书中没有找到这个问题的答案。",
        "greeting": "你好！欢迎询问关于本书的任何问题。",
        "thanks": "不客气！还有问题随时问我。",
        "goodbye": "再见，阅读愉快！",
        "about_me": "我是这本书的辅导助手：请问与本书内容有关的问题。",
    },
}
