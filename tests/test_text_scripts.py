"""What a voice can read: scripts a language covers, and emoji taken out before synthesis."""

from __future__ import annotations

import pytest

from stream_server.text import ScriptWatch, without_emoji
from stream_server.text.scripts import script_of, scripts_for


@pytest.mark.parametrize(
    ("char", "script"),
    [
        ("a", "Latin"), ("É", "Latin"), ("ß", "Latin"), ("Ａ", "Latin"), ("я", "Cyrillic"), ("α", "Greek"),
        ("中", "Han"), ("あ", "Hiragana"), ("ア", "Katakana"), ("ｱ", "Katakana"), ("한", "Hangul"),
        ("م", "Arabic"), ("ש", "Hebrew"), ("ह", "Devanagari"), ("ก", "Thai"),
        ("1", None), ("٣", None), (".", None), ("。", None), ("😀", None), ("€", None), ("\u0301", None),
        ("ー", None),  # the prolonged sound mark belongs to both kana
    ],
)  # fmt: skip
def test_the_script_of_a_character(char: str, script: str | None) -> None:
    assert script_of(char) == script


def test_languages_map_to_their_scripts() -> None:
    assert scripts_for("en") == {"Latin"}
    assert scripts_for("pt_BR") == scripts_for("pt-BR") == {"Latin"}
    assert scripts_for("ja") == {"Han", "Hiragana", "Katakana"}
    assert scripts_for("zh-Hans") == {"Han"}
    assert scripts_for("xx") is None


def test_each_uncovered_script_is_reported_once() -> None:
    watch = ScriptWatch("en")
    assert watch.new_scripts("Hello 😀, 42 € — café!") == []
    assert watch.new_scripts("你好 and Привет") == ["Cyrillic", "Han"]
    assert watch.new_scripts("再见, пока") == []
    assert watch.new_scripts("こんにちは") == ["Hiragana"]


def test_a_language_covers_its_own_scripts_and_an_unknown_one_warns_of_nothing() -> None:
    assert ScriptWatch("ja").new_scripts("今日はカタカナとひらがな。Tokyo") == ["Latin"]
    assert ScriptWatch("zh").new_scripts("你好") == []
    assert ScriptWatch("xx").new_scripts("你好 Привет") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Great job 🎉", "Great job "),
        ("Family: 👩\u200d👩\u200d👧 done", "Family:  done"),  # a ZWJ sequence, whole
        ("Go 🇺🇸 team", "Go  team"),  # a flag: two regional indicators
        ("Wave 👋🏽 hi", "Wave  hi"),  # with a skin-tone modifier
        ("Love ❤️ it ✨", "Love  it "),  # dingbats, with the emoji variation selector
        ("Press 1️⃣ now", "Press 1 now"),  # a keycap keeps its digit
        ("It is ☀ and ⭐ and ⏰", "It is  and  and "),
        ("© 2024 ACME™ → next • item ‼", "© 2024 ACME™ → next • item ‼"),  # text symbols stay
        ("你好。Привет! Ünïcödé", "你好。Привет! Ünïcödé"),
        ("plain ascii", "plain ascii"),
    ],
)
def test_emoji_are_taken_out_and_text_symbols_stay(text: str, expected: str) -> None:
    assert without_emoji(text) == expected
