"""Offline English sentences for the synthetic corpus: Debian's fortunes plus built-in ones.

Sentences are stored as written (mixed case, punctuation); text normalisation happens later in
the pipeline. Only plain sentences pass `is_plain_sentence`, because a TTS engine reads digits,
symbols and acronyms in ways the written text does not spell out, which would teach a CTC model
the wrong transcription.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from itertools import chain
from pathlib import Path

__all__ = [
    "FORTUNES_DIR",
    "builtin_sentences",
    "is_plain_sentence",
    "normalised_words",
    "read_fortunes",
    "sentence_pool",
    "split_sentences",
]

FORTUNES_DIR = Path("/usr/share/games/fortunes")  # Debian's fortunes-min package
MIN_WORDS = 3
MAX_WORDS = 20

# Letters, apostrophes, spaces and basic punctuation; a letter first and an end mark last.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z' ,;:.!?-]*[.!?]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_RIDDLE_LABEL = re.compile(r"^\s*[QA]:\s*")  # "Q: ..." / "A: ..." lines in the riddles file
_OVERSTRIKE = re.compile(r"[^\x08]\x08")  # "_\bX": a typewriter underline, as in fortunes files
# A period after these (or after an initial, "J. Smith") ends a word, not a sentence.
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "prof"})


def is_plain_sentence(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> bool:
    """Whether `text` is one plain English sentence a TTS engine reads exactly as written.

    Rejects digits and symbols, sentences outside `min_words`..`max_words` words, doubled
    punctuation (ellipses, "--", "?!"), acronyms (two capitals in a word are spelled out letter
    by letter), and any period before the end (abbreviations and initials are read differently
    from how they are written).
    """
    if not _PLAIN.fullmatch(text) or re.search(r"[,;:.!?-]{2}|\s-|-\s|''", text):
        return False
    words = text.split()
    if not min_words <= len(words) <= max_words or "." in text[:-1]:
        return False
    if any(sum(char.isupper() for char in word) > 1 for word in words):
        return False
    return words[-1].rstrip(".!?").lower() not in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """`text` cut after each `.`, `!` or `?` followed by a capital, whitespace folded.

    A period after an abbreviation or an initial does not cut, so that "Dr. Watson" stays
    whole (and is then rejected by `is_plain_sentence`) instead of leaving a fragment.
    """
    sentences: list[str] = []
    for part in _SENTENCE_END.split(" ".join(text.split())):
        last_word = sentences[-1].split()[-1].lower() if sentences else ""
        if last_word.endswith(".") and (len(last_word) == 2 or last_word[:-1] in _ABBREVIATIONS):
            sentences[-1] += " " + part
        elif part:
            sentences.append(part)
    return sentences


def read_fortunes(directory: Path = FORTUNES_DIR) -> list[str]:
    """Plain sentences from the fortune files in `directory` (sorted, unique); [] if none.

    Each file holds entries separated by `%` lines. Attribution lines ("-- Mark Twain") are
    dropped so they do not run into the quote; the `.dat` indexes and `.u8` links are skipped.
    """
    if not directory.is_dir():
        return []
    found: set[str] = set()
    for path in sorted(directory.iterdir()):
        if path.suffix or path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            found.update(_entry_sentences(entry))
    return sorted(found)


def _entry_sentences(entry: str) -> Iterable[str]:
    """The plain sentences of one fortune entry."""
    while _OVERSTRIKE.search(entry):
        entry = _OVERSTRIKE.sub("", entry)
    lines = [line for line in entry.splitlines() if not line.lstrip().startswith("--")]
    lines = [_RIDDLE_LABEL.sub("", line) for line in lines]
    return filter(is_plain_sentence, split_sentences(" ".join(lines)))


def sentence_pool(*sources: Iterable[str]) -> list[str]:
    """The sentences of all `sources`, sorted, unique once normalised.

    The corpus passes both the fortunes and the built-in sentences (not the built-in ones only
    as a fallback): more distinct sentences mean fewer repeats, and without fortunes-min it
    still works. Sentences that differ only in case or punctuation count as one, so that
    splits stay disjoint after text normalisation too.
    """
    pool: dict[str, str] = {}
    for sentence in sorted(chain.from_iterable(sources)):
        pool.setdefault(normalised_words(sentence), sentence)
    return sorted(pool.values())


def normalised_words(sentence: str) -> str:
    """`sentence` lower-cased with only letters, apostrophes and single spaces kept."""
    return " ".join(re.sub(r"[^a-z' ]+", " ", sentence.lower()).split())


# The built-in sentences come from a small grammar, original text written for this project:
# any count is available, the vocabulary is varied, and no copyrighted text is needed.
_SUBJECTS = (
    "the old farmer", "my younger sister", "a quiet student", "our new neighbour",
    "the tired sailor", "her grandfather", "the clever doctor", "a nervous pilot",
    "the village baker", "his best friend", "the young painter", "a patient teacher",
    "the busy waiter", "my uncle", "the brave firefighter", "a curious child",
    "the head gardener", "their cousin", "the night guard", "a famous singer",
    "the shy librarian", "our coach", "the fisherman", "a careful driver",
)  # fmt: skip
_VERBS = (
    ("carry", "carried"), ("find", "found"), ("paint", "painted"), ("open", "opened"),
    ("hide", "hid"), ("borrow", "borrowed"), ("clean", "cleaned"), ("lose", "lost"),
    ("mend", "mended"), ("sell", "sold"), ("bring", "brought"), ("wrap", "wrapped"),
    ("drop", "dropped"), ("measure", "measured"), ("polish", "polished"), ("throw", "threw"),
    ("fold", "folded"), ("push", "pushed"), ("weigh", "weighed"), ("choose", "chose"),
)  # fmt: skip
_OBJECTS = (
    "a wooden box", "the heavy suitcase", "a bunch of yellow flowers", "the broken chair",
    "an empty bottle", "the silver key", "a warm blanket", "the tall ladder",
    "a map of the coast", "the blue umbrella", "a basket of apples", "the leather jacket",
    "a jar of honey", "the garden hose", "a pair of muddy boots", "the kitchen table",
    "an old violin", "the striped scarf", "a stack of letters", "the paper lantern",
)  # fmt: skip
_PLACES = (
    "near the river", "behind the station", "at the market", "in the attic",
    "under the bridge", "beside the lighthouse", "across the square", "inside the barn",
    "along the harbour wall", "at the edge of the forest", "in the hallway", "by the window",
    "on the hill", "outside the bakery", "through the park", "next to the fountain",
)  # fmt: skip
_TIMES = (
    "before breakfast", "after the storm", "every morning", "in the evening",
    "on a rainy afternoon", "during the holidays", "just before midnight", "at sunrise",
    "while everyone was asleep", "without saying a word", "for the third time", "again",
)  # fmt: skip


def builtin_sentences(count: int) -> list[str]:
    """`count` distinct sentences from the built-in grammar, the same list for the same count."""
    rng = random.Random(20240601)  # fixed: the list must not depend on the corpus seed
    found: dict[str, None] = {}
    while len(found) < count:
        found.setdefault(_grammar_sentence(rng))
    return list(found)


def _grammar_sentence(rng: random.Random) -> str:
    """One sentence in one of four shapes: statement, plan, question or request."""
    subject, obj, place, time = (
        rng.choice(words) for words in (_SUBJECTS, _OBJECTS, _PLACES, _TIMES)
    )
    base, past = rng.choice(_VERBS)
    shape = rng.randrange(4)
    if shape == 0:
        text = f"{subject} {past} {obj} {place} {time}."
    elif shape == 1:
        text = f"{subject} will {base} {obj} {place} tomorrow."
    elif shape == 2:
        text = f"did {subject} {base} {obj} {place}?"
    else:
        text = f"please {base} {obj} {place} {time}."
    return text[0].upper() + text[1:]
