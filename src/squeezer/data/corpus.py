"""The embedded offline corpus: English sentences spoken by espeak-ng, flite and Festival voices.

`synthesize_corpus` plans the corpus (`corpus_plan`), speaks it in parallel (`tts`), and writes

    out_dir/audio/{split}/{utt_id}.flac   16 kHz mono FLAC
    out_dir/README.md                     summary table, seed, size, tool versions
    out_dir/{split}.jsonl.gz              Lhotse cut manifests (`manifests.save_cuts`)

A corpus already complete in `out_dir` with the same size, seed and plan version is reused,
not rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from tqdm import tqdm

from squeezer.data import tts
from squeezer.data.corpus_plan import (
    PLAN_VERSION,
    SIZES,
    SPLITS,
    PlannedUtterance,
    Size,
    plan_corpus,
)
from squeezer.data.manifests import save_cuts
from squeezer.data.sentences import builtin_sentences, read_fortunes, sentence_pool
from squeezer.files import write_text_atomically

__all__ = ["CorpusSummary", "SplitSummary", "synthesize_corpus"]

logger = logging.getLogger(__name__)

# Built-in grammar sentences added to the fortunes; `large` needs more distinct text.
BUILTIN_SENTENCES: dict[str, int] = {"tiny": 500, "demo": 500, "large": 6000}
_MARKER = "<!-- squeezer-corpus "  # starts the README's machine-readable summary
# Lines per Festival process: its ~0.2 s voice load then costs ~5 ms a line. Batches stay small
# enough that the demo corpus makes ~25 of them to spread over the cores.
FESTIVAL_BATCH = 40


def synthesize_corpus(
    out_dir: Path,
    size: Size,
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = False,
) -> CorpusSummary:
    """Build (or reuse) the synthetic corpus of `size` in `out_dir`; its summary.

    Args:
        out_dir: corpus folder; created if missing. Only our files in it are replaced.
        size: "tiny" (~100 utterances, seconds), "demo" (~3000, ~3 h of audio, about a
            minute on 2 cores) or "large" (~30000).
        seed: seeds every random draw; the same seed and package versions give the same
            manifests.
        jobs: concurrent synthesis processes (default `os.cpu_count()`).
        progress: show a tqdm progress bar.

    Raises:
        ValueError: unknown size or jobs < 1.
        RuntimeError: espeak-ng is not installed.
    """
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; expected one of {sorted(SIZES)}")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out_dir = Path(out_dir).resolve()
    existing = _complete_corpus(out_dir, size, seed)
    if existing is not None:
        return existing
    tts.require_espeak()
    _remove_previous_build(out_dir)
    fortunes = read_fortunes()
    builtin = builtin_sentences(BUILTIN_SENTENCES[size])
    voices = tts.espeak_voices() + tts.flite_voices() + tts.festival_voices()
    plan = plan_corpus(size, seed, voices, sentence_pool(fortunes, builtin))
    samples = _speak_all(plan, out_dir, jobs, progress)
    cuts = {split: _split_cuts(plan, samples, out_dir, split) for split in SPLITS}
    summary = _summarize(
        cuts,
        size=size,
        seed=seed,
        versions=tuple(sorted(tts.tool_versions().items())),
        sentence_sources=(("fortunes", len(fortunes)), ("built-in", len(builtin))),
        failed=sum(count is None for count in samples),
        empty=sum(count == 0 for count in samples),
        plan=PLAN_VERSION,
    )
    _write_readme(summary, out_dir / "README.md")
    for split, split_cuts in cuts.items():  # manifests last: they mark the build complete
        save_cuts(split_cuts, _manifest(out_dir, split))
    return summary


def _manifest(out_dir: Path, split: str) -> Path:
    return out_dir / f"{split}.jsonl.gz"


def _audio_path(out_dir: Path, utterance: PlannedUtterance) -> Path:
    return out_dir / "audio" / utterance.split / f"{utterance.id}.flac"


def _complete_corpus(out_dir: Path, size: str, seed: int) -> CorpusSummary | None:
    """The summary of a finished build of `size` and `seed` under this PLAN_VERSION in
    `out_dir`, else None."""
    if not all(_manifest(out_dir, split).is_file() for split in SPLITS):
        return None
    summary = _read_readme(out_dir / "README.md")
    if summary is None or (summary.size, summary.seed, summary.plan) != (size, seed, PLAN_VERSION):
        return None
    return summary


def _remove_previous_build(out_dir: Path) -> None:
    """Delete the manifests, README and audio of an earlier build, manifests first.

    Without this, a build interrupted after writing one manifest could leave an old README
    and old manifests that look like a complete corpus.
    """
    for split in SPLITS:
        _manifest(out_dir, split).unlink(missing_ok=True)
    (out_dir / "README.md").unlink(missing_ok=True)
    shutil.rmtree(out_dir / "audio", ignore_errors=True)
    for split in SPLITS:
        (out_dir / "audio" / split).mkdir(parents=True)


def _speak_all(
    plan: Sequence[PlannedUtterance], out_dir: Path, jobs: int, progress: bool
) -> list[int | None]:
    """Samples written per planned utterance, in plan order: None failed, 0 silent.

    Threads, not a process pool, drive the engines: each call runs the engine as its own
    subprocess and resamples in soxr, both outside the GIL, and threads avoid forking a
    parent that may hold torch's thread pools.
    """
    samples: list[int | None] = [None] * len(plan)
    bar = tqdm(total=len(plan), desc="synthesising", unit="utt", disable=not progress)
    with bar, ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(_speak_batch, [plan[index] for index in batch], out_dir): batch
            for batch in _batches(plan)
        }
        for future in as_completed(futures):
            batch = futures[future]
            for index, count in zip(batch, future.result(), strict=True):
                samples[index] = count
            bar.update(len(batch))
    return samples


def _batches(plan: Sequence[PlannedUtterance]) -> list[list[int]]:
    """Plan indices per engine call: up to FESTIVAL_BATCH lines of one Festival voice, first
    (they take longest), then one utterance per call for the other engines."""
    festival: dict[tts.Voice, list[int]] = {}
    single = []
    for index, utterance in enumerate(plan):
        if utterance.voice.engine == tts.FESTIVAL:
            festival.setdefault(utterance.voice, []).append(index)
        else:
            single.append([index])
    batches = [
        indices[start : start + FESTIVAL_BATCH]
        for indices in festival.values()
        for start in range(0, len(indices), FESTIVAL_BATCH)
    ]
    return batches + single


def _speak_batch(utterances: Sequence[PlannedUtterance], out_dir: Path) -> list[int | None]:
    """Samples written per utterance of one voice; a failed one is retried alone once, then
    gives None."""
    voice = utterances[0].voice
    requests = [tts.SpeechRequest(u.text, u.prosody, _audio_path(out_dir, u)) for u in utterances]
    counts: list[int | None] = []
    for utterance, request, result in zip(
        utterances, requests, tts.synthesize_batch(voice, requests), strict=True
    ):
        if isinstance(result, tts.SynthesisError):
            logger.debug("attempt 1 of %s failed: %s", utterance.id, result)
            result = tts.synthesize_batch(voice, [request])[0]
        if isinstance(result, tts.SynthesisError):
            logger.debug("attempt 2 of %s failed: %s", utterance.id, result)
            result = None
        counts.append(result)
    return counts


def _split_cuts(
    plan: Sequence[PlannedUtterance], samples: Sequence[int | None], out_dir: Path, split: str
) -> CutSet:
    """The cuts of `split`: one recording and one supervision per spoken utterance."""
    spoken = [u for u, count in zip(plan, samples, strict=True) if u.split == split and count]
    recordings = [Recording.from_file(_audio_path(out_dir, u), recording_id=u.id) for u in spoken]
    supervisions = [
        SupervisionSegment(
            id=utterance.id,
            recording_id=utterance.id,
            start=0.0,
            duration=recording.duration,
            channel=0,
            text=utterance.text,
            speaker=utterance.voice.id,
            language="en",
            custom=_custom(utterance),
        )
        for utterance, recording in zip(spoken, recordings, strict=True)
    ]
    cuts = CutSet.from_manifests(
        recordings=RecordingSet.from_recordings(recordings),
        supervisions=SupervisionSet.from_segments(supervisions),
    )
    # from_manifests names cuts "{recording_id}-{index}"; one cut per recording keeps its id.
    return cuts.modify_ids(lambda cut_id: cut_id.rsplit("-", 1)[0]).to_eager()


def _custom(utterance: PlannedUtterance) -> dict[str, Any]:
    """What a supervision records of its voice and prosody, and its held-out group."""
    voice, prosody = utterance.voice, utterance.prosody
    custom = {
        "engine": voice.engine,
        "accent": voice.accent,
        "voice": voice.name,
        "identity": voice.identity,
        "rate": prosody.rate,
        "pitch": prosody.pitch,
        "f0_scale": prosody.f0_scale,
    }
    return custom if utterance.group is None else custom | {"group": utterance.group}


@dataclass(frozen=True)
class SplitSummary:
    """One split of a built corpus."""

    split: str
    utterances: int
    hours: float
    voices: int
    accents: tuple[str, ...]
    engines: tuple[tuple[str, int], ...]  # (engine, utterances)
    groups: tuple[tuple[str, int], ...]  # (held-out group, utterances); none in train
    sentences: int  # distinct texts


@dataclass(frozen=True)
class CorpusSummary:
    """What a corpus build produced; `reused` when an existing build was returned as is."""

    size: str
    seed: int
    splits: tuple[SplitSummary, ...]
    versions: tuple[tuple[str, str], ...]  # (tool, version line)
    sentence_sources: tuple[tuple[str, int], ...]  # (source, sentences it offered)
    failed: int  # utterances whose synthesis failed twice
    empty: int  # utterances the engine rendered as silence
    plan: int  # corpus_plan.PLAN_VERSION of the build
    reused: bool = False

    def to_markdown(self) -> str:
        """A Markdown table of the splits (utterances per engine too), the held-out groups,
        then the build details."""
        engines = sorted({engine for row in self.splits for engine, _ in row.engines})
        lines = [
            "| split | utterances | " + " | ".join(engines) + " | hours | voices | accents "
            "| sentences |",
            "|---|---:|" + "---:|" * len(engines) + "---:|---:|---:|---:|",
        ]
        for row in self.splits:
            per_engine = dict(row.engines)
            counts = " | ".join(str(per_engine.get(engine, 0)) for engine in engines)
            lines.append(
                f"| {row.split} | {row.utterances} | {counts} | {row.hours:.3f} | {row.voices} "
                f"| {len(row.accents)} | {row.sentences} |"
            )
        sources = ", ".join(f"{name} {count}" for name, count in self.sentence_sources)
        lines.append("")
        for row in self.splits:
            if row.groups:
                groups = "; ".join(f"{name}: {count}" for name, count in row.groups)
                lines.append(f"- {row.split} groups (utterances): {groups}")
        lines += [
            f"- size: {self.size}, seed: {self.seed}, plan version: {self.plan}",
            f"- sentence sources: {sources}",
            f"- skipped utterances: {self.failed} failed, {self.empty} silent",
            *(f"- {tool}: {version}" for tool, version in self.versions),
        ]
        return "\n".join(lines) + "\n"


def _summarize(cuts: dict[str, CutSet], **fields: Any) -> CorpusSummary:
    """The summary of the built `cuts` per split plus the build's other `fields`."""
    rows = []
    for split, split_cuts in cuts.items():
        supervisions = [cut.supervisions[0] for cut in split_cuts]
        engines = Counter(s.custom["engine"] for s in supervisions)
        groups = Counter(s.custom["group"] for s in supervisions if "group" in s.custom)
        rows.append(
            SplitSummary(
                split=split,
                utterances=len(supervisions),
                hours=sum(s.duration for s in supervisions) / 3600,
                voices=len({s.speaker for s in supervisions}),
                accents=tuple(sorted({s.custom["accent"] for s in supervisions})),
                engines=tuple(sorted(engines.items())),
                groups=tuple(sorted(groups.items())),
                sentences=len({s.text for s in supervisions}),
            )
        )
    return CorpusSummary(splits=tuple(rows), **fields)


def _write_readme(summary: CorpusSummary, path: Path) -> None:
    """README.md: the table for people, then the summary as JSON for `_read_readme`."""
    record = json.dumps(asdict(summary) | {"reused": False}, sort_keys=True)
    text = (
        "# Synthetic speech corpus\n\n"
        "English sentences spoken by offline TTS voices, built by "
        "`squeezer.data.corpus.synthesize_corpus`. Every engine speaks in training and in "
        "test. Splits are speaker- and sentence-disjoint: dev and test voices (people, "
        "accents, variants; `squeezer.data.corpus_plan`) are never heard in training.\n\n"
        f"{summary.to_markdown()}\n{_MARKER}{record} -->\n"
    )
    write_text_atomically(path, text)


def _read_readme(path: Path) -> CorpusSummary | None:
    """The summary recorded in a README written by `_write_readme`; None if unreadable."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    start = text.rfind(_MARKER)
    try:
        record = json.loads(text[start + len(_MARKER) :].removesuffix("-->\n"))
        return CorpusSummary(
            **record
            | {
                "splits": tuple(_split_summary(row) for row in record["splits"]),
                "versions": tuple(map(tuple, record["versions"])),
                "sentence_sources": tuple(map(tuple, record["sentence_sources"])),
                "reused": True,
            }
        )
    except (ValueError, TypeError, KeyError) as error:
        logger.debug("%s: no readable corpus summary (%s)", path, error)
        return None


def _split_summary(row: dict[str, Any]) -> SplitSummary:
    """A `SplitSummary` from its JSON record (JSON turns tuples into lists)."""
    pairs = {key: tuple(map(tuple, row[key])) for key in ("engines", "groups")}
    return SplitSummary(**row | {"accents": tuple(row["accents"])} | pairs)
