"""One place per rule: each of these is done in one module, and this test (ast only,
nothing imported) fails where the project's own code does it anywhere else.

- paths: a literal artifact path belongs in omnilm/paths.py. A string is an
  artifact path when its first part is an artifact folder (models, data, adapters,
  results, logs: "data/cpt", "models/x", or the bare name), and it is code, not prose,
  when the program uses it as a path: an argument of a call that makes or opens a
  path (Path, open, os.path.join, glob, ...), an operand of `/`, the whole value of
  an assignment, a parameter's default or a `default=` keyword (argparse's). Any
  string joined onto one of paths.py's folders (models_dir() / "demo-omni",
  data_dir().glob("cpt/*")) is one too: the layout below a project folder.
  Docstrings, help= texts, printed messages and comments only mention a path for the
  reader, so they never count. An f-string counts by its leading text.
- mlx_lm internals: an import of mlx-lm's modules beyond its public load and
  generate functions (mlx_lm.tuner, .generate, .models, .utils, .gguf, .cli_ui)
  belongs in omnilm/mlx_lm_api.py, the upgrade canary (tests/test_mlx_lm_api.py).
  `from mlx_lm import load, generate, stream_generate` and mlx_lm.sample_utils are
  the public API, allowed anywhere.
- file moves: os.replace, os.rename, shutil.rmtree, shutil.move and a path's
  .rename(x) / .replace(x) (one argument: str.replace takes two) belong in
  omnilm/atomic.py, where a crash can never leave half an artifact.
- JSON lines: json.loads of a line of a file (inside a loop over splitlines(),
  readlines(), or an open file) belongs in omnilm/jsonl.py.

In scope: omnilm/ and the stage folders, which are the pipeline, and scripts/ (a
user-run tool that reads the same artifacts). Not benchmarks/: issue 35 moves it
apart (user checks and research runs) and its one-off A/B scripts reach into
mlx-lm's trainer on purpose to measure against it. Not tests/: they build broken
and planted files by hand, and test_mlx_lm_api.py must import the internals."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCOPE = ("omnilm", "00_extract", "01_quantize", "10_stage1_cpt", "20_stage2_sft", "30_evaluation", "04_inference",
         "scripts")
HOME = {"paths": "omnilm/paths.py", "mlx_lm": "omnilm/mlx_lm_api.py", "file moves": "omnilm/atomic.py",
        "json lines": "omnilm/jsonl.py"}

ARTIFACT_DIRS = {"models", "data", "adapters", "results", "logs"}
FOLDER_CALLS = {"models_dir", "data_dir", "adapters_dir", "results_dir", "logs_dir"}  # paths.py's own
PATH_CALLS = {"Path", "PurePath", "open", "join", "joinpath", "glob", "rglob", "resolve", "stored", "optional_file"}
MLX_LM_INTERNALS = {"tuner", "generate", "models", "utils", "gguf", "cli_ui"}
MOVES = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "rmtree"), ("shutil", "move"),
         ("Path", "rename"), ("Path", "replace")}
LINE_SOURCES = {"splitlines", "readlines", "open"}


def project_files(root=REPO):
    return sorted(p for folder in SCOPE for p in (Path(root) / folder).rglob("*.py"))


def _name(func):
    """The called name: `f` of f(...) and of x.f(...)."""
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _leading_text(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return None


def _used_as_path(tree):
    """The string nodes the code uses as paths (see the module's docstring)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if _name(node.func) in PATH_CALLS:
                yield from node.args
            yield from (k.value for k in node.keywords if k.arg == "default")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            yield from (node.left, node.right)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            yield node.value
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from node.args.defaults + [d for d in node.args.kw_defaults if d is not None]


def _is_folder_call(node):
    return isinstance(node, ast.Call) and _name(node.func) in FOLDER_CALLS


def _joined_onto_a_folder(tree):
    """The strings joined onto a folder of paths.py (models_dir() / "x", data_dir().glob("x/*")):
    a layout below the project's folders, spelled outside paths.py."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _is_folder_call(node.left):
            yield node.right
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_folder_call(node.func.value):
            yield from node.args


def artifact_paths(tree):
    for node in _used_as_path(tree):
        text = _leading_text(node)
        if text is not None and text.removeprefix("./").split("/")[0] in ARTIFACT_DIRS:
            yield node.lineno, f"the artifact path {text!r}: use omnilm/paths.py"
    for node in _joined_onto_a_folder(tree):
        text = _leading_text(node)
        if text is not None:
            yield node.lineno, f"{text!r} below a project folder: name it in omnilm/paths.py"


def mlx_lm_internals(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            # from mlx_lm import generate: the public function, not the module
            modules = [node.module] if node.module != "mlx_lm" else \
                [f"mlx_lm.{a.name}" for a in node.names if a.name != "generate"]
        else:
            continue
        for module in modules:
            parts = (module or "").split(".")
            if parts[0] == "mlx_lm" and len(parts) > 1 and parts[1] in MLX_LM_INTERNALS:
                yield node.lineno, f"imports mlx-lm's internal {module}: reach it through omnilm/mlx_lm_api.py"


def file_moves(tree):
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        one_argument = len(node.args) == 1 and not node.keywords
        if (owner, node.func.attr) in MOVES or (node.func.attr in ("rename", "replace") and one_argument
                                                 and owner not in ("os", "shutil")):
            yield node.lineno, f"{ast.unparse(node.func)}(...): use a helper of omnilm/atomic.py"


def _lines_source(iterable, open_files):
    """Whether a loop's iterable gives a file's lines."""
    return any(isinstance(n, ast.Call) and _name(n.func) in LINE_SOURCES
               or isinstance(n, ast.Name) and n.id in open_files for n in ast.walk(iterable))


def json_line_parses(tree):
    open_files = {item.optional_vars.id for node in ast.walk(tree) if isinstance(node, (ast.With, ast.AsyncWith))
                  for item in node.items if isinstance(item.optional_vars, ast.Name)
                  and isinstance(item.context_expr, ast.Call) and _name(item.context_expr.func) == "open"}
    for loop in ast.walk(tree):
        if isinstance(loop, (ast.For, ast.AsyncFor, ast.comprehension)) and _lines_source(loop.iter, open_files):
            lines = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
            body = loop.body if isinstance(loop, (ast.For, ast.AsyncFor)) else [_comprehension_of(tree, loop)]
            for call in (n for part in body for n in ast.walk(part) if isinstance(n, ast.Call)):
                if _name(call.func) == "loads" and any(isinstance(n, ast.Name) and n.id in lines
                                                       for arg in call.args for n in ast.walk(arg)):
                    yield call.lineno, "parses JSON lines: use omnilm/jsonl.py"


def _comprehension_of(tree, generator):
    return next(n for n in ast.walk(tree) if isinstance(n, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp))
                and generator in n.generators)


RULES = {"paths": artifact_paths, "mlx_lm": mlx_lm_internals, "file moves": file_moves,
         "json lines": json_line_parses}


def violations(files, root=REPO):
    """[(rule, 'file:line', what)] for every rule broken outside its home module."""
    found = []
    for path in files:
        relative = Path(path).relative_to(root).as_posix()
        tree = ast.parse(Path(path).read_text(), relative)
        for rule, check in RULES.items():
            if relative != HOME[rule]:
                found += [(rule, f"{relative}:{line}", what) for line, what in check(tree)]
    return found


def test_each_rule_lives_in_one_place():
    found = violations(project_files())
    assert found == [], "\n".join(f"{where}: {what}" for _, where, what in found)


PLANTED = {  # each rule broken twice
    "paths": 'from pathlib import Path\nOUT = Path("data/cpt") / "x"\nMODEL = models_dir() / "demo-omni"\n',
    "mlx_lm": "import mlx_lm.gguf\n\ndef f():\n    from mlx_lm.tuner.trainer import train\n",
    "file moves": "import shutil\n\ndef f(p, q):\n    p.rename(q)\n    shutil.rmtree(p)\n",
    "json lines": ("import json\n\ndef f(p):\n"
                   "    with open(p) as lines:\n        rows = [json.loads(x) for x in lines]\n"
                   "    for n, line in enumerate(p.read_text().splitlines()):\n"
                   "        rows.append(json.loads(line))\n"),
}
CLEAN = '''"""Reads data/cpt/x/train.jsonl (a docstring: prose)."""
import json
from pathlib import Path

from mlx_lm import generate, load, stream_generate


def f(path, text, parser, name):
    parser.add_argument("--out", help="default: results/benchmark")
    print(f"wrote models/{text}", text.replace("a", "b"), models_dir() / name)
    for line in text.splitlines():
        print(line)
    return json.loads(path.read_text()), Path(path) / "eval.json"
'''


def planted(folder):
    """One file of violations per rule and a clean one, in folder/omnilm."""
    (folder / "omnilm").mkdir()
    for rule, source in PLANTED.items():
        (folder / "omnilm" / f"planted_{rule.replace(' ', '_')}.py").write_text(source)
    (folder / "omnilm" / "clean.py").write_text(CLEAN)
    return project_files(folder)


def test_each_rule_fails_on_a_planted_violation_and_passes_clean_code(tmp_path):
    found = violations(planted(tmp_path), tmp_path)
    by_rule = {rule: [where for r, where, _ in found if r == rule] for rule in PLANTED}
    for rule, places in by_rule.items():
        assert len(places) == 2 and all(p.startswith(f"omnilm/planted_{rule.replace(' ', '_')}.py:") for p in places)
    assert len(found) == 2 * len(PLANTED)  # nothing in clean.py


def test_each_rules_home_may_break_it(tmp_path):
    for rule, home in HOME.items():
        path = tmp_path / home
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PLANTED[rule])
        assert violations([path], tmp_path) == []


def test_the_tests_are_not_checked():
    assert not any(p.relative_to(REPO).parts[0] == "tests" for p in project_files())
