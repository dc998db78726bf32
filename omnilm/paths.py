"""Every path of the project, resolved from the project root, never from the cwd.

OMNILM_ROOT overrides the root (the tests point it at a temporary folder)."""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent  # where the committed inputs live (golden pairs, questions, demo source)

# hand-written inputs: the demo paper's own, and the general-knowledge controls every paper is asked
DEMO_GOLDEN = REPO_DIR / "20_stage2_sft" / "golden.jsonl"
DEMO_QUESTIONS = REPO_DIR / "30_evaluation" / "questions.jsonl"
CONTROL_QUESTIONS = REPO_DIR / "30_evaluation" / "control_questions.jsonl"


def root():
    return Path(os.environ.get("OMNILM_ROOT") or REPO_DIR).resolve()


def models_dir():
    return root() / "models"


def demo_text_model():
    """The demo's float text model (stage 00's output): every stage's default model."""
    return models_dir() / "demo-omni-Text"


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


def optional_file(value):
    """A file option's path, or None for `none` (the way to say: this paper has no such input)."""
    return None if value is None or str(value).strip().lower() == "none" else resolve(value)


def paper_inputs(pdf):
    """(golden pairs, evaluation questions) that belong to a paper, found beside it by
    name: paper.golden.jsonl and paper.questions.jsonl next to paper.pdf, or golden.jsonl
    and questions.jsonl inside a folder of PDFs; None for each that is not there. A
    paper never borrows the demo's: those are about the demo paper."""
    pdf = Path(pdf)
    folder, prefix = (pdf, "") if pdf.is_dir() else (pdf.parent, pdf.stem + ".")
    found = [folder / f"{prefix}{name}.jsonl" for name in ("golden", "questions")]
    return tuple(f if f.is_file() else None for f in found)
