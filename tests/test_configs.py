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


# --- what a config file may hold: sections, top-level keys, types, shapes and ranges

def parse(section, text, tmp_path, *argv):
    """A stage's options as its script resolves them, from a config file holding `text`."""
    from omnilm.config import parse_options, stage_parser

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    return parse_options(stage_parser(section), section, ["--config", str(cfg), *map(str, argv)])


def refused(section, text, tmp_path):
    with pytest.raises(UserError) as e:
        parse(section, text, tmp_path)
    assert str(tmp_path / "c.yaml") in str(e.value) and "\n" not in str(e.value)
    return str(e.value)


def test_sections_are_the_stage_scripts_sections():
    from omnilm.config import SECTIONS

    for s in demo_plan():
        if "parse_options(" in (REPO / s.script).read_text():
            assert SECTIONS[s.name] == s.script
    for section, script in SECTIONS.items():
        assert f'parse_options(build_parser(), "{section}"' in (REPO / script).read_text(), script


def test_an_unknown_section_or_top_level_key_is_an_error_that_lists_the_known_ones(tmp_path):
    message = refused("cpt", "cpts:\n  rank: 4\n", tmp_path)  # a misspelled section was silently ignored
    assert "unknown section(s) cpts" in message and "cpt, eval, export, extract, prepare, qa, quantize, sft" in message
    message = refused("cpt", "learning_rate: 1.0e-4\nlearnig_rate: 1.0e-4\n", tmp_path)
    assert "unknown top-level key(s) learnig_rate" in message
    assert "learning_rate" in message and "replay_share" in message and "cpt, eval" in message
    for text in ("force: true\n", "config: other.yaml\n"):  # about one run, never a config's
        assert "unknown top-level key" in refused("eval", text, tmp_path)
    # another stage's option at top level is fine (each stage takes the ones it has), so is an empty section
    args = parse("cpt", "replay_share: 0.3\nseed: 3\nsft:\ncpt:\n  rank: 4\n", tmp_path)
    assert (args.seed, args.rank) == (3, 4)


@pytest.mark.parametrize("section, text, message", [
    ("cpt", "epochs: -1", "cpt.epochs must be at least 1, not -1"),   # trained one step
    ("sft", "epochs: 0.5", "sft.epochs must be at least 1, not 0.5"),
    ("cpt", "rank: 0", "cpt.rank must be at least 1, not 0"),           # trained and reported success
    ("sft", "learning_rate: 0", "sft.learning_rate must be above 0, not 0"),
    ("cpt", "learning_rate: -1e-4", "cpt.learning_rate must be above 0, not '-1e-4'"),
    ("cpt", "batch_size: 0", "cpt.batch_size must be at least 1"),
    ("sft", "dropout: 1.5", "sft.dropout must be between 0 and 1"),
    ("prepare", "valid_fraction: 1.5", "prepare.valid_fraction must be between 0 and 1, not 1.5"),
    ("prepare", "heldout_fraction: -0.1", "prepare.heldout_fraction must be between 0 and 1"),
    ("prepare", "replay_share: 2", "prepare.replay_share must be between 0 and 1"),
    ("qa", "min_overlap: 80", "qa.min_overlap must be between 0 and 1"),
    ("cpt", "model: [models/a, models/b]", "cpt.model takes one value, not a list"),  # a TypeError traceback
    ("eval", "output: {dir: results}", "eval.output takes one value, not a mapping"),
    ("prepare", "extractor: ocr", "prepare.extractor must be one of auto, pdftotext, pdfplumber, not 'ocr'"),
])
def test_a_value_out_of_range_or_of_the_wrong_shape_is_one_line(section, text, message, tmp_path):
    key, value = text.split(": ", 1)
    assert message in refused(section, f"{section}:\n  {text}\n", tmp_path)
    assert message.split(".", 1)[1] in refused(section, f"{text}\n", tmp_path)  # at top level too
    flag = ["--" + key.replace("_", "-"), value]
    if not value.startswith(("[", "{")) and key != "extractor":  # the flag is checked by the same rule
        with pytest.raises(SystemExit) as e:
            parse(section, "", tmp_path, *flag)
        assert e.value.code == 2


def test_the_edges_of_each_range_and_the_shapes_that_are_fine(tmp_path):
    args = parse("cpt", "cpt:\n  epochs: 1\n  rank: 1\n  learning_rate: 1e-6\n  dropout: 0\n", tmp_path)
    assert (args.epochs, args.rank, args.learning_rate, args.dropout) == (1.0, 1, 1e-6, 0.0)
    args = parse("prepare", "prepare:\n  valid_fraction: 1\n  heldout_fraction: 0\n  replay_share: 0.0\n", tmp_path)
    assert (args.valid_fraction, args.heldout_fraction, args.replay_share) == (1.0, 0.0, 0.0)
    args = parse("eval", "eval:\n  questions: mine.jsonl\n", tmp_path)  # one value for a list option: a list of one
    assert args.questions == ["mine.jsonl"]
    args = parse("qa", "qa:\n  context_name: 2024\n", tmp_path)  # a name written as a number
    assert args.context_name == "2024"


def test_a_bad_config_stops_the_script_in_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    for text, message in (("cpts:\n  rank: 4\n", "unknown section(s) cpts"),
                          ("cpt:\n  rank: 0\n", "cpt.rank must be at least 1, not 0"),
                          ("cpt:\n  data: [a, b]\n", "cpt.data takes one value, not a list")):
        cfg.write_text(text)
        r = run_script("10_stage1_cpt/train_cpt.py", "--config", cfg, "--print-config")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    r = run_script("10_stage1_cpt/train_cpt.py", "--epochs", "-1", "--print-config")
    assert r.returncode == 2 and "argument --epochs: must be at least 1, not -1" in r.stderr


def test_the_pipeline_checks_every_section_before_stage_00(project_root, tmp_path):
    """A bad `sft:` failed only after CPT had run; now nothing runs."""
    cfg = tmp_path / "c.yaml"
    env = {**__import__("os").environ, "OMNILM_ROOT": str(project_root)}
    for text, message in (("sft:\n  epochs: -1\n", "sft.epochs must be at least 1"),
                          ("cpt:\n  rank: 4\nsfts:\n  rank: 4\n", "unknown section(s) sfts"),
                          ("eval:\n  per_kind: 2\n  max_tokes: 8\n", "section eval has unknown option(s) max_tokes"),
                          ("export:\n  gguf_dtype: int4\n", "export.gguf_dtype must be one of"),
                          ("lerning_rate: 1.0e-4\n", "unknown top-level key(s) lerning_rate"),
                          ("qa:\n  output: [a, b]\n", "qa.output takes one value, not a list")):
        cfg.write_text(text)
        r = subprocess.run([sys.executable, "-m", "omnilm.pipeline", "--config", str(cfg)], capture_output=True,
                           text=True, env=env, cwd=REPO, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert not any(any((project_root / d).iterdir()) for d in ("models", "data", "adapters", "results"))
    for shipped in CONFIGS:  # the shipped configs pass the check
        r = subprocess.run([sys.executable, "-m", "omnilm.pipeline", "--config", str(shipped), "--list"],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        assert r.returncode == 0, r.stderr
