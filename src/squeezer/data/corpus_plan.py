"""Plan the synthetic corpus: which voice speaks which sentence, with what prosody, in which
split. Pure and seeded, so the same inputs always give the same plan.

Splits are speaker-disjoint and sentence-disjoint. The unit held out is a person
(`Voice.identity`): flite's kal16 and Festival's kal_diphone are one person, as are flite's
and Festival's slt, so a held-out person is unheard in both engines.

- train: every engine, each an equal share of the utterances (espeak-ng's ~100 voices would
  otherwise drown flite's and Festival's few), its voices used evenly within that share.
- test: one espeak-ng accent entirely, two espeak-ng variants (one male, one female) in every
  accent, and the people of TEST_IDENTITIES in every engine: slt (flite's and Festival's only
  female voice, and Festival's only HTS voice) and rms (flite-only; holding out Festival's
  ked instead would leave Festival one training voice). Each group is an equal share.
- dev: two other espeak-ng variants in the training accents. No flite or Festival voice: they
  have five people in all, and a third one held out would leave an engine one training
  voice; dev only draws the training curve (no checkpoint is chosen by it), and test scores
  every engine's unseen voices.

Every dev and test utterance names its group (`GROUP_*`), so scores can be split by it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

from squeezer.data.tts import ESPEAK, Prosody, Voice

__all__ = [
    "F0_SCALE_RANGE",
    "GROUP_UNSEEN_ACCENT",
    "GROUP_UNSEEN_VARIANT",
    "PITCH_RANGE",
    "PLAN_VERSION",
    "RATE_RANGE",
    "SIZES",
    "SPLITS",
    "TEST_IDENTITIES",
    "PlannedUtterance",
    "Size",
    "VoiceGroup",
    "assign_voices",
    "plan_corpus",
    "unseen_voice_group",
]

Size = Literal["tiny", "demo", "large"]
Split = Literal["train", "dev", "test"]
# Bumped whenever the same size and seed would plan a different corpus, so that an older build
# is rebuilt rather than reused. 2: flite and Festival voices in training, prosody per engine.
PLAN_VERSION = 2
SIZES: dict[str, int] = {"tiny": 100, "demo": 3000, "large": 30000}  # utterances in all
SPLITS: tuple[Split, ...] = ("train", "dev", "test")
SPLIT_SHARES: dict[str, float] = {"train": 0.85, "dev": 0.05, "test": 0.10}
# The most of the sentence pool dev and test may take, so that train keeps most of the text.
SENTENCE_SHARE_CAPS: dict[str, float] = {"dev": 0.1, "test": 0.2}
RATE_RANGE = (130, 190)  # words per minute, drawn per utterance for every engine
PITCH_RANGE = (30, 70)  # espeak-ng -p (0-99), drawn per utterance
# Factor on a flite or Festival voice's F0, drawn per utterance: -2.8 to +3.2 semitones, e.g.
# Festival kal 107 -> 94 / 125 Hz, flite slt 167 -> 142 / 200 Hz (median F0, measured).
F0_SCALE_RANGE = (0.85, 1.2)
TEST_IDENTITIES = ("slt", "rms")  # flite and Festival people heard only in test (see above)
GROUP_UNSEEN_ACCENT = "espeak-ng, unseen accent"
GROUP_UNSEEN_VARIANT = "espeak-ng, unseen variant"


def unseen_voice_group(engine: str) -> str:
    """The group name of a flite or Festival voice held out of training, e.g. "flite, unseen
    voice"."""
    return f"{engine}, unseen voice"


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to synthesise; `group` names its held-out kind (None in train)."""

    id: str
    split: Split
    text: str
    voice: Voice
    prosody: Prosody
    group: str | None


@dataclass(frozen=True)
class VoiceGroup:
    """Voices that share a split's utterances equally with the split's other groups."""

    name: str | None  # recorded with each dev / test utterance; None in train
    voices: tuple[Voice, ...]


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
    split_groups = assign_voices(sorted(voices), rng)
    counts = _split_counts(SIZES[size])
    split_sentences = _deal_sentences(sorted(set(sentences)), counts, rng)
    plan = []
    for split in SPLITS:
        texts = _draw_evenly(split_sentences[split], counts[split], rng)
        speakers = _draw_groups(split_groups[split], counts[split], rng)
        for index, (text, (group, voice)) in enumerate(zip(texts, speakers, strict=True)):
            prosody = _draw_prosody(voice, rng)
            utterance_id = f"{split}-{index:06d}"
            plan.append(PlannedUtterance(utterance_id, split, text, voice, prosody, group))
    return plan


def assign_voices(voices: Sequence[Voice], rng: random.Random) -> dict[str, list[VoiceGroup]]:
    """Speaker-disjoint voice groups per split (see the module docstring), drawn with `rng`.

    Returns:
        split -> its non-empty groups: train one per engine; test the held-out espeak-ng
        accent, the held-out variants, then one per engine with a TEST_IDENTITIES voice; dev
        the dev variants.
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
    train: dict[str, list[Voice]] = {ESPEAK: []}
    dev: list[Voice] = []
    test: dict[str, list[Voice]] = {GROUP_UNSEEN_ACCENT: [], GROUP_UNSEEN_VARIANT: []}
    for voice in espeak:
        if voice.accent == test_accent:
            test[GROUP_UNSEEN_ACCENT].append(voice)
        elif voice.variant in test_variants:
            test[GROUP_UNSEEN_VARIANT].append(voice)
        elif voice.variant in dev_variants:
            dev.append(voice)
        else:
            train[ESPEAK].append(voice)
    for voice in voices:
        if voice.engine == ESPEAK:
            continue
        if voice.identity in TEST_IDENTITIES:
            test.setdefault(unseen_voice_group(voice.engine), []).append(voice)
        else:
            train.setdefault(voice.engine, []).append(voice)
    named = {
        "train": [(None, group) for group in train.values()],
        "dev": [(GROUP_UNSEEN_VARIANT, dev)],
        "test": list(test.items()),
    }
    return {
        split: [VoiceGroup(name, tuple(group)) for name, group in groups if group]
        for split, groups in named.items()
    }


def _draw_prosody(voice: Voice, rng: random.Random) -> Prosody:
    """A rate for every voice, plus its engine's pitch control where the voice has one."""
    rate = rng.randint(*RATE_RANGE)
    pitch = rng.randint(*PITCH_RANGE) if voice.engine == ESPEAK else None
    f0_scale = round(rng.uniform(*F0_SCALE_RANGE), 2) if voice.shifts_f0 else None
    return Prosody(rate, pitch, f0_scale)


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


def _draw_groups(
    groups: Sequence[VoiceGroup], count: int, rng: random.Random
) -> list[tuple[str | None, Voice]]:
    """`count` (group name, voice) pairs: each group an equal share (the first groups take
    the remainder), its voices used evenly, the groups interleaved so that the first few
    pairs of even a tiny split already come from every group."""
    shares = [count // len(groups) + (index < count % len(groups)) for index in range(len(groups))]
    drawn = [
        [(group.name, voice) for voice in _draw_evenly(list(group.voices), share, rng)]
        for group, share in zip(groups, shares, strict=True)
    ]
    return [pair for row in zip_longest(*drawn) for pair in row if pair is not None]


def _draw_evenly(items: list, count: int, rng: random.Random) -> list:
    """`count` items in whole shuffled passes over `items`, so that each is used evenly."""
    out: list = []
    while len(out) < count:
        out.extend(rng.sample(items, k=len(items)))
    return out[:count]
