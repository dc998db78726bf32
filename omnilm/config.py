"""Options: command-line flag > YAML file (--config) > the option's default.

Each option is declared once, in the script's add_argument (type, default, help);
parse_options moves the defaults aside so an unset flag can be told from a set one.
A YAML file may hold the options at top level or under a section named after the
stage (`cpt:`, `sft:`...), so one file can configure the whole pipeline."""
import argparse
import re
from pathlib import Path

from omnilm.errors import UserError


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


def parse_options(parser, section, argv=None, force=None):
    """parse_args, then flag > YAML (--config, its `section`) > default. Each option is
    declared once, in its add_argument (type, default, help) or a script's set_defaults;
    the default is shown in --help and the flag itself parses to None unless given, so
    a given flag can be told from an unset one. --print-config prints the resolved
    options as YAML under `section`, ready to save as a --config file, and exits."""
    import sys

    import yaml

    if force:  # what --force replaces, in the stage's words
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
    types = {a.dest: a.type for a in parser._actions if a.type in (int, float) and a.nargs is None}  # scalars
    args = resolve_options(parser.parse_args(argv), defaults, section=section, types=types)
    if args.print_config:
        resolved = {k: getattr(args, k) for k in defaults}
        sys.stdout.write(yaml.safe_dump({section: resolved}, sort_keys=False))
        raise SystemExit(0)
    return args


def resolve_options(args, defaults, section=None, types=None):
    """Fill every None in `args` from the YAML (if args.config) then from `defaults`.
    A YAML value takes its flag's type when it has one (`types`: {option: int or
    float}, so `epochs: 2.5` is read as `--epochs 2.5` is), else its default's type."""
    from_yaml = {}
    if getattr(args, "config", None):
        data = load_yaml(args.config)
        from_yaml = {k: v for k, v in data.items() if not isinstance(v, dict)}
        if section and isinstance(data.get(section), dict):
            mine = {k.replace("-", "_"): v for k, v in data[section].items()}
            unknown = sorted(set(mine) - set(defaults))
            if unknown:  # a typo would otherwise be silently ignored
                raise UserError(f"config file {args.config}: section {section} has unknown option(s) "
                                f"{', '.join(unknown)} (known: {', '.join(sorted(defaults))})")
            from_yaml.update(mine)
        from_yaml = {k.replace("-", "_"): v for k, v in from_yaml.items()}
    for key, default in defaults.items():
        if getattr(args, key, None) is None:
            value = from_yaml.get(key, default)
            if key in from_yaml:
                like = types[key](0) if types and key in types else default
                value = _typed(value, like, f"config file {args.config}: {section + '.' if section else ''}{key}")
            setattr(args, key, value)
    return args


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
