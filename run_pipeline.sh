#!/usr/bin/env bash
# The whole pipeline on the embedded demo (no download, no GPU), in the project's
# own .venv (created and filled on first use). --help lists the options:
#   ./run_pipeline.sh
#   ./run_pipeline.sh --source models/MyOmni --pdf paper.pdf --config configs/my.yaml
source "$(dirname "$0")/scripts/bootstrap.sh"
exec python -m omnilm.pipeline "$@"
