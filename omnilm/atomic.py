"""Artifacts appear whole or not at all: written in a temporary sibling folder,
renamed into place at the end. A folder is replaced only when this project made it:
its manifest.json names a stage."""
import contextlib
import json
import os
import shutil
from pathlib import Path

from omnilm.errors import FIX, UserError, write_problem
from omnilm.paths import display

# The manifest's name and stages are here, not in manifest.py (which writes its file
# through this module), because the rule for replacing a folder reads them.
MANIFEST = "manifest.json"
# what write_manifest may name: a folder whose manifest names one of these is the
# project's own, the only kind a stage may replace (check_output below);
# "harness": a results/<name>/ folder of benchmarks/harness.py
STAGES = ("demo_omni", "extract", "quantize", "benchmark", "prepare", "cpt", "qa", "sft", "evaluate", "export",
          "fictional_knowledge", "harness")


def made_by_stage(folder):
    """The stage whose manifest.json the folder holds, or None: a folder this project
    made, which a rerun with --force may replace (a user's folder never is)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    stage = data.get("stage") if isinstance(data, dict) else None
    return stage if stage in STAGES else None


def _tmp_name(final):
    return final.parent / f".{final.name}.tmp-{os.getpid()}"


def remove_stale_temps(final):
    """Temporary siblings left by a killed run (never visible as an artifact)."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def check_folder_name(folder, what="output"):
    """`folder` as a Path, refused when its last part is empty, '.' or '..': the output
    would then be its parent folder."""
    folder = Path(folder)
    if folder.name in ("", ".", ".."):
        raise UserError(f"{what} {folder} does not name a folder of its own (its last part is "
                        f"{folder.name!r}); give a folder name")
    return folder


def check_output(final, force=False, what="output", fix="pick another --output or empty it"):
    """The one rule for replacing a folder: a missing or empty one is used; one this
    project made (its manifest.json names a stage) is replaced with --force only;
    anything else (a user's folder, a file) never, even with --force: a mistyped
    --output must not delete someone's files. A name that is empty, '.' or '..'
    would make the output its parent folder, so it is refused too."""
    final = check_folder_name(final, what)
    if not final.exists() and not final.is_symlink():
        return final
    if not final.is_dir() or final.is_symlink():
        raise UserError(f"{what} {display(final)} is not a folder this project made; {fix.replace('empty', 'remove')}")
    if not any(final.iterdir()):
        return final
    if made_by_stage(final) is None:
        raise UserError(f"{what} {display(final)} holds files this project did not make (no {MANIFEST} of a "
                        f"stage), so it is never replaced, even with --force; {fix}")
    if not force:
        raise UserError(f"{what} {display(final)} already exists; pass --force to replace it")
    return final


@contextlib.contextmanager
def writing(path):
    """Writing `path` (an output file or folder): a read-only place, a missing permission
    or a full disk is one line naming it, never a traceback. (It lives here, not in
    errors.py, because it names the path with paths.display, and paths needs errors.)"""
    try:
        yield
    except (OSError, RuntimeError) as e:
        why = write_problem(e)
        elsewhere = getattr(e, "filename", None) and not str(e.filename).startswith(str(Path(path).parent))
        if why is None or elsewhere:  # not this output's (an input read without permission)
            raise
        raise UserError(f"cannot write {display(path)}: {why}; {FIX}") from None


@contextlib.contextmanager
def staged_dir(final, force=False, what="output"):
    """Yield a temporary folder; on success it replaces `final` (see check_output for
    when it may), on any failure it is deleted and `final` is left exactly as it was."""
    final = check_output(final, force, what)
    with writing(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final)
        tmp = _tmp_name(final)
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(tmp, final)


def replace_dir(src, final):
    """Move `src` to `final`, swapping out any old `final` with the shortest gap."""
    final = Path(final)
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(src, final)
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(path, ignore_errors=False):
    """Delete a folder and all it holds (shutil.rmtree): every deletion of a tree is here."""
    shutil.rmtree(path, ignore_errors=ignore_errors)


def rename_within(folder, old, new):
    """Rename the file `old` of `folder` to `new`, replacing any file of that name: for a
    staging folder, before it is moved into place whole."""
    folder = Path(folder)
    os.replace(folder / old, folder / new)


@contextlib.contextmanager
def staged_files(folder):
    """Yield a temporary folder inside `folder` (a results folder other runs share); on
    success each file written there replaces its namesake in `folder`, all of them
    complete before the first is moved, so one run's files never mix with a failed
    one's. On failure `folder` is left as it was."""
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".staged.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            yield tmp
            for f in sorted(tmp.iterdir()):
                os.replace(f, folder / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary sibling path to write; on success it replaces `path` (a reader
    never sees half a file), on failure it is removed and `path` is left as it was.
    The temporary name ends with the real one: mlx's savers add a missing suffix."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_csv_atomic(path, rows, columns):
    """Rows (dicts) as CSV under these columns (a missing value left empty, other keys
    ignored), written whole like every artifact."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_text_atomic(path, text):
    with atomic_file(path) as tmp:
        tmp.write_text(text)
