#!/usr/bin/env bash
# Runs every stage in order on the embedded demo (no download, no GPU), in the
# project's own .venv (created and filled on first use).
#   ./run_pipeline.sh
source "$(dirname "$0")/scripts/bootstrap.sh"
set -x
python 00_extract/make_demo_omni.py --force
python 00_extract/extract_text_backbone.py --force
python 04_inference/chat_once.py "What is the capital of France?"
