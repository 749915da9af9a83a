"""Where a demo training step's time goes: data (decode, speed perturbation, features) and the
model (forward, CTC loss, backward, optimiser), stage by stage, on the real corpus.

    python tools/profile_training_step.py demo/conformer demo/squeezeformer \
        --manifest data/synth-demo/train.jsonl.gz --batches 30 --threads 2

Each recipe's loader stages run in this process, one after the other (no worker), so each is
timed alone; in training they run in a DataLoader worker beside the model on the same cores, so
on a 2-core machine every second of data work is a second the model's threads share. The model
stages are timed with the recipe's optimiser settings (AdamW), fp32, after 3 warm-up batches.
Prints a markdown table of milliseconds per batch and shares of the step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from squeezer.data.dataset import AsrBatch, load_cut_audio, pad_sequences, speed_perturb
from squeezer.data.manifests import load_cuts
from squeezer.features import LogMelFrontend
from squeezer.model import AsrModel
from squeezer.text.tokenizers import build_tokenizer
from squeezer.training.data import training_loader
from squeezer.training.distributed import Distributed
from squeezer.training.recipe import load_recipe
from squeezer.training.step import ctc_loss

STAGES = ("decode", "speed perturb", "features", "forward + CTC loss", "backward", "optimiser")
WARMUP = 3


def profile(recipe: str, manifest: Path, batches: int, seed: int) -> dict[str, list[float]]:
    """Seconds per batch for every stage of STAGES, over `batches` training batches."""
    config = load_recipe(recipe, [f"data.train={manifest}", "data.num_workers=0"])
    cuts = load_cuts(manifest)
    tokenizer = build_tokenizer(
        "char", [c.supervisions[0].text for c in cuts], Path(tempfile.mkdtemp())
    )
    torch.manual_seed(seed)
    model = AsrModel(config.encoder_config(), vocab_size=tokenizer.vocab_size)
    model.train()
    dist = Distributed(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    loader, _ = training_loader(config, model, tokenizer, cuts, {}, dist)
    optim = config.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=optim.peak_lr, betas=tuple(optim.betas),
        weight_decay=optim.weight_decay,
    )  # fmt: skip
    frontend = LogMelFrontend(model.frontend.config).eval()
    factors = config.data.speed_perturb or (1.0,)
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = defaultdict(list)
    for index, (sampled, _) in enumerate(loader.sampler):
        if index == batches + WARMUP:
            break
        clock = {}
        start = time.perf_counter()
        waveforms = [load_cut_audio(cut) for cut in sampled]
        clock["decode"] = time.perf_counter()
        waveforms = [speed_perturb(w, float(rng.choice(factors))) for w in waveforms]
        clock["speed perturb"] = time.perf_counter()
        audio, lengths = pad_sequences([torch.from_numpy(w) for w in waveforms])
        with torch.no_grad():
            features, feature_lengths = frontend(audio, lengths)
        clock["features"] = time.perf_counter()
        texts = [c.supervisions[0].text for c in sampled]
        targets, target_lengths = pad_sequences([torch.tensor(tokenizer.encode(t)) for t in texts])
        ids = [c.id for c in sampled]
        batch = AsrBatch(features, feature_lengths, targets, target_lengths, texts, ids)
        loss = ctc_loss(model, batch, None)
        clock["forward + CTC loss"] = time.perf_counter()
        loss.backward()
        clock["backward"] = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock["optimiser"] = time.perf_counter()
        if index >= WARMUP:
            previous = start
            for stage in STAGES:
                times[stage].append(clock[stage] - previous)
                previous = clock[stage]
            times["audio s"].append(float(lengths.sum()) / 16_000)
    return times


def table(results: dict[str, dict[str, list[float]]]) -> str:
    """Median ms per batch per stage, and its share of the step, one column pair per recipe."""
    names = list(results)
    lines = ["| stage | " + " | ".join(f"{n} ms | share" for n in names) + " |",
             "|---|" + "---:|---:|" * len(names)]  # fmt: skip
    totals = {n: sum(statistics.median(results[n][s]) for s in STAGES) for n in names}
    for stage in (*STAGES, "step"):
        cells = []
        for name in names:
            ms = 1e3 * (
                totals[name] if stage == "step" else statistics.median(results[name][stage])
            )
            cells.append(f"{ms:.0f} | {100 * ms / (1e3 * totals[name]):.0f} %")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    audio = {n: statistics.median(results[n]["audio s"]) for n in names}
    lines.append(
        "| audio per batch (s) | " + " | ".join(f"{audio[n]:.1f} | " for n in names) + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", help="recipe files or packaged names")
    parser.add_argument("--manifest", type=Path, default=Path("data/synth-demo/train.jsonl.gz"))
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {name: profile(name, args.manifest, args.batches, args.seed) for name in args.recipes}
    print(f"{args.batches} batches after {WARMUP} warm-up, {args.threads} threads, "
          f"median per batch:\n")  # fmt: skip
    print(table(results))


if __name__ == "__main__":
    main()
