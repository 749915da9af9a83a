"""The English text normaliser applied identically in training and scoring.

Normaliser policy (`normalize_text`), in order:

- apostrophe look-alikes (’ ‘ ʼ ` ´ ′) become "'"; then Unicode NFKC and lower case
- "&" -> "and", "%" -> "percent"
- integers are US-style cardinals without "and": "105" -> "one hundred five",
  "1,000,000" -> "one million"; with a leading zero digit by digit: "007" -> "zero zero seven"
- a bare four-digit 1100..1999 reads as a year: "1999" -> "nineteen ninety nine",
  "1905" -> "nineteen oh five", "1900" -> "nineteen hundred"; others stay cardinal:
  "2024" -> "two thousand twenty four"
- decimals: "3.14" -> "three point one four", ".5" -> "point five"
- ordinals and plurals: "2nd" -> "second", "21st" -> "twenty first",
  "1990s" / "90's" -> "nineteen nineties" / "nineties"
- diacritics leave Latin letters: "Café naïve" -> "cafe naive"
- an apostrophe is kept only between two letters: "don't", "o'clock"; "'quoted'" -> "quoted"
- every other non-letter (dashes, quotes, "$", ":", ".") becomes a space:
  "well-known" -> "well known", "4:30 p.m." -> "four thirty p m"
- whitespace collapsed, ends stripped
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["NORMALIZER", "normalize_text"]

NORMALIZER = "english-v1"  # stored with every tokenizer; bump whenever an output below changes

# Before NFKC, which would turn the acute accent ´ into a space plus a combining mark.
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2018\u2019\u201a\u201b\u02bc\u2032`\u00b4", "'"))
_SYMBOLS = str.maketrans({"&": " and ", "%": " percent "})
_NUMBER = re.compile(
    r"(?P<integer>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<suffix>st|nd|rd|th|'?s)(?![^\W\d_]))?"
    r"|(?<![\w.])\.(?P<bare_fraction>\d+)"
)
# An apostrophe not between two letters is a quote mark, not part of a word.
_STRAY_APOSTROPHE = re.compile(r"(?<![^\W\d_])'|'(?![^\W\d_])")

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [
    "_",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
]
_ORDINAL_SUFFIXES = ("st", "nd", "rd", "th")
_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def normalize_text(text: str) -> str:
    """Return `text` as lower-case English words; the policy is in the module docstring."""
    text = unicodedata.normalize("NFKC", text.translate(_APOSTROPHES)).lower()
    text = _NUMBER.sub(_spell_number, text.translate(_SYMBOLS))
    text = _STRAY_APOSTROPHE.sub(" ", "".join(map(_map_character, text)))
    return " ".join(text.split())


def _spell_number(match: re.Match[str]) -> str:
    """Words for one number the `_NUMBER` pattern found, padded with spaces."""
    if match["bare_fraction"] is not None:
        return f" point {_spell_digits(match['bare_fraction'])} "
    integer, fraction, suffix = match["integer"], match["fraction"], match["suffix"]
    plain = "," not in integer and fraction is None
    words = _spell_integer(
        integer.replace(",", ""), years=plain and suffix not in _ORDINAL_SUFFIXES
    )
    if fraction is not None:
        words = f"{words} point {_spell_digits(fraction)}"
    if suffix and plain:
        words = _inflect(words, ordinal=suffix in _ORDINAL_SUFFIXES)
    elif suffix:  # "2.5s": a unit after a decimal, not a plural
        unit = suffix.lstrip("'")
        words = f"{words} {unit}"
    return f" {words} "


def _spell_integer(digits: str, years: bool) -> str:
    """Words for a run of digits: cardinal, year pairs, or digit by digit (see the policy)."""
    if len(digits) > 1 and digits.startswith("0"):
        return _spell_digits(digits)
    number = int(digits)
    if years and len(digits) == 4 and 1100 <= number <= 1999:
        century, rest = divmod(number, 100)
        if rest == 0:
            return f"{_ONES[century]} hundred"
        return f"{_ONES[century]} {'oh ' if rest < 10 else ''}{_cardinal(rest)}"
    if number >= 1000 ** len(_SCALES):  # beyond "decillion": read it out digit by digit
        return _spell_digits(digits)
    return _cardinal(number)


def _cardinal(number: int) -> str:
    """US-style cardinal without "and": 105 -> "one hundred five"."""
    if number == 0:
        return "zero"
    words: list[str] = []
    for power in reversed(range(len(_SCALES))):
        hundreds, rest = divmod(number // 1000**power % 1000, 100)
        if hundreds:
            words += [_ONES[hundreds], "hundred"]
        if rest >= 20:
            words.append(_TENS[rest // 10])
            rest %= 10
        if rest:
            words.append(_ONES[rest])
        if power and number // 1000**power % 1000:
            words.append(_SCALES[power])
    return " ".join(words)


def _spell_digits(digits: str) -> str:
    return " ".join(_ONES[int(digit)] for digit in digits)


def _inflect(words: str, ordinal: bool) -> str:
    """Make the last word ordinal ("twenty one" -> "twenty first") or plural ("nineties")."""
    head, _, last = words.rpartition(" ")
    if ordinal and last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):  # twenty -> twentieth, twenties
        last = last[:-1] + ("ieth" if ordinal else "ies")
    else:
        last += "th" if ordinal else ("es" if last == "six" else "s")
    return f"{head} {last}".lstrip()


@lru_cache(maxsize=4096)
def _map_character(character: str) -> str:
    """Keep letters (Latin ones without diacritics), marks and apostrophes; all else is a space."""
    if character == "'":
        return character
    category = unicodedata.category(character)
    if category.startswith("L"):
        base = unicodedata.normalize("NFD", character)[0]
        return base if base.isascii() else character
    return character if category.startswith("M") else " "
