"""The example configs: every section names a pipeline stage, every option one that stage has."""
import functools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from omnilm.config import resolve_options
from omnilm.errors import UserError
from omnilm.pipeline import demo_plan

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def run_script(script, *args):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True)


@functools.lru_cache(maxsize=None)
def stage_defaults(script):
    """{option: default} of a stage script, as its --print-config prints them."""
    printed = run_script(script, "--print-config")
    assert printed.returncode == 0, printed.stderr
    (_, options), = yaml.safe_load(printed.stdout).items()
    return options


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_option_belongs_to_its_stage(path, project_root):
    data = yaml.safe_load(path.read_text())
    scripts = {s.name: s.script for s in demo_plan(config=str(path))}
    assert set(data) <= set(scripts), f"sections that are no stage: {set(data) - set(scripts)}"
    for section, options in data.items():
        defaults = stage_defaults(scripts[section])
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


def test_yaml_values_take_the_flags_type_even_without_a_default(tmp_path):
    """`iters` has no default and `epochs` a whole-number one, but their flags are int
    and float: YAML reads them as the command line would."""
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("cpt:\n  iters: '8'\n  epochs: 2.5\n  eval_every: 1e1\n")
    printed = subprocess.run([sys.executable, str(REPO / "10_stage1_cpt" / "train_cpt.py"), "--config", str(cfg),
                              "--print-config"], capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    cpt = yaml.safe_load(printed.stdout)["cpt"]
    assert cpt["iters"] == 8 and cpt["epochs"] == 2.5 and cpt["eval_every"] == 10
    cfg.write_text("cpt:\n  iters: many\n")
    refused = subprocess.run([sys.executable, str(REPO / "10_stage1_cpt" / "train_cpt.py"), "--config", str(cfg),
                              "--print-config"], capture_output=True, text=True)
    assert refused.returncode == 2 and "cpt.iters must be a number, not 'many'" in refused.stderr


STAGE_SCRIPTS = sorted({s.script for s in demo_plan() if "parse_options(" in (REPO / s.script).read_text()})


def test_every_stage_with_options_resolves_them_one_way():
    assert len(STAGE_SCRIPTS) >= 8  # extract, quantize, benchmark, prepare, cpt, qa, sft, eval


@pytest.mark.parametrize("script", STAGE_SCRIPTS)
def test_help_shows_every_default_and_print_config_round_trips(script, tmp_path, project_root):
    shown = run_script(script, "--help")
    assert shown.returncode == 0, shown.stderr
    entries = {}  # flag -> its help text, from the options list (one entry per "  --flag" line and its wraps)
    for line in shown.stdout.split("options:", 1)[1].splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line
        elif entries:
            entries[flag] += " " + line.strip()
    defaults = stage_defaults(script)
    checked = 0
    for key, value in defaults.items():
        flag = "--" + key.replace("_", "-")
        if value is None or flag not in entries:  # decided at run time, or set through another flag
            continue
        assert "default" in entries[flag], f"{script} --help gives no default for {flag}"
        checked += 1
    assert checked >= 2
    section = next(s.name for s in demo_plan() if s.script == script)
    changed = {**defaults, **({"seed": 7} if "seed" in defaults else {})}  # printed YAML is a valid --config
    saved = tmp_path / "resolved.yaml"
    saved.write_text(yaml.safe_dump({section: changed}))
    again = run_script(script, "--config", saved, "--print-config")
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load(again.stdout) == {section: changed}
