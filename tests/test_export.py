"""ONNX export: ONNX Runtime against PyTorch on every rung and NeMo fixture, the CLI, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import squeezer
from squeezer.audio import load_audio
from squeezer.cli import main
from squeezer.decoding import decode_greedy_text
from squeezer.export import ONNX_FILE, ONNX_INT8_FILE, TOKENS_FILE, export_onnx, subsampling_factor
from squeezer.features import sherpa_features
from squeezer.model import AsrModel
from squeezer.nemo import import_nemo
from squeezer.onnx_model import OnnxCtcModel, load_onnx_model, sherpa_transcribe
from squeezer.scoring import error_rates
from squeezer.text import CharTokenizer
from squeezer.transcribe import transcribe
from tests.conftest import small_rungs

FIXTURES = Path(__file__).parent / "fixtures" / "nemo"
NEMO_MODELS = ["squeezeformer_unet_bpe", "conformer_striding_bpe", "fastconformer_dw8_bpe",
               "squeezeformer_char"]  # fmt: skip
AUDIO = [FIXTURES / "audio" / f"utt{index}.wav" for index in range(3)]
# ONNX Runtime and PyTorch run the same float32 graph with other kernels and fusions: log-probs
# (|x| < 60, one float32 ulp 4e-6) a few ulps apart (measured <= 1.2e-5 on the fixtures).
TOLERANCE = 1e-4
# Feature frames (10 ms): 0.3 s to 60 s, odd lengths at the U-Net's edges, far from the 301
# and 173 frames traced at export. Each alone, and all five in one padded batch.
LENGTHS = [30, 6000, 31, 1001, 4097]
# Without subsampling the same durations as model frames (40 ms): attention over 6 000 frames
# would take 6 GB a tensor.
UNSUBSAMPLED_LENGTHS = [8, 1500, 9, 251, 1025]


def _exported(model: AsrModel, directory: Path) -> OnnxCtcModel:
    export_onnx(model, directory)
    return load_onnx_model(directory)


@pytest.fixture(scope="module", params=small_rungs(), ids=lambda rung: rung[0])
def rung(request, tmp_path_factory) -> tuple[AsrModel, OnnxCtcModel]:
    _, config = request.param
    tokenizer = CharTokenizer()
    torch.manual_seed(0)
    model = AsrModel(config, tokenizer.vocab_size).eval()
    model.tokenizer = tokenizer
    return model, _exported(model, tmp_path_factory.mktemp("onnx"))


def _assert_same_outputs(ours, theirs, lengths: torch.Tensor) -> None:
    """Equal lengths, log-probs within TOLERANCE, and the same greedy token wherever the best
    two tokens are further apart than the outputs can differ (2 x TOLERANCE)."""
    assert torch.equal(ours.lengths, theirs.lengths)
    for row, frames in enumerate(theirs.lengths.tolist()):
        a, b = ours.log_probs[row, :frames], theirs.log_probs[row, :frames]
        assert (a - b).abs().max() < TOLERANCE
        top2 = b.topk(2, dim=-1).values
        clear = top2[:, 0] - top2[:, 1] > 2 * TOLERANCE
        assert torch.equal(a.argmax(-1)[clear], b.argmax(-1)[clear])


@torch.no_grad()
def test_onnx_runtime_matches_pytorch_on_every_rung(rung) -> None:
    model, exported = rung
    generator = torch.Generator().manual_seed(1)
    sizes = LENGTHS if model.config.subsampling != "none" else UNSUBSAMPLED_LENGTHS
    inputs = [torch.randn(n, model.config.input_dim, generator=generator) for n in sizes]
    for x in inputs:  # alone
        lengths = torch.tensor([x.size(0)])
        _assert_same_outputs(exported(x[None], lengths), model(x[None], lengths), lengths)
    batch = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True)  # (5, 6000, F)
    lengths = torch.tensor(sizes)
    _assert_same_outputs(exported(batch, lengths), model(batch, lengths), lengths)
    assert torch.equal(exported.output_lengths(lengths), model.output_lengths(lengths))


@pytest.fixture(scope="module", params=NEMO_MODELS)
def nemo_export(request, tmp_path_factory) -> tuple[str, AsrModel, Path]:
    model = squeezer.load_model(FIXTURES / f"{request.param}.nemo")
    directory = tmp_path_factory.mktemp("onnx")
    export_onnx(model, directory)
    return request.param, model, directory


@torch.no_grad()
def test_nemo_fixtures_export_with_the_same_log_probs_and_text(nemo_export) -> None:
    name, model, directory = nemo_export
    exported = load_onnx_model(directory)
    waves = [torch.from_numpy(load_audio(path)) for path in AUDIO]
    lengths = torch.tensor([wave.numel() for wave in waves])
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    _assert_same_outputs(
        exported.log_probs(batch, lengths), model.log_probs(batch, lengths), lengths
    )
    texts = np.load(FIXTURES / f"{name}.npz")["texts"].tolist()  # NeMo's own greedy texts
    assert [r.text for r in transcribe(exported, AUDIO)] == texts


def test_export_folder_holds_what_sherpa_onnx_reads(nemo_export) -> None:
    name, model, directory = nemo_export
    graph = onnx.load(str(directory / ONNX_FILE))
    assert [i.name for i in graph.graph.input] == ["audio_signal", "length"]
    assert [o.name for o in graph.graph.output] == ["logprobs", "encoded_lengths"]
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    assert metadata["vocab_size"] == str(model.vocab_size + 1)
    assert metadata["subsampling_factor"] == str(4 if "dw8" not in name else 8)
    normalize = model.frontend.config.normalize
    assert metadata["normalize_type"] == ("per_feature" if normalize == "per_feature" else "")
    lines = (directory / TOKENS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == model.vocab_size + 1 and lines[-1] == f"<blk> {model.vocab_size}"
    assert [line.rsplit(" ", 1)[0] for line in lines[:-1]] == model.tokenizer.tokens()


def test_cli_export_then_transcribe_with_the_onnx_backends(tmp_path, capsys) -> None:
    nemo, out = FIXTURES / "squeezeformer_char.nemo", tmp_path / "onnx"
    expected = np.load(FIXTURES / "squeezeformer_char.npz")["texts"][1]
    assert main(["export", str(nemo), "--out", str(out), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert str(out / ONNX_FILE) in printed and str(out / ONNX_INT8_FILE) in printed
    assert main(["transcribe", str(out), str(AUDIO[1]), "--backend", "onnx"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == f"{AUDIO[1]}\t{expected}"
    # int8 weights: a quarter of the bytes of the quantised tensors, and integer matmuls.
    assert (out / ONNX_INT8_FILE).stat().st_size < (out / ONNX_FILE).stat().st_size
    graph = onnx.load(str(out / ONNX_INT8_FILE))
    assert any(node.op_type == "MatMulInteger" for node in graph.graph.node)
    assert main(["transcribe", str(out), str(AUDIO[1]), "--backend", "onnx-int8"]) == 0
    assert capsys.readouterr().out.startswith(f"{AUDIO[1]}\t")


def _one_line_error(capsys, *argv: str, match: str) -> None:
    assert main(list(argv)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and match in error, error


def test_bad_inputs_are_one_line_errors(tmp_path, capsys) -> None:
    audio = str(AUDIO[0])
    _one_line_error(capsys, "export", str(tmp_path), "--out", str(tmp_path / "o"),
                    match="config.yaml: no such file")  # fmt: skip
    nemo = FIXTURES / "squeezeformer_char.nemo"
    import_nemo(nemo, tmp_path / "model")
    _one_line_error(capsys, "transcribe", str(tmp_path / "model"), audio, "--backend", "onnx",
                    match="model.onnx: no such file")  # fmt: skip
    (tmp_path / "model" / ONNX_FILE).write_bytes(b"not a graph")
    _one_line_error(capsys, "transcribe", str(tmp_path / "model"), audio, "--backend", "onnx",
                    match="ONNX Runtime cannot load this graph")  # fmt: skip
    _one_line_error(capsys, "transcribe", str(tmp_path / "model"), audio, "--backend",
                    "onnx-int8", match="export with --int8")  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[AsrModel, Path, Path, Path, list[Path]]:
    """A tiny model that has memorised 12 synthetic utterances, trained on sherpa-onnx's
    features: the model, its directory, its export, the manifest and audio of those utterances."""
    from squeezer.data.corpus import synthesize_corpus
    from squeezer.data.manifests import load_cuts, save_cuts
    from squeezer.training import train
    from tests.training.test_loop import recipe

    corpus = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(corpus, "tiny", seed=0)
    cuts = load_cuts(corpus / "train.jsonl.gz").subset(first=12)
    save_cuts(cuts, corpus / "train12.jsonl.gz")
    config = recipe(corpus / "train12.jsonl.gz", steps=200, checkpoint_every=200)
    config = dataclasses.replace(config, features=sherpa_features())  # what sherpa-onnx computes
    model_dir = train(config, tmp_path_factory.mktemp("run"))
    model = squeezer.load_model(model_dir)
    directory = tmp_path_factory.mktemp("onnx")
    export_onnx(model, directory)
    audio = [Path(cut.recording.sources[0].source) for cut in cuts]
    audio = [path if path.is_absolute() else corpus / path for path in audio]
    return model, model_dir, directory, corpus / "train12.jsonl.gz", audio


def test_evaluate_with_the_onnx_backend_scores_like_pytorch(trained, tmp_path) -> None:
    _, model_dir, directory, manifest, _ = trained
    for backend, path in (("torch", model_dir), ("onnx", directory)):
        out = tmp_path / backend
        assert (
            main(["evaluate", str(path), str(manifest), "--backend", backend, "--out", str(out)])
            == 0
        )
    torch_rows, onnx_rows = (
        (tmp_path / b / "hypotheses.jsonl").read_text() for b in ("torch", "onnx")
    )
    assert onnx_rows == torch_rows  # a trained model's greedy tokens are far from ties


@torch.no_grad()
def test_sherpa_onnx_transcribes_like_squeezer(trained) -> None:
    """sherpa-onnx loads the export as a NeMo CTC model and writes squeezer's text, file for file,
    over the output frames it decodes.

    The model was trained with `sherpa_features()`, so sherpa-onnx (kaldi-native-fbank) and
    squeezer compute the same features up to float32 rounding (tests/test_features.py), and a
    trained model's greedy tokens are far from ties. sherpa-onnx ignores the graph's
    `encoded_lengths` and decodes T // subsampling_factor output frames, one fewer than the
    model's ceil(T / 4) whenever T % 4 != 0: a token emitted in that last frame is lost (README,
    Deployment). With squeezer's default frontend the same tiny model wrote 8 and 11 of 12
    identical texts in two trainings (CER 0.5 %).
    """
    model, _, directory, _, audio = trained
    assert model.frontend.config.sherpa_compat
    factor = subsampling_factor(model)
    expected = []
    for path in audio:
        waveform = torch.from_numpy(load_audio(path))[None]
        features, frames = model.frontend(waveform, torch.tensor([waveform.shape[1]]))
        output = model(features, frames)
        decoded = torch.div(frames, factor, rounding_mode="floor")  # sherpa-onnx's rule
        expected += decode_greedy_text(output.log_probs, decoded, model.tokenizer)
    theirs = sherpa_transcribe(directory, audio)
    ours = [r.text for r in transcribe(model, audio)]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    print(f"\nsherpa-onnx: {same} of 12 texts identical")
    assert theirs == expected
    assert error_rates(ours, theirs).cer < 0.05  # at most a final token per file


@torch.no_grad()
def test_fitted_feature_statistics_travel_with_the_export(tmp_path) -> None:
    """normalize="global": the graph starts at the features, so their statistics go beside it."""
    from squeezer.features import FeatureConfig, FeatureStats

    _, config = small_rungs()[5]  # the Squeezeformer (depthwise-subsampling rung), shrunk
    tokenizer = CharTokenizer()
    model = AsrModel(config.replace(input_dim=80), tokenizer.vocab_size,
                     FeatureConfig(normalize="global")).eval()  # fmt: skip
    model.tokenizer = tokenizer
    model.frontend.set_global_stats(FeatureStats(torch.full((80,), -5.0), torch.full((80,), 3.0)))
    exported = _exported(model, tmp_path)
    waves = [torch.from_numpy(load_audio(path)) for path in AUDIO]
    lengths = torch.tensor([wave.numel() for wave in waves])
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    _assert_same_outputs(
        exported.log_probs(batch, lengths), model.log_probs(batch, lengths), lengths
    )
    (tmp_path / "frontend.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"frontend\.safetensors"):
        load_onnx_model(tmp_path)
