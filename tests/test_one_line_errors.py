"""One check for an adapter (files, adapter_config.json, rank and shapes against the
base's weights) used by chat_once, the evaluation (every stage before any model
loads), the app and export; an output that cannot be written (read-only, permission,
no space) and a text_config that lacks a size are one line naming the path, and an
output on another filesystem is written by a plain copy."""
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import assert_one_line_refusal, make_lora_adapter, snapshot

from omnilm.errors import UserError
from omnilm.paths import REPO_DIR


def run(script, *args, root):
    env = {**os.environ, "OMNILM_ROOT": str(root)}
    return subprocess.run([sys.executable, str(REPO_DIR / script), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=root, timeout=300)


def broken_adapters(tiny_model, demo_text_model, root):
    """name -> (adapter folder, words of its refusal): each a way an adapter is damaged."""
    cases = {}
    truncated = make_lora_adapter(tiny_model, root / "truncated")
    data = (truncated / "adapters.safetensors").read_bytes()
    (truncated / "adapters.safetensors").write_bytes(data[:len(data) // 2])
    cases["truncated"] = (truncated, "truncated")
    bad_json = make_lora_adapter(tiny_model, root / "bad-json")
    (bad_json / "adapter_config.json").write_text('{"fine_tune_type": "lora", ')
    cases["bad-json"] = (bad_json, "adapter_config.json")
    rank = make_lora_adapter(tiny_model, root / "rank", rank=4)
    config = json.loads((rank / "adapter_config.json").read_text())
    config["lora_parameters"]["rank"] = 8
    (rank / "adapter_config.json").write_text(json.dumps(config))
    cases["rank"] = (rank, "rank")
    cases["other-base"] = (make_lora_adapter(demo_text_model, root / "other-base"), "layer")
    return cases


def test_chat_once_refuses_a_broken_adapter_in_one_line(project_root, tiny_model, demo_text_model):
    for name, (adapter, words) in broken_adapters(tiny_model, demo_text_model, project_root / "adapters").items():
        before = snapshot(adapter)
        r = run("04_inference/chat_once.py", "--model", tiny_model, "--adapter", adapter, "--max-tokens", 2, "hi",
                root=project_root)
        assert_one_line_refusal(r, str(adapter.name), words)
        assert snapshot(adapter) == before, name


def test_compare_stages_checks_every_adapter_before_any_model_loads(project_root, tiny_model, demo_text_model):
    for name, (adapter, words) in broken_adapters(tiny_model, demo_text_model, project_root / "adapters").items():
        r = run("30_evaluation/compare_stages.py", "--stages", f"base={tiny_model}", f"sft={tiny_model}+{adapter}",
                "--questions", REPO_DIR / "10_stage1_cpt" / "demo_paper.questions.jsonl", "--facts", "",
                "--per-kind", 1, "--max-tokens", 2, "--training-data", "--output", project_root / "results",
                root=project_root)
        assert_one_line_refusal(r, "stage sft", words)
        assert "evaluating" not in r.stdout + r.stderr, name  # the base was not evaluated first
        assert not list((project_root / "results").iterdir()), name


def test_export_uses_the_same_check(project_root, tiny_model, demo_text_model):
    adapter, words = broken_adapters(tiny_model, demo_text_model, project_root / "adapters")["rank"]
    r = run("04_inference/export_model.py", "--model", tiny_model, "--adapter", adapter, "--output",
            project_root / "models" / "fused", root=project_root)
    assert_one_line_refusal(r, "rank", words)
    assert not (project_root / "models" / "fused").exists()


def test_a_full_disk_is_one_line_naming_the_output(tmp_path):
    """/dev/full answers every write with ENOSPC, as a full disk does (mlx's own saver
    says only "[write] Unable to write")."""
    import mlx.core as mx

    from omnilm.atomic import writing

    with pytest.raises(UserError, match=r"cannot write .*out.*no space left") as e:
        with writing(tmp_path / "out"):
            with open("/dev/full", "w") as f:
                f.write("x" * 100)
    assert "\n" not in str(e.value)
    (tmp_path / "w.safetensors").symlink_to("/dev/full")
    with pytest.raises(UserError, match=r"cannot write .*out.*no space left"):
        with writing(tmp_path / "out"):
            mx.save_safetensors(str(tmp_path / "w.safetensors"), {"a": mx.zeros((1000,))})
    with pytest.raises(ValueError):  # anything else is not an output problem
        with writing(tmp_path / "out"):
            raise ValueError("a bug")


def test_an_unwritable_output_is_one_line(project_root, tiny_model):
    # as root, a mode bit stops nothing; sysfs refuses a new folder (EACCES) to anyone
    output = Path("/sys") / f"omnilm-{uuid.uuid4().hex[:8]}"
    r = run("01_quantize/quantize.py", "--model", tiny_model, "--bits", 4, "--output", output, root=project_root)
    assert_one_line_refusal(r, str(output))
    assert not output.exists()


@pytest.fixture
def small_mount(tmp_path):
    """mount(options) -> a fresh tmpfs (read-only, or a few KiB): a real read-only
    filesystem or a real full disk; skips where mounting is not allowed."""
    mounted = []

    def mount(options):
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                          capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.mark.parametrize("options,words", [("ro", "read-only"), ("size=64k", "no space left")])
def test_a_read_only_or_full_output_is_one_line(project_root, tiny_model, small_mount, options, words):
    point = small_mount(options)
    r = run("01_quantize/quantize.py", "--model", tiny_model, "--bits", 4, "--output", point / "q4",
            root=project_root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the progress the work got to
    assert last.startswith("error: cannot write") and f"{point.name}/q4" in last and words in last, last
    assert not any(p.name != "lost+found" for p in point.iterdir())  # no temporary folder left


def test_extraction_onto_another_filesystem_copies(project_root, demo_omni_model):
    """A kernel-side copy between filesystems fails with EXDEV: a plain copy follows."""
    output = Path("/dev/shm") / f"omnilm-{uuid.uuid4().hex[:8]}"
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(demo_omni_model).st_dev:
        pytest.skip("no second filesystem")
    try:
        r = run("00_extract/extract_text_backbone.py", "--source", demo_omni_model, "--output", output,
                "--dtype", "float32", root=project_root)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        index = json.loads((output / "model.safetensors.index.json").read_text())
        assert index["metadata"]["total_size"] > 0 and (output / "manifest.json").exists()
    finally:
        shutil.rmtree(output, ignore_errors=True)


def test_text_config_without_a_size_is_one_line(project_root, demo_omni_model):
    source = project_root / "models" / "odd-omni"
    source.mkdir()
    for f in demo_omni_model.iterdir():
        if f.name != "config.json":
            (source / f.name).symlink_to(f)
    config = json.loads((demo_omni_model / "config.json").read_text())
    del config["text_config"]["hidden_size"]
    (source / "config.json").write_text(json.dumps(config))
    r = run("00_extract/extract_text_backbone.py", "--source", source, root=project_root)
    assert_one_line_refusal(r, "hidden_size", "config.json")
    assert not (project_root / "models" / "odd-omni-Text").exists()


def test_the_exit_of_a_script_names_the_path_of_an_os_error():
    """run_main is where every script ends: an OSError from a write that no stage
    wrapped is still one line naming the file."""
    code = ("from omnilm.errors import run_main\n"
            "def main():\n"
            "    open('/sys/omnilm-nope', 'w')\n"
            "run_main(main)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_DIR)
    assert_one_line_refusal(r, "/sys/omnilm-nope", "permission denied")
