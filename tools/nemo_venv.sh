#!/usr/bin/env bash
# Build a throwaway venv with NeMo 2.7.3 (the last release with the Squeezeformer encoder),
# outside the repository, for the fixture maker and the NeMo side of `make bench-nemo`.
# NeMo is never a dependency of squeezer: only these two tools run in this venv.
#
#   tools/nemo_venv.sh [VENV]      (default /tmp/nemo-venv; about 3 minutes the first time)
set -euo pipefail
VENV=${1:-/tmp/nemo-venv}
PY=${PYTHON:-python3}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import nemo, librosa" 2>/dev/null; then
    exit 0
fi
"$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q torch==2.13.0
"$PIP" install -q --no-deps nemo_toolkit==2.7.3
# NeMo's ASR imports, pinned where NeMo 2.7.3 needs a particular release.
"$PIP" install -q torch==2.13.0 lightning==2.4.0 pytorch-lightning==2.4.0 hydra-core==1.3.2 \
    omegaconf==2.3.0 numpy python-dateutil wget onnx fiddle cloudpickle wrapt \
    nv-one-logger-core nv-one-logger-training-telemetry \
    nv-one-logger-pytorch-lightning-integration kaldialign librosa pyannote.core \
    pyannote.metrics braceexpand text-unidecode webdataset jiwer datasets editdistance ipython \
    matplotlib sentencepiece lhotse einops transformers pandas scipy soundfile
"$VENV/bin/python" -c "import nemo.collections.asr" >/dev/null
