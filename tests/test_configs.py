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
