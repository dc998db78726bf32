"""Every path of the project, resolved from the project root, never from the cwd.

OMNILM_ROOT overrides the root (the tests point it at a temporary folder)."""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent  # where the committed inputs live (golden pairs, questions, demo source)


def root():
    return Path(os.environ.get("OMNILM_ROOT") or REPO_DIR).resolve()


def models_dir():
    return root() / "models"


def data_dir():
    return root() / "data"


def adapters_dir():
    return root() / "adapters"


def results_dir():
    return root() / "results"


def logs_dir():
    return root() / "logs"


def resolve(path):
    """A user-given path: absolute stays, relative is taken from the project root
    when it exists there, else from the cwd (so both `models/x` and `./x` work)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    under_root = root() / p
    if under_root.exists() or not p.exists():
        return under_root
    return p.resolve()


def display(path):
    """A path as the user should read it: relative to the root when inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(root()))
    except ValueError:
        return str(p)
