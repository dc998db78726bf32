"""Every path of the project, from the project root; a path the user gives, from the cwd.

OMNILM_ROOT overrides the root (the tests point it at a temporary folder)."""
import os
from pathlib import Path

from omnilm.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent  # where the committed inputs live (golden pairs, questions, demo source)

# Hand-written inputs, in the folder of the first stage that reads them (stage 10), so
# no stage reaches into a later one's folder: the demo paper's golden pairs and
# questions beside its source (paper.golden.jsonl, paper.questions.jsonl: the
# convention for any paper), the general-knowledge controls every paper is asked, and
# the general questions the model answers for replay.
INPUTS_DIR = REPO_DIR / "10_stage1_cpt"
DEMO_GOLDEN = INPUTS_DIR / "demo_paper.golden.jsonl"
DEMO_QUESTIONS = INPUTS_DIR / "demo_paper.questions.jsonl"
CONTROL_QUESTIONS = INPUTS_DIR / "control_questions.jsonl"
REPLAY_QUESTIONS = INPUTS_DIR / "replay_questions.txt"


def root():
    return Path(os.environ.get("OMNILM_ROOT") or REPO_DIR).resolve()


def models_dir():
    return root() / "models"


def demo_omni_dir():
    """The demo omni checkpoint (make_demo_omni.py's output): stage 00's default source."""
    return models_dir() / "demo-omni"


def demo_text_model():
    """The demo's float text model (stage 00's output): every stage's default model."""
    return text_model_dir(demo_omni_dir())


# ---- where each artifact goes: one function each, for the stage scripts and the pipeline

DEMO_PAPER = "demo_paper"  # the demo paper's stem: its data and adapter folders are named after it


def text_model_dir(source):
    """The text model stage 00 extracts from an omni checkpoint folder: beside it, -Text."""
    source = Path(source)
    return source.parent / f"{source.name}-Text"


def quantized_dir(model, bits):
    """Stage 01's quantized copy of a text model: beside it, -8bit / -4bit."""
    model = Path(model)
    return model.parent / f"{model.name}-{bits}bit"


def fused_model_dir(model, adapter):
    """The export's fused model: in models/, named after its base and its adapter
    (models/demo-omni-Text + adapters/demo_paper-sft -> models/demo-omni-Text-demo_paper-sft)."""
    return models_dir() / f"{Path(model).name}-{Path(adapter).name}"


def demo_pdf():
    return data_dir() / f"{DEMO_PAPER}.pdf"


def paper_stem(pdf):
    """The name a paper's artifacts take: the PDF's stem, or a folder of PDFs' name."""
    pdf = Path(pdf)
    stem = pdf.stem if pdf.is_file() or not pdf.exists() else pdf.name
    return folder_name(stem, f"the paper {pdf.name}")


def folder_name(name, what):
    """`name` if it names a folder of its own: '', '.' and '..' would name the folder
    above (a paper '..pdf' would make data/cpt itself its output, '...pdf' data/)."""
    if str(name) in ("", ".", ".."):
        raise UserError(f"{what} gives the folder name {str(name)!r}, which names no folder of its own; "
                        "rename it")
    return name


def cpt_data_root():
    """Stage 10's data of every paper, a folder each (cpt_data_dir)."""
    return data_dir() / "cpt"


def cpt_data_dir(stem=DEMO_PAPER):
    """Stage 10's data for a paper: chunks, facts, train/valid, replay."""
    return cpt_data_root() / folder_name(stem, "the paper")


def replay_cache_dir():
    """Stage 10's replay generations, kept by what they depend on: a rerun reuses them."""
    return data_dir() / "cache" / "replay"


def sft_data_dir(stem=DEMO_PAPER):
    """Stage 20's data for a paper: pairs, train/valid, dropped."""
    return data_dir() / "sft" / folder_name(stem, "the paper")


def adapter_dir(stem=DEMO_PAPER, kind="sft"):
    """A paper's adapter of one training kind (cpt or sft)."""
    return adapters_dir() / f"{stem}-{kind}"


def data_dir():
    return root() / "data"


def adapters_dir():
    return root() / "adapters"


def results_dir():
    return root() / "results"


def benchmark_dir():
    """Stage 01's benchmark results."""
    return results_dir() / "benchmark"


def eval_json():
    """Stage 30's results, where the pipeline's evaluation writes them."""
    return results_dir() / "eval.json"


def report_file():
    """The pipeline's one-page report."""
    return results_dir() / "REPORT.md"


def logs_dir():
    return root() / "logs"


def resolve(path):
    """A user-given path: absolute stays, relative is taken from the current directory,
    as every command-line tool does (`--pdf ../x.pdf` from a subfolder is that file,
    never one that happens to sit at the same place under the project root). The
    pipeline runs every stage from the project's folder with absolute paths."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path.cwd() / p


def stored(path):
    """A path this project wrote (a manifest, eval.json): display() made it relative to
    the root, so it is read back from the root, wherever the reader runs."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root() / p


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
