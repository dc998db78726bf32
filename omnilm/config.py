"""Options: command-line flag > YAML file (--config) > the stage's defaults.

Flags default to None so an unset flag can be told from a set one. A YAML file
may hold the options at top level or under a section named after the stage
(`cpt:`, `sft:`...), so one file can configure the whole pipeline."""
import argparse
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


def resolve_options(args, defaults, section=None):
    """Fill every None in `args` from the YAML (if args.config) then from `defaults`."""
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
            setattr(args, key, from_yaml.get(key, default))
    return args
