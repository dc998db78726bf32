"""Data-parallel training: two processes on localhost through mlx.launch's ring backend."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = Path(sys.executable).with_name("mlx.launch")


@pytest.mark.skipif(not LAUNCH.exists() and not shutil.which("mlx.launch"),
                    reason="mlx.launch is not installed with this mlx")
@pytest.mark.slow
def test_two_ring_processes_train_one_adapter_written_once(tiny_model, project_root):
    data = project_root / "data" / "cpt" / "paper"
    data.mkdir(parents=True)
    texts = [f"The Zorblax protocol number {i} uses {7 * i} quantum widgets." for i in range(6)]
    (data / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:5]))
    (data / "valid.jsonl").write_text(json.dumps({"text": texts[5]}) + "\n")
    launch = str(LAUNCH) if LAUNCH.exists() else shutil.which("mlx.launch")
    env = {**os.environ, "OMNILM_ROOT": str(project_root)}  # omnilm splits the cores between the ranks
    cmd = [launch, "--backend", "ring", "-n", "2", "--hosts", "127.0.0.1", sys.executable,
           str(REPO / "10_stage1_cpt" / "train_cpt.py"), "--model", str(tiny_model), "--data", str(data),
           "--num-layers", "2", "--rank", "4", "--learning-rate", "1e-3", "--iters", "4", "--eval-every", "2"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert out.stdout.count("cpt adapter: adapters/paper-cpt") == 1  # only rank 0 prints
    manifest = json.loads((project_root / "adapters" / "paper-cpt" / "manifest.json").read_text())
    m = manifest["metrics"]
    assert manifest["complete"] and m["processes"] == 2 and m["iterations"] == 4
    assert m["best_val_loss"] < m["val_loss_before"]
    # a global batch of 2 (one example per process): 5 examples make 2 steps per epoch
    assert m["epochs"] == 2.0
