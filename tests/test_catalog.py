"""The chat app's model/adapter pickers: what is listed, what is skipped, what fits."""
import json
import os
import time

import pytest
from conftest import make_lora_adapter, place_model

from omnilm import catalog
from omnilm.errors import UserError


def adapter(project_root, name):
    return catalog.read_adapter(project_root / "adapters" / name)


def model(name):
    return next(m for m in catalog.list_models()[0] if m.name == name)


def test_models_listed_and_skipped_with_reasons(chat_project, tmp_path):
    models = chat_project / "models"
    (models / "empty").mkdir()
    (models / "no-weights").mkdir()
    (models / "no-weights" / "config.json").write_text('{"model_type": "llama"}')
    (models / ".demo-omni-Text.tmp-123").mkdir()  # a stage's staging folder: not a model, not counted
    place_model(chat_project / "models" / "demo-omni-Text", models, "exotic")
    config = json.loads((models / "exotic" / "config.json").read_text())
    (models / "exotic" / "config.json").unlink()  # a hard link: replace, never write through
    (models / "exotic" / "config.json").write_text(json.dumps({**config, "model_type": "no-such-arch"}))
    outside = tmp_path / "outside-model"
    place_model(models / "demo-omni-Text", tmp_path, "outside-model")
    (models / "linked").symlink_to(outside)

    entries, skipped = catalog.list_models()
    assert [m.name for m in entries] == ["demo-omni-Text"]
    reasons = dict(skipped)
    assert set(reasons) == {"demo-omni", "empty", "no-weights", "exotic", "linked"}
    assert "omni/VLM" in reasons["demo-omni"]
    assert "no safetensors" in reasons["no-weights"]
    assert "not supported" in reasons["exotic"]
    assert "outside" in reasons["linked"]
    note = catalog.skipped_note(skipped)
    assert note.startswith("5 folders under models/ skipped") and "demo-omni: omni/VLM" in note


@pytest.mark.parametrize("name", ["../models", "/etc", "a/b", ".hidden", "", "..", "x\\y"])
def test_picked_names_cannot_leave_the_folder(project_root, name):
    with pytest.raises(UserError):
        catalog.child_dir(project_root / "models", name, "model")


def test_symlink_out_of_the_folder_is_refused(project_root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (project_root / "adapters" / "sneaky").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="outside"):
        catalog.child_dir(project_root / "adapters", "sneaky", "adapter")
    assert catalog.child_dir(project_root / "adapters", "plain") == (project_root / "adapters" / "plain").resolve()
    assert catalog.list_adapters() == []  # a linked folder is not even listed


def test_adapter_checks_agree_with_mlx_lm(chat_project, tiny_model):
    """The header-only check says yes exactly where mlx-lm's own load succeeds."""
    from mlx_lm import load

    demo, tiny = model("demo-omni-Text"), catalog.ModelEntry("tiny", tiny_model, json.loads(
        (tiny_model / "config.json").read_text()))
    sft, cpt = adapter(chat_project, "demo_paper-sft"), adapter(chat_project, "tiny-cpt")

    fits = catalog.check_adapter(sft, demo)
    assert fits.ok and fits.reason == ""
    assert "trained on demo-omni-Text" in fits.notes

    wrong_dims = catalog.check_adapter(cpt, demo)
    assert not wrong_dims.ok and "hidden size 576" in wrong_dims.reason
    assert "trained on " + tiny_model.name in wrong_dims.notes and "data: tiny" in wrong_dims.notes
    with pytest.raises(ValueError):
        load(str(demo.path), adapter_path=str(cpt.path), lazy=True)

    wrong_layers = catalog.check_adapter(sft, tiny)  # the demo adapter adapts layers 28-29
    assert not wrong_layers.ok and "layer 28 but tiny has 2 layers" in wrong_layers.reason

    assert catalog.check_adapter(cpt, tiny).ok
    load(str(tiny_model), adapter_path=str(cpt.path), lazy=True)  # and mlx-lm agrees


def test_adapter_outside_its_layer_span_is_refused(project_root, tiny_model):
    out = make_lora_adapter(tiny_model, project_root / "adapters" / "span", num_layers=2)
    config = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**config, "num_layers": 1}))
    tiny = catalog.ModelEntry("tiny", tiny_model, json.loads((tiny_model / "config.json").read_text()))
    result = catalog.check_adapter(catalog.read_adapter(out), tiny)
    assert not result.ok and "cover 2 layers but its config converts only the last 1" in result.reason


def test_quantized_base_fits_an_adapter_trained_on_the_float_model(project_root, tiny_model):
    from mlx_lm import convert

    quantized = project_root / "models" / "tiny-4bit"
    convert(str(tiny_model), str(quantized), quantize=True, q_bits=4, q_group_size=32)
    entry = catalog.ModelEntry("tiny-4bit", quantized, json.loads((quantized / "config.json").read_text()))
    out = make_lora_adapter(tiny_model, project_root / "adapters" / "float-lora")
    assert catalog.check_adapter(catalog.read_adapter(out), entry).ok


def test_broken_adapters_are_incompatible_not_crashes(chat_project):
    demo = model("demo-omni-Text")
    adapters = chat_project / "adapters"
    (adapters / "unfinished").mkdir()
    (adapters / "unfinished" / "adapter_config.json").write_text('{"num_layers": 2}')
    (adapters / "corrupt").mkdir()
    (adapters / "corrupt" / "adapter_config.json").write_text('{"num_layers": 2}')
    (adapters / "corrupt" / "adapters.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    (adapters / "bad-config").mkdir()
    (adapters / "bad-config" / "adapter_config.json").write_text("{")
    (adapters / "bad-config" / "adapters.safetensors").write_bytes(b"")
    (adapters / "notes").mkdir()  # no adapter files at all: not listed

    listed = {a.name: a for a in catalog.list_adapters()}
    assert set(listed) == {"demo_paper-sft", "tiny-cpt", "unfinished", "corrupt", "bad-config"}
    reasons = {name: catalog.check_adapter(a, demo) for name, a in listed.items()}
    assert "no adapters.safetensors" in reasons["unfinished"].reason
    assert "corrupt" in reasons["corrupt"].reason
    assert "adapter_config.json" in reasons["bad-config"].reason
    assert not any(reasons[n].ok for n in ("unfinished", "corrupt", "bad-config", "tiny-cpt"))


def test_default_is_the_newest_fitting_sft_adapter(chat_project, demo_text_model):
    demo = model("demo-omni-Text")
    assert catalog.default_adapter(catalog.list_adapters(), demo) == "demo_paper-sft"
    done = {"complete": True}
    newer = make_lora_adapter(demo_text_model, chat_project / "adapters" / "v2-sft", manifest={"stage": "sft", **done})
    cpt = make_lora_adapter(demo_text_model, chat_project / "adapters" / "v3-cpt", manifest={"stage": "cpt", **done})
    running = make_lora_adapter(demo_text_model, chat_project / "adapters" / "v4-sft", manifest={"stage": "sft"})
    later = time.time() + 10
    os.utime(newer / "adapters.safetensors", (later, later))
    os.utime(cpt / "adapters.safetensors", (later + 10, later + 10))  # newer, but not SFT
    os.utime(running / "adapters.safetensors", (later + 20, later + 20))  # newest, but still training
    assert catalog.default_adapter(catalog.list_adapters(), demo) == "v2-sft"
    unfinished = catalog.check_adapter(catalog.read_adapter(running), demo)
    assert unfinished.ok and "training not finished" in " ".join(unfinished.notes)
    tiny_only = [a for a in catalog.list_adapters() if a.name == "tiny-cpt"]
    assert catalog.default_adapter(tiny_only, demo) is None

    # the last evaluation's pick wins: the CPT adapter when it answered more of the paper
    results = chat_project / "results"
    results.mkdir(exist_ok=True)

    def evaluated(adapter, model_dir="models/demo-omni-Text"):
        pick = {"stage": "x", "model": model_dir, "adapter": adapter, "notes": []}
        (results / "eval.json").write_text(json.dumps({"metrics": {"recommended": pick}}))

    evaluated("adapters/v3-cpt")
    assert catalog.default_adapter(catalog.list_adapters(), demo) == "v3-cpt"
    evaluated(None)  # the base answered best: no adapter
    assert catalog.default_adapter(catalog.list_adapters(), demo) is None
    evaluated(None, "models/another-model")  # a pick about another model says nothing of this one
    assert catalog.default_adapter(catalog.list_adapters(), demo) == "v2-sft"
    evaluated("adapters/v4-sft")  # picked, but no longer usable (training again): the newest fitting SFT
    assert catalog.default_adapter(catalog.list_adapters(), demo) == "v2-sft"
    (results / "eval.json").write_text("{not json")
    assert catalog.default_adapter(catalog.list_adapters(), demo) == "v2-sft"
