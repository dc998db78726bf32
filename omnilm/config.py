"""Options: command-line flag > YAML file (--config) > the option's default.

Each option is declared once, in the script's add_argument (type, default, help);
parse_options moves the defaults aside so an unset flag can be told from a set one.
A YAML file may hold the options at top level or under a section named after the
stage (`cpt:`, `sft:`...), so one file can configure the whole pipeline. A section
that names no stage, a top-level key no stage has, a value of the wrong type, shape
or range: each is one line naming the file and the key, never silently ignored."""
import argparse
import functools
import re
from pathlib import Path

from omnilm.errors import UserError

# The sections of a --config file: each stage script's, by the name its main() gives
# parse_options (the pipeline's stage names, and export); the options of each are its
# script's build_parser()'s.
SECTIONS = {
    "extract": "00_extract/extract_text_backbone.py", "quantize": "01_quantize/quantize.py",
    "benchmark": "01_quantize/benchmark.py", "prepare": "10_stage1_cpt/prepare_data.py",
    "cpt": "10_stage1_cpt/train_cpt.py", "qa": "20_stage2_sft/generate_qa.py", "sft": "20_stage2_sft/train_sft.py",
    "eval": "30_evaluation/compare_stages.py", "export": "04_inference/export_model.py",
}


class Bounded:
    """A number type for add_argument, with its range, checked alike for a flag (argparse
    calls it) and a YAML value (resolve_options): `epochs: -1` trained one step, and
    `rank: 0` trained and reported success."""

    def __init__(self, kind, low, high=None, above=False):
        self.kind, self.low, self.high, self.above = kind, low, high, above
        self.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"

    def rule(self):
        if self.high is not None:
            return f"between {self.low} and {self.high}"
        return f"above {self.low}" if self.above else f"at least {self.low}"

    def fits(self, value):
        return (value > self.low if self.above else value >= self.low) and (self.high is None or value <= self.high)

    def __call__(self, text):
        value = self.kind(text)
        if not self.fits(value):
            raise argparse.ArgumentTypeError(f"must be {self.rule()}, not {text}")
        return value


def at_least(low, kind=int):
    return Bounded(kind, low)


POSITIVE = Bounded(float, 0, above=True)  # a learning rate
FRACTION = Bounded(float, 0, 1)           # a share of the data


class Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def make_parser(doc, **kw):
    """An ArgumentParser whose description is the script's docstring (runnable examples)."""
    return argparse.ArgumentParser(description=doc, formatter_class=Formatter, **kw)


def load_yaml(path):
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}")
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value")
    return data


NOT_OPTIONS = {"help", "config", "print_config", "force", "resume"}  # about this run, not options a config sets


@functools.lru_cache(maxsize=None)
def _stage_module(section):
    import importlib.util

    from omnilm.paths import REPO_DIR

    spec = importlib.util.spec_from_file_location(f"_omnilm_stage_{section}", REPO_DIR / SECTIONS[section])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its main() runs only as __main__
    return module


def stage_parser(section):
    """A fresh parser of a section's stage script (parse_options changes the one it is given)."""
    return _stage_module(section).build_parser()


def options_of(parser):
    return {a.dest for a in parser._actions if a.dest not in NOT_OPTIONS}


@functools.lru_cache(maxsize=None)
def section_options(section):
    return frozenset(options_of(stage_parser(section)))


def check_layout(data, path, own=()):
    """The file's sections are stages' and its top-level keys some stage's options (the
    ones `own` names need no lookup of the other stages); its own section is checked
    against `own` by resolve_options."""
    unknown = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in SECTIONS)
    options = [k for k in unknown if k.replace("-", "_") in set().union(*map(section_options, SECTIONS))]
    if options:  # an option given a mapping, not a section
        raise UserError(f"config file {path}: {options[0]} takes one value, not a mapping ({data[options[0]]!r})")
    if unknown:
        raise UserError(f"config file {path}: unknown section(s) {', '.join(unknown)} "
                        f"(sections: {', '.join(sorted(SECTIONS))})")
    top = {k.replace("-", "_") for k, v in data.items() if not isinstance(v, dict) and k not in SECTIONS}
    if top - set(own):
        known = set().union(*map(section_options, SECTIONS))
        unknown = sorted(top - known)
        if unknown:
            raise UserError(f"config file {path}: unknown top-level key(s) {', '.join(unknown)} (a top-level key is "
                            f"an option of some stage: {', '.join(sorted(known))}; or a section: "
                            f"{', '.join(sorted(SECTIONS))})")


def parse_options(parser, section, argv=None, force=None):
    """parse_args, then flag > YAML (--config, its `section`) > default. Each option is
    declared once, in its add_argument (type, default, help) or a script's set_defaults;
    the default is shown in --help and the flag itself parses to None unless given, so
    a given flag can be told from an unset one. --print-config prints the resolved
    options as YAML under `section`, ready to save as a --config file, and exits."""
    import sys

    import yaml

    if force and "--force" not in parser._option_string_actions:  # what --force replaces, in the stage's words
        parser.add_argument("--force", action="store_true", help=force)
    if "--config" not in parser._option_string_actions:  # every stage takes one, named by its section
        parser.add_argument("--config", help=f"YAML file with these options (section: {section})")
    defaults = {a.dest: a.default for a in parser._actions if a.dest not in NOT_OPTIONS}
    for action in parser._actions:
        if action.dest not in defaults:
            continue
        value, action.default = action.default, None
        if value is not None and action.help and "default" not in action.help:
            shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
                # a bare switch: whether the switch is on, not its dest's value
                # (--no-open-book sets open_book, True by default, to False: the switch is off)
                shown = "on" if value == action.const else "off"
            action.help += f" (default {str(shown).lower() if isinstance(value, bool) else shown})"
    parser.add_argument("--print-config", action="store_true",
                        help="print the options as resolved (flags > --config > defaults) as YAML and exit")
    actions = {a.dest: a for a in parser._actions}
    args = resolve_options(parser.parse_args(argv), defaults, section=section, actions=actions)
    if args.print_config:
        resolved = {k: getattr(args, k) for k in defaults}
        sys.stdout.write(yaml.safe_dump({section: resolved}, sort_keys=False))
        raise SystemExit(0)
    return args


def resolve_options(args, defaults, section=None, actions=None):
    """Fill every None in `args` from the YAML (if args.config) then from `defaults`.
    A YAML value is read as its flag would be (`actions`: {option: its argparse
    action}): its type (`epochs: 2.5` as `--epochs 2.5`; else its default's type), its
    range, its choices, one value or a list."""
    from_yaml = {}
    if getattr(args, "config", None):
        data = load_yaml(args.config)
        check_layout(data, args.config, defaults)
        from_yaml = {k: v for k, v in data.items() if not isinstance(v, dict) and k not in SECTIONS}
        if section and isinstance(data.get(section), dict):
            mine = {k.replace("-", "_"): v for k, v in data[section].items()}
            unknown = sorted(set(mine) - set(defaults))
            if unknown:  # a typo would otherwise be silently ignored
                raise UserError(f"config file {args.config}: section {section} has unknown option(s) "
                                f"{', '.join(unknown)} (known: {', '.join(sorted(defaults))})")
            from_yaml.update(mine)
        from_yaml = {k.replace("-", "_"): v for k, v in from_yaml.items()}
    for key, default in defaults.items():
        value = default
        if key in from_yaml:  # checked even where a flag wins: the file is wrong either way
            where = f"config file {args.config}: {section + '.' if section else ''}{key}"
            value = _from_yaml(from_yaml[key], default, (actions or {}).get(key), where)
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def _from_yaml(value, default, action, where):
    """A YAML value as its flag would parse it (see resolve_options)."""
    if action is None:
        return _typed(value, default, where)
    if action.nargs in ("+", "*"):  # a list option: a single value is a list of one
        return value if value is None or isinstance(value, list) else [value]
    if action.nargs is None and isinstance(value, (list, dict)):  # would fail later as a TypeError
        raise UserError(f"{where} takes one value, not a {'list' if isinstance(value, list) else 'mapping'} "
                        f"({value!r})")
    given, kind = value, action.type
    number = kind.kind if isinstance(kind, Bounded) else kind if kind in (int, float) else None
    value = _typed(value, number(0) if number and action.nargs is None else default, where)
    if (kind is None and action.nargs is None and isinstance(default, (str, type(None)))
            and isinstance(value, (int, float)) and not isinstance(value, bool)):
        value = str(value)  # a path or a name written as a number (`context_name: 2024`)
    if isinstance(kind, Bounded) and value is not None and not kind.fits(value):
        raise UserError(f"{where} must be {kind.rule()}, not {given!r}")
    if action.choices and value is not None and value not in action.choices:
        raise UserError(f"{where} must be one of {', '.join(map(str, action.choices))}, not {value!r}")
    return value


# PyYAML follows YAML 1.1, which reads 1e-4 (no dot) as the string '1e-4'
_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _typed(value, default, where):
    """A YAML value converted to its default's type (a number option gets a number),
    or a one-line error naming the file, section and key."""
    if isinstance(value, str) and _EXPONENT.match(value.strip()) and not isinstance(default, str):
        value = float(value)
    if value is None or default is None or isinstance(default, (list, tuple, dict)):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false, not {value!r}")
        return value
    if isinstance(default, (int, float)):
        try:
            if isinstance(value, bool):  # float(True) would pass as 1.0
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where} must be a number, not {value!r}") from None
        if isinstance(default, int):
            if not number.is_integer():
                raise UserError(f"{where} must be a whole number, not {value!r}")
            return int(number)
        return number
    return value
