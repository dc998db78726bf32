"""The example configs: every section names a pipeline stage, every option one that stage has."""
import runpy
from pathlib import Path

import pytest
import yaml

from omnilm.config import resolve_options
from omnilm.errors import UserError
from omnilm.pipeline import demo_plan

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_option_belongs_to_its_stage(path, project_root):
    data = yaml.safe_load(path.read_text())
    scripts = {s.name: REPO / s.script for s in demo_plan(config=str(path))}
    assert set(data) <= set(scripts), f"sections that are no stage: {set(data) - set(scripts)}"
    for section, options in data.items():
        defaults = runpy.run_path(str(scripts[section]), run_name="config_check")["DEFAULTS"]
        unknown = {k.replace("-", "_") for k in options} - set(defaults)
        assert not unknown, f"{path.name} [{section}]: unknown options {unknown}"


def test_a_typo_in_a_section_is_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cpt:\n  learning-rate: 1.0e-4\n  paitence: 3\n")
    args = type("Args", (), {"config": str(cfg), "learning_rate": None, "patience": None})()
    with pytest.raises(UserError, match="unknown option.*paitence"):
        resolve_options(args, {"learning_rate": 2e-4, "patience": 2}, section="cpt")
    cfg.write_text("cpt:\n  learning-rate: 1.0e-4\n")
    assert resolve_options(args, {"learning_rate": 2e-4, "patience": 2}, section="cpt").learning_rate == 1e-4


def test_yaml_values_take_their_options_type(tmp_path):
    """PyYAML reads 1e-4 (no dot) as a string; the option's default type converts it,
    and a value of the wrong type is a one-line error naming the file, section and key."""
    defaults = {"config": None, "learning_rate": 1e-4, "epochs": 2, "grad_checkpoint": False, "model": None}
    cfg = tmp_path / "c.yaml"

    def resolve(text):
        cfg.write_text(text)
        args = type("Args", (), {"config": str(cfg), "learning_rate": None, "epochs": None,
                                 "grad_checkpoint": None, "model": None})()
        return resolve_options(args, defaults, section="cpt")

    assert yaml.safe_load("x: 1e-4")["x"] == "1e-4"  # the trap itself
    args = resolve("cpt:\n  learning_rate: 1e-4\n  epochs: 3.0\n  grad_checkpoint: true\n  model: models/m\n")
    assert args.learning_rate == 1e-4 and isinstance(args.learning_rate, float)
    assert args.epochs == 3 and isinstance(args.epochs, int) and args.grad_checkpoint is True
    assert args.model == "models/m"
    for text, message in (("learning_rate: abc", "cpt.learning_rate must be a number, not 'abc'"),
                          ("epochs: 2.5", "cpt.epochs must be a whole number"),
                          ("grad_checkpoint: 1", "cpt.grad_checkpoint must be true or false")):
        with pytest.raises(UserError, match=message) as e:
            resolve(f"cpt:\n  {text}\n")
        assert str(cfg) in str(e.value) and "\n" not in str(e.value)
