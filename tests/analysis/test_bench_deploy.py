"""The deployment benchmark's pieces on a tiny model: every runtime runs and is reported."""

from __future__ import annotations

from squeezer.analysis import bench_deploy
from squeezer.config import EncoderConfig
from squeezer.data.corpus import synthesize_corpus
from squeezer.data.manifests import load_cuts, save_cuts
from squeezer.model import AsrModel, save_model
from squeezer.text import CharTokenizer
from tests.conftest import shrink

RUNTIMES = ["PyTorch eager fp32", "ONNX Runtime fp32", "ONNX Runtime int8"]


def test_bench_deploy_measures_every_runtime(tmp_path) -> None:
    tokenizer = CharTokenizer()
    config = shrink(EncoderConfig.preset("squeezeformer-xs"), input_dim=80)
    model = AsrModel(config, tokenizer.vocab_size)
    save_model(model, tmp_path / "model", tokenizer)
    synthesize_corpus(tmp_path / "corpus", "tiny", seed=0)
    manifest = tmp_path / "test3.jsonl.gz"
    save_cuts(load_cuts(tmp_path / "corpus" / "test.jsonl.gz").subset(first=3), manifest)

    loaded, export_dir, scratch = bench_deploy.prepare(str(tmp_path / "model"), threads=1)
    with scratch:
        throughput = bench_deploy.network_throughput("tiny", loaded, export_dir, 2, 1)
        transcription = bench_deploy.transcription_rows("tiny", loaded, export_dir, manifest, 1, 2)
    assert [row.runtime for row in throughput] == RUNTIMES
    assert all(0 < row.low <= row.median <= row.high and row.size_mb > 0 for row in throughput)
    runtimes = [row.runtime for row in transcription]
    assert runtimes[-1] == "sherpa-onnx fp32" and len(runtimes) == 4
    assert all(0 < row.low <= row.real_time_factor <= row.high and row.cer >= 0
               for row in transcription)  # fmt: skip
    assert transcription[0].identical == transcription[0].files == 3  # PyTorch against itself
    report = bench_deploy.format_markdown(throughput, transcription, "squeezer bench-deploy", 2, 1)
    assert report.count("| tiny |") == 7 and "1.00x" in report
