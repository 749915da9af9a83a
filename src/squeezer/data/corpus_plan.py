"""Plan the synthetic corpus: which voice speaks which sentence, at what rate and pitch, in
which split. Pure and seeded, so the same inputs always give the same plan.

Splits are speaker-disjoint (a speaker is a `Voice`: engine + accent + variant) and sentence-
disjoint. Test holds out one espeak-ng accent entirely, two voice variants (one male, one
female) in every accent, and every flite voice (an unseen engine), so its score measures
generalisation to unheard voices. Dev holds out two other variants in the training accents.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

from squeezer.data.tts import ESPEAK, Voice

__all__ = [
    "PITCH_RANGE",
    "RATE_RANGE",
    "SIZES",
    "SPLITS",
    "PlannedUtterance",
    "Size",
    "assign_voices",
    "plan_corpus",
]

Size = Literal["tiny", "demo", "large"]
Split = Literal["train", "dev", "test"]
SIZES: dict[str, int] = {"tiny": 100, "demo": 3000, "large": 30000}  # utterances in all
SPLITS: tuple[Split, ...] = ("train", "dev", "test")
SPLIT_SHARES: dict[str, float] = {"train": 0.85, "dev": 0.05, "test": 0.10}
# The most of the sentence pool dev and test may take, so that train keeps most of the text.
SENTENCE_SHARE_CAPS: dict[str, float] = {"dev": 0.1, "test": 0.2}
RATE_RANGE = (130, 190)  # words per minute, drawn per utterance
PITCH_RANGE = (30, 70)  # espeak-ng -p (0-99), drawn per utterance


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to synthesise. `pitch` is None for flite (it keeps its voice's pitch)."""

    id: str
    split: Split
    text: str
    voice: Voice
    rate: int
    pitch: int | None


def plan_corpus(
    size: Size, seed: int, voices: Sequence[Voice], sentences: Sequence[str]
) -> list[PlannedUtterance]:
    """The utterances of a corpus of `size`, sorted by id; every draw from one seeded RNG.

    Args:
        voices: every available voice (any order; they are sorted first).
        sentences: the sentence pool (any order; sorted and deduplicated first).
    """
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; expected one of {sorted(SIZES)}")
    rng = random.Random(seed)
    split_voices = assign_voices(sorted(voices), rng)
    counts = _split_counts(SIZES[size])
    split_sentences = _deal_sentences(sorted(set(sentences)), counts, rng)
    plan = []
    for split in SPLITS:
        texts = _draw_cycles([split_sentences[split]], counts[split], rng)
        speakers = _draw_cycles(split_voices[split], counts[split], rng)
        for index, (text, voice) in enumerate(zip(texts, speakers, strict=True)):
            rate = rng.randint(*RATE_RANGE)
            pitch = rng.randint(*PITCH_RANGE) if voice.engine == ESPEAK else None
            plan.append(PlannedUtterance(f"{split}-{index:06d}", split, text, voice, rate, pitch))
    return plan


def assign_voices(voices: Sequence[Voice], rng: random.Random) -> dict[str, list[list[Voice]]]:
    """Speaker-disjoint voice groups per split (see the module docstring), drawn with `rng`.

    Returns:
        split -> groups of voices. Test has up to three groups (held-out accent, held-out
        variants, flite) that `plan_corpus` interleaves, so even a tiny test split hears each.
    """
    espeak = [voice for voice in voices if voice.engine == ESPEAK]
    accents = sorted({voice.accent for voice in espeak})
    variants = sorted({voice.variant for voice in espeak})
    males = [variant for variant in variants if variant.startswith("m")]
    females = [variant for variant in variants if variant.startswith("f")]
    if len(accents) < 2 or len(males) < 3 or len(females) < 2:
        raise RuntimeError(f"espeak-ng lists too few English voices: {accents} x {variants}")
    males, females = rng.sample(males, k=2), rng.sample(females, k=2)
    test_accent = rng.choice(accents)
    test_variants, dev_variants = {males[0], females[0]}, {males[1], females[1]}
    groups: dict[str, list[list[Voice]]] = {split: [[]] for split in SPLITS}
    groups["test"] = [[], [], [voice for voice in voices if voice.engine != ESPEAK]]
    for voice in espeak:
        if voice.accent == test_accent:
            groups["test"][0].append(voice)
        elif voice.variant in test_variants:
            groups["test"][1].append(voice)
        elif voice.variant in dev_variants:
            groups["dev"][0].append(voice)
        else:
            groups["train"][0].append(voice)
    return {
        split: [group for group in split_groups if group] for split, split_groups in groups.items()
    }


def _split_counts(total: int) -> dict[str, int]:
    """Utterances per split; train takes the rounding remainder."""
    counts = {split: round(total * SPLIT_SHARES[split]) for split in ("dev", "test")}
    return {"train": total - sum(counts.values()), **counts}


def _deal_sentences(
    pool: list[str], counts: dict[str, int], rng: random.Random
) -> dict[str, list[str]]:
    """Disjoint sentence lists per split: dev and test first (capped), train the rest."""
    pool = pool.copy()
    rng.shuffle(pool)
    dealt: dict[str, list[str]] = {}
    start = 0
    for split in ("test", "dev"):
        take = max(1, min(counts[split], int(len(pool) * SENTENCE_SHARE_CAPS[split])))
        dealt[split], start = pool[start : start + take], start + take
    dealt["train"] = pool[start : start + counts["train"]]
    if not dealt["train"]:
        raise ValueError(f"only {len(pool)} sentences: too few to split three ways")
    return dealt


def _draw_cycles(groups: list[list], count: int, rng: random.Random) -> list:
    """`count` items in whole passes over `groups`, so that every item is used evenly.

    Each pass shuffles every group and interleaves them, so the first few items of even a
    tiny split already come from every group.
    """
    out: list = []
    while len(out) < count:
        shuffled = [rng.sample(group, k=len(group)) for group in groups]
        out.extend(item for row in zip_longest(*shuffled) for item in row if item is not None)
    return out[:count]
