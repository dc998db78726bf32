"""An adapter folder in mlx-lm's format, plus the state that lets training resume.

Layout (`adapters/<stem>-cpt/`):
  adapter_config.json        mlx-lm's config (fine_tune_type, num_layers, lora_parameters)
  adapters.safetensors       the BEST validation weights (what mlx_lm.generate loads)
  last_adapters.safetensors  the weights at the last evaluation
  losses.csv, losses.png     training and validation losses
  resume/                    checkpoint of the last evaluation: weights, optimizer
                             state, state.json (iteration, best loss, loss history)
  manifest.json              written first (the folder is the project's from then on,
                             see check_adapter_path), again last with "complete": true

A folder without a complete manifest is an unfinished run: the next stage refuses
it, and `--resume` continues it."""
import json
from pathlib import Path

from omnilm.atomic import atomic_file, check_folder_name, remove_tree, replace_dir, write_text_atomic
from omnilm.errors import UserError
from omnilm.manifest import MANIFEST, made_by_stage, read_manifest
from omnilm.paths import display

CONFIG = "adapter_config.json"
BEST = "adapters.safetensors"
LAST = "last_adapters.safetensors"
LOSSES_CSV = "losses.csv"
LOSSES_PNG = "losses.png"
RESUME = "resume"
STATE = "state.json"
OPTIMIZER = "optimizer.safetensors"
OWN_NAMES = (CONFIG, BEST, LAST, LOSSES_CSV, LOSSES_PNG, RESUME, MANIFEST)
TRAINING_STAGES = ("cpt", "sft")


def is_complete(folder):
    return bool(read_manifest(folder).get("complete")) if (Path(folder) / MANIFEST).exists() else False


def require_finished_adapter(folder, what="adapter"):
    """A folder another stage may build on: mlx-lm files present, training not half-done."""
    folder = Path(folder)
    if not (folder / BEST).exists() or not (folder / CONFIG).exists():
        raise UserError(f"{what} {display(folder)} is not an adapter folder (needs {CONFIG} and {BEST})")
    if (folder / RESUME).exists() and not is_complete(folder):
        raise UserError(f"{what} {display(folder)} is an unfinished training run; "
                        "finish it first (rerun its training with --resume)")
    return folder


def read_adapter_config(folder):
    path = Path(folder) / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{display(path)} cannot be read: {e}")
    if not isinstance(config, dict):
        raise UserError(f"{display(path)} is not an adapter config (a JSON object)")
    return config


def write_adapter_config(folder, num_layers, lora_parameters, **extra):
    config = {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": lora_parameters, **extra}
    write_text_atomic(Path(folder) / CONFIG, json.dumps(config, indent=2, default=str) + "\n")


def save_weights(path, weights):
    """mx.save_safetensors through a temporary name: a reader never sees half a file."""
    import mlx.core as mx

    with atomic_file(path) as tmp:
        mx.save_safetensors(str(tmp), weights)


def clear_folder(folder):
    """Remove what a previous run of ours left (and nothing else)."""
    folder = Path(folder)
    for name in OWN_NAMES:
        p = folder / name
        if p.is_dir():
            remove_tree(p)
        elif p.exists():
            p.unlink()


def check_adapter_path(folder, what="--adapter-path", fix="pick another --adapter-path or empty it"):
    """The folder a training run may write into: missing, empty, or made by a training
    run of this project (its manifest.json names cpt or sft; a run interrupted before
    that manifest was written first leaves its resume/state.json). A user's folder is
    refused even with --force: clearing our file names there deleted their resume/,
    manifest.json and losses.csv."""
    folder = check_folder_name(folder, what)
    if not folder.exists() and not folder.is_symlink():
        return folder
    if folder.is_dir() and not folder.is_symlink():
        state = read_checkpoint_state(folder)
        if (not any(folder.iterdir()) or made_by_stage(folder) in TRAINING_STAGES
                or (isinstance(state, dict) and "setup" in state)):
            return folder
    raise UserError(f"{what} {display(folder)} is not an adapter folder this project made (no {MANIFEST} "
                    f"of a training run), so it is never replaced, even with --force; {fix}")


def start_or_resume(folder, setup, resume=False, force=False, log=print):
    """Decide between a fresh run and continuing an interrupted one.

    Returns the saved state dict to continue from, or None for a fresh start (the
    folder is then emptied of our files). `setup` holds what must not change
    between the interrupted run and this one (model, data, LoRA shape, lr...)."""
    folder = check_adapter_path(folder)
    if not folder.exists() or not any(folder.iterdir()):
        return None
    foreign = [p.name for p in folder.iterdir() if p.name not in OWN_NAMES and not p.name.startswith(".")]
    if foreign and not force:  # ours, with files someone added: --force keeps them and clears only ours
        raise UserError(f"{display(folder)} already holds other files ({', '.join(foreign[:3])}); "
                        "choose another --adapter-path")
    if is_complete(folder):
        if not (resume or force):
            raise UserError(f"{display(folder)} already holds a finished adapter; pass --force to train it again")
        log(f"{display(folder)} holds a finished run: training again from the start")
        clear_folder(folder)
        return None
    state = read_checkpoint_state(folder)
    if force or not resume or state is None:
        if not (force or resume):
            raise UserError(f"{display(folder)} holds an unfinished run; pass --resume to continue it "
                            "or --force to start over")
        clear_folder(folder)
        return None
    changed = sorted(k for k in set(setup) | set(state.get("setup", {}))
                     if setup.get(k) != state.get("setup", {}).get(k))
    if changed:
        log(f"the interrupted run in {display(folder)} used other settings ({', '.join(changed)}): starting over")
        clear_folder(folder)
        return None
    return state


def read_checkpoint_state(folder):
    path = Path(folder) / RESUME / STATE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def save_checkpoint(folder, adapter_weights, optimizer_state, state):
    """The resume point, replaced as a whole so weights and state always agree."""
    folder = Path(folder)
    tmp = folder / f".{RESUME}.tmp"
    remove_tree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    import mlx.core as mx

    mx.save_safetensors(str(tmp / BEST), adapter_weights)
    if optimizer_state:
        mx.save_safetensors(str(tmp / OPTIMIZER), optimizer_state)
    (tmp / STATE).write_text(json.dumps(state, indent=1, default=str) + "\n")
    replace_dir(tmp, folder / RESUME)


def load_checkpoint_arrays(folder):
    """(adapter weights, optimizer state or {}) saved by save_checkpoint."""
    import mlx.core as mx

    resume = Path(folder) / RESUME
    weights = mx.load(str(resume / BEST))
    optimizer = mx.load(str(resume / OPTIMIZER)) if (resume / OPTIMIZER).exists() else {}
    return weights, optimizer


def drop_checkpoint(folder):
    remove_tree(Path(folder) / RESUME, ignore_errors=True)


def load_fitting_weights(folder, expected, base, what="", fits=None):
    """The adapter's best weights, every name and shape checked against `expected` (name
    -> the model's LoRA array; `fits(name, weight)` when the shapes may differ, as under
    frozen ranks): an adapter trained for another base is one clear sentence."""
    import mlx.core as mx

    try:
        weights = mx.load(str(Path(folder) / BEST))
    except (RuntimeError, ValueError, OSError) as e:
        raise UserError(f"{display(Path(folder) / BEST)} cannot be read ({str(e).splitlines()[0]})") from None
    fits = fits or (lambda name, w: w.shape == expected[name].shape)
    wrong = sorted(k for k, w in weights.items() if k not in expected or not fits(k, w))
    missing = sorted(set(expected) - set(weights))
    if wrong or missing:
        raise UserError(f"{what}{display(folder)} does not fit {display(base)} ({len(wrong)} tensors of another "
                        f"shape or name, {len(missing)} missing, e.g. {(wrong or missing)[0]}): "
                        "it was trained for another base")
    return weights
