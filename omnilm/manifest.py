"""manifest.json: what each artifact folder is, what made it, from what."""
import datetime as _dt
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

from omnilm.atomic import MANIFEST, STAGES, made_by_stage, write_text_atomic  # noqa: F401 (also read from here)
from omnilm.errors import UserError
from omnilm.paths import display, stored

HASH_LIMIT = 64 * 2**20  # hash inputs up to this size; bigger ones are named by size only
TRACKED_PACKAGES = ("mlx", "mlx-lm", "transformers", "safetensors", "numpy", "pdfplumber", "streamlit")


def sha256_file(path, limit=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path):
    """path + size (+ sha256 of small files; a folder: its files' sizes, plus its manifest hash)."""
    p = Path(path)
    entry = {"path": display(p)}
    if p.is_file():
        entry["size"] = p.stat().st_size
        if entry["size"] <= HASH_LIMIT:
            entry["sha256"] = sha256_file(p)
    elif p.is_dir():
        files = [f for f in sorted(p.rglob("*")) if f.is_file()]
        entry["size"] = sum(f.stat().st_size for f in files)
        if (p / MANIFEST).exists():
            entry["manifest_sha256"] = sha256_file(p / MANIFEST)
    return entry


def package_versions():
    versions = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_manifest(folder, stage, args=None, inputs=None, metrics=None, **extra):
    if stage not in STAGES:  # a stage unknown here would make folders the next run refuses to replace
        raise ValueError(f"unknown stage {stage!r}: add it to omnilm.atomic.STAGES")
    args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args or {}).items()} \
        if args is not None and not isinstance(args, dict) else (args or {})
    data = {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "args": args,
        "inputs": inputs or {},
        "metrics": metrics or {},
        "versions": package_versions(),
    }
    data.update(extra)
    path = Path(folder) / MANIFEST
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")  # a reader never sees half of it
    return data


def read_manifest(folder, required=False):
    path = Path(folder) / MANIFEST
    if not path.exists():
        if required:
            raise UserError(f"{display(folder)} has no {MANIFEST}; was it written by this pipeline?")
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{display(path)} is not valid JSON ({e.msg} at line {e.lineno})")


def base_model_of(folder):
    """The model folder an artifact was made from, as its manifest names it (an
    adapter's base_model, a stage's --model or its model input), or None. The one
    lookup for the trainers, stage 20 and the app's catalog."""
    m = read_manifest(folder) if (Path(folder) / MANIFEST).exists() else {}
    model_input = m.get("inputs", {}).get("model")
    for value in (m.get("base_model"), m.get("args", {}).get("model"), m.get("model"), model_input):
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str) and value:
            return stored(value)
    return None
