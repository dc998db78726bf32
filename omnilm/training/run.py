"""One training run: which base, the flags, LoRA shape, fresh start or resume, and
mlx-lm's trainer with our callback, batches and loss; the adapter's manifest."""
import time
from types import SimpleNamespace

from omnilm import adapters as af
from omnilm import progress
from omnilm.config import FRACTION, POSITIVE, at_least
from omnilm.errors import UserError
from omnilm.manifest import base_model_of, fingerprint, sha256_file, write_manifest
from omnilm.paths import adapter_dir, cpt_data_dir, display, quantized_dir, resolve, sft_data_dir
from omnilm.training.callback import EarlyStopping, StopTraining
from omnilm.training.data import Rows, epoch_batches, load_split, validation_groups
from omnilm.training.distillation import replay_teacher, with_teacher
from omnilm.training.frozen_init import freeze_first_ranks, init_shape_fits, load_under_new_ranks
from omnilm.training.loss import head_split, make_loss
from omnilm.training.report import plot_losses, replay_trend, summary_line, write_losses_csv


def choose_base_model(model_flag, data, init_adapter):
    """(model folder, reason): the base to train on, and why (goes in the manifest)."""
    from omnilm.runtime import on_cpu

    if model_flag:
        return resolve(model_flag), "asked for (--model)"
    if init_adapter is not None and (base := base_model_of(init_adapter)):
        return base, f"the base {display(init_adapter)} was trained on"
    float_model = base_model_of(data)
    if float_model is None:
        raise UserError(f"{display(data)}/manifest.json names no model; pass --model")
    if on_cpu():
        return float_model, "CPU: LoRA on the float model (QLoRA on the 4-bit model trains about 30x slower here)"
    q4 = quantized_dir(float_model, 4)
    if (q4 / "config.json").exists():
        return q4, "GPU: QLoRA on the 4-bit model (about a quarter of the memory, as the seed run)"
    return float_model, f"GPU, but no {display(q4)}: LoRA on the float model"


def add_training_arguments(p, kind):
    """The options both training scripts share, with the defaults they share; each
    script sets its own (epochs, batch size, LoRA shape) with p.set_defaults."""
    what = "data/cpt/demo_paper" if kind == "cpt" else "data/sft/demo_paper"
    p.add_argument("--model", help="base model folder (default: see the description)")
    p.add_argument("--data", help=f"folder with train.jsonl and valid.jsonl (default {what})")
    p.add_argument("--adapter-path", help=f"output adapter folder (default adapters/<data folder name>-{kind})")
    p.add_argument("--num-layers", type=int, help="LoRA on this many last layers")
    p.add_argument("--rank", type=at_least(1), help="LoRA rank")
    p.add_argument("--scale", type=float, help="LoRA scale")
    p.add_argument("--dropout", type=FRACTION, default=0.0, help="LoRA dropout")
    p.add_argument("--learning-rate", type=POSITIVE, default=1e-4, help="Adam learning rate")
    p.add_argument("--batch-size", type=at_least(1), help="examples per step and per process")
    p.add_argument("--epochs", type=at_least(1, float), help="passes over the training set (sets --iters)")
    p.add_argument("--iters", type=at_least(1), help="optimizer steps (overrides --epochs)")
    p.add_argument("--eval-every", type=at_least(1), help="steps between validations (default: one epoch)")
    p.add_argument("--report-every", type=int, help="steps between training-loss lines")
    p.add_argument("--patience", type=int, default=2, help="stop after this many validations without improvement")
    p.add_argument("--min-delta", type=float, default=0.01,
                   help="an improvement must lower the validation loss by more than this")
    p.add_argument("--max-seq-length", type=int, default=1024, help="longer examples are truncated")
    p.add_argument("--seed", type=int, default=0, help="LoRA init and data order")
    p.add_argument("--grad-checkpoint", action="store_const", const=True, default=False,
                   help="trade compute for memory")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --adapter-path (a finished one trains again)")
    p.add_argument("--force", action="store_true", help="start over, replacing what --adapter-path holds")


def _setup_key(args, model_dir, data, init_adapter, lora):
    """What an interrupted run must share with this one to be continued."""
    return {
        "model": str(model_dir), "lora": lora, "learning_rate": args.learning_rate,
        "batch_size": args.batch_size, "seed": args.seed, "max_seq_length": args.max_seq_length,
        "mask_prompt": getattr(args, "mask_prompt", None), "replay_distill": getattr(args, "replay_distill", None),
        "train": sha256_file(data / "train.jsonl"), "valid": sha256_file(data / "valid.jsonl"),
        "init_adapter": sha256_file(init_adapter / af.BEST) if init_adapter else None,
    }


def lora_shape(args, init_adapter, n_layers):
    """(num_layers, lora_parameters): from the flags, or inherited from the init adapter."""
    if init_adapter is None:
        missing = [f"--{k.replace('_', '-')}" for k in ("num_layers", "rank", "scale", "dropout")
                   if getattr(args, k) is None]
        if missing:
            raise UserError(f"without an init adapter the LoRA shape must be given: {', '.join(missing)}")
        num_layers = n_layers if args.num_layers == -1 else min(args.num_layers, n_layers)
        return num_layers, {"rank": args.rank, "scale": args.scale, "dropout": args.dropout}
    config = af.read_adapter_config(init_adapter)
    num_layers, params = config.get("num_layers"), dict(config.get("lora_parameters") or {})
    if config.get("fine_tune_type", "lora") != "lora" or not num_layers or "rank" not in params:
        raise UserError(f"{display(init_adapter)} is not a LoRA adapter this trainer can continue")
    frozen = getattr(args, "freeze_init", False)
    checked = (("num_layers", num_layers), ("scale", params.get("scale"))) + (() if frozen else (("rank", params["rank"]),))
    for flag, value in checked:
        if getattr(args, flag) is not None and getattr(args, flag) != value:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)} differs from the init adapter's "
                            f"{value}; drop the flag (the LoRA shape comes from the adapter) or --init-adapter none")
    if args.dropout is not None:
        params["dropout"] = args.dropout
    if frozen:  # the init adapter's ranks, then --rank new ones (default: as many)
        params["rank"] += args.rank or params["rank"]
    return num_layers, params


def frozen_rank(args, init_adapter):
    """How many leading LoRA ranks hold the init adapter and stay frozen (0: none)."""
    if init_adapter is None or not getattr(args, "freeze_init", False):
        return 0
    return af.read_adapter_config(init_adapter)["lora_parameters"]["rank"]


def default_paths(kind, args):
    """(data, adapter folder, init adapter or None) from the flags and the demo defaults."""
    data = resolve(args.data) if args.data else (cpt_data_dir() if kind == "cpt" else sft_data_dir())
    if not (data / "train.jsonl").exists():
        raise UserError(f"{display(data)} has no train.jsonl"
                        + (" (run 10_stage1_cpt/prepare_data.py first)" if kind == "cpt"
                           else " (run 20_stage2_sft/generate_qa.py first)"))
    if not (data / "valid.jsonl").exists():
        raise UserError(f"{display(data)} has no valid.jsonl: early stopping needs a validation set")
    # a user's folder is refused here, before the model loads, even with --force
    folder = af.check_adapter_path(resolve(args.adapter_path) if args.adapter_path else adapter_dir(data.name, kind))
    init = getattr(args, "init_adapter", None)
    if kind == "sft" and init is None:
        init = str(adapter_dir(data.name, "cpt"))
    if init is None or str(init).lower() == "none":
        return data, folder, None
    init = resolve(init)
    af.require_finished_adapter(init, "--init-adapter")
    if init.resolve() == folder.resolve():
        raise UserError("--init-adapter and --adapter-path must be different folders")
    return data, folder, init


def attach_lora(model, num_layers, lora, init, model_dir, frozen=0):
    """LoRA on the last num_layers layers of a frozen model: trainable matrices, the
    init adapter's weights when there is one (in the first `frozen` ranks if > 0)."""
    from omnilm.mlx_lm_api import add_lora_layers

    add_lora_layers(model, {"num_layers": num_layers, "lora_parameters": lora})  # LoRA, not DoRA
    if init is not None:
        load_init_adapter(model, init, model_dir, frozen)


def load_init_adapter(model, init, model_dir, frozen=0):
    """The init adapter's weights into the LoRA layers, every name and shape checked."""
    from mlx.utils import tree_flatten

    expected = dict(tree_flatten(model.trainable_parameters()))
    fits = (lambda k, w: init_shape_fits(k, w, expected[k], frozen)) if frozen else None
    weights = af.load_fitting_weights(init, expected, model_dir, what="--init-adapter ", fits=fits)
    if frozen:
        load_under_new_ranks(model, weights, frozen)
    else:
        model.load_weights(list(weights.items()), strict=False)


def decide_start(folder, setup, args, world):
    """Rank 0 decides fresh start or resume (and may clear the folder); every other
    process follows. A failure on rank 0 is passed on so no process waits forever."""
    import mlx.core as mx

    code, error = -1, None
    if world.rank() == 0:
        try:
            saved = af.start_or_resume(folder, setup, resume=args.resume, force=args.force)
            code = saved["iteration"] if saved else -1
        except UserError as e:
            code, error = -2, e
    if world.size() > 1:
        code = int(mx.distributed.all_sum(mx.array(code if world.rank() == 0 else 0), stream=mx.cpu).item())
    if error is not None:
        raise error
    if code == -2:
        raise UserError("rank 0 refused to start (see its message)")
    return af.read_checkpoint_state(folder) if code >= 0 else None


def set_up_run(kind, args):
    """What a run holds before its first step: the folders, the base model (loaded,
    frozen), the datasets, the replay teacher and the LoRA layers with the init
    adapter's weights. The profile of a run's time started from here
    (docs/experiments/2026-12-01-padding-to-8.md)."""
    import mlx.core as mx

    from omnilm.chat import load_model

    data, folder, init = default_paths(kind, args)
    model_dir, model_reason = choose_base_model(args.model, data, init)
    model, tokenizer = load_model(model_dir)
    mx.random.seed(args.seed)
    model.freeze()
    num_layers, lora = lora_shape(args, init, len(model.layers))
    frozen = frozen_rank(args, init)
    mask = getattr(args, "mask_prompt", False)
    train_set = load_split(data / "train.jsonl", tokenizer, mask)
    valid_set = load_split(data / "valid.jsonl", tokenizer, mask)
    k = getattr(args, "replay_distill", 0) or 0
    # before LoRA: the teacher is the base model that wrote the replay answers
    teacher = replay_teacher(model, train_set, k) if k else None
    loss = make_loss(head_split(model))  # checked before LoRA's dropout can make two forwards differ
    attach_lora(model, num_layers, lora, init, model_dir, frozen)
    return SimpleNamespace(data=data, folder=folder, init=init, model_dir=model_dir, model_reason=model_reason,
                           model=model, tokenizer=tokenizer, num_layers=num_layers, lora=lora, frozen=frozen,
                           train_set=train_set, valid_set=valid_set, replay_k=k, teacher=teacher, loss=loss)


def train_adapter(kind, args):
    """Train (or resume) one adapter; returns the manifest metrics."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_map_with_path
    from omnilm.mlx_lm_api import quiet_trainer_console, run_trainer, training_args
    from omnilm.runtime import machine_summary

    wall = time.perf_counter()
    world = mx.distributed.init()
    rank, size = world.rank(), world.size()
    say = print if rank == 0 else (lambda *a, **k: None)
    run = set_up_run(kind, args)
    data, folder, init, model_dir, model_reason = run.data, run.folder, run.init, run.model_dir, run.model_reason
    model, num_layers, lora, frozen = run.model, run.num_layers, run.lora, run.frozen
    train_set, valid_set, teacher, k = run.train_set, run.valid_set, run.teacher, run.replay_k

    batch = args.batch_size * size  # mlx-lm's batch is global; ours is per process
    if len(train_set) < batch:
        raise UserError(f"{display(data)}/train.jsonl has {len(train_set)} examples, fewer than one batch "
                        f"({args.batch_size} x {size} processes); lower --batch-size")
    # the callback measures validation (mlx-lm's own pass gets one row), by group when
    # replay rows are among the validation rows
    groups = validation_groups(valid_set) or {"all": valid_set}
    steps_per_epoch = len(train_set) // batch
    total = args.iters or max(1, round(args.epochs * steps_per_epoch))
    eval_every = args.eval_every or steps_per_epoch

    setup = _setup_key(args, model_dir, data, init, {"num_layers": num_layers, **lora, "frozen_rank": frozen})
    saved = decide_start(folder, setup, args, world)
    optimizer = optim.Adam(learning_rate=args.learning_rate)
    optimizer.init(model.trainable_parameters())
    if frozen:
        freeze_first_ranks(optimizer, model, frozen)
    if saved:
        weights, opt_state = af.load_checkpoint_arrays(folder)
        model.load_weights(list(weights.items()), strict=False)
        if set(opt_state) == {k for k, _ in tree_flatten(optimizer.state)}:
            optimizer.state = tree_map_with_path(lambda path, x: opt_state[path], optimizer.state)
        else:
            say("the optimizer state could not be restored: it restarts from zero")
        state = saved
        state["seconds_before"] = saved.get("seconds", 0.0)
        state["history"] = [h for h in state["history"] if h["iteration"] <= saved["iteration"]]
        say(f"resuming {display(folder)} at iteration {saved['iteration']}/{total} "
            f"(best validation loss {saved['best_val_loss']:.3f} at {saved['best_iteration']})")
    else:
        state = {"setup": setup, "iteration": 0, "best_val_loss": None, "best_iteration": None,
                 "evals_without_gain": 0, "val_loss_before": None, "history": [],
                 "train_tokens": 0, "train_seconds": 0.0, "peak_memory_gb": 0.0}
    offset = state["iteration"]
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        # first of all: from here on the folder is this project's, an unfinished run until the last manifest
        write_manifest(folder, kind, {**vars(args), "adapter_path": display(folder)}, base_model=display(model_dir),
                       complete=False)
        af.write_adapter_config(folder, num_layers, lora, model=display(model_dir))

    say(f"[{kind}] LoRA on {display(model_dir)} ({model_reason}); {num_layers} layers, rank {lora['rank']}"
        + (f" ({frozen} frozen from {display(init)})" if frozen else "") + ", "
        f"lr {args.learning_rate:g}; {len(train_set)} train / {len(valid_set)} valid examples; "
        f"{total} steps of {batch} ({total / steps_per_epoch:.1f} epochs), validation every {eval_every}"
        + (f"; {size} processes" if size > 1 else "")
        + (f"; {len(teacher)} replay rows learn the base model's top-{k} next tokens" if teacher else ""))
    quiet_trainer_console()  # its lines and bar have no ETA; ours replace them
    bar = progress.bar(desc=kind, total=total, unit="step") if rank == 0 else None
    if bar is not None:
        bar.update(offset)
    callback = EarlyStopping(model, optimizer, folder, state, total, offset, args.patience, args.min_delta,
                             rank=rank, bar=bar, groups=groups, batch_size=batch, max_seq_length=args.max_seq_length,
                             loss=run.loss)
    training = training_args(batch_size=batch, iters=total - offset + 1, val_batches=-1,
                             steps_per_report=args.report_every or max(1, min(eval_every, 5, total - offset)),
                             steps_per_eval=eval_every,
                             steps_per_save=10**9, max_seq_length=args.max_seq_length,
                             adapter_file=str(folder / af.LAST), grad_checkpoint=bool(args.grad_checkpoint))
    # a run shorter than the report cadence reports at its last step: mlx-lm's reports are
    # where the summary's tok/s and peak memory come from.
    # iters is one more than the steps left: mlx-lm evaluates at its last iteration
    # *before* stepping, so the evaluation that ends the run sees the final weights.
    extend = (lambda *batch: with_teacher(*batch, teacher, k)) if teacher else None
    try:
        run_trainer(model, optimizer, train_set, Rows(valid_set, [0]), args=training,
                    training_callback=callback, loss=run.loss,
                    iterate_batches=epoch_batches(args.seed, skip=offset, on_step=bar.update if bar else None,
                                                  extend=extend))
        stop = "finished"
    except StopTraining as e:
        stop = e.reason
    finally:
        if bar is not None:
            bar.close()
    if stop == "diverged":
        raise UserError(f"training diverged (validation loss is not finite); lower --learning-rate "
                        f"(now {args.learning_rate:g})")
    metrics = {
        "val_loss_before": state["val_loss_before"], "best_val_loss": state["best_val_loss"],
        "best_iteration": state["best_iteration"],
        "last_val_loss": next(h["val_loss"] for h in reversed(state["history"]) if "val_loss" in h),
        "iterations": state["iteration"], "planned_iterations": total, "stop": stop,
        "epochs": round(state["iteration"] / steps_per_epoch, 2),
        "train_tokens": state["train_tokens"],  # tokens that carry loss (SFT: answers only)
        "tokens_per_second": round(state["train_tokens"] / state["train_seconds"], 1) if state["train_seconds"] else None,
        "peak_memory_gb": round(state["peak_memory_gb"], 3), "processes": size,
        "train_examples": len(train_set), "valid_examples": len(valid_set),
        "seconds": round(state.get("seconds_before", 0.0) + time.perf_counter() - wall, 1),
    }
    trend = replay_trend(state["history"], state["best_iteration"]) if len(groups) > 1 else None
    if trend:
        metrics["replay_val_loss"] = trend
    if rank == 0:
        af.save_weights(folder / af.LAST, dict(tree_flatten(model.trainable_parameters())))
        write_losses_csv(folder / af.LOSSES_CSV, state["history"])
        plot_losses(folder / af.LOSSES_PNG, state["history"], state["best_iteration"],
                    f"{kind.upper()} LoRA: {display(folder)}")
        inputs = {"model": fingerprint(model_dir), "data": fingerprint(data)}
        extra = {"continued_from": display(init)} if init else {}
        if init:
            inputs["init_adapter"] = fingerprint(init)
        used = {**vars(args), "model": display(model_dir), "data": display(data), "adapter_path": display(folder),
                "init_adapter": display(init) if init else None, "num_layers": num_layers, **lora,
                "frozen_rank": frozen}
        write_manifest(folder, kind, used, inputs=inputs,
                       metrics=metrics, base_model=display(model_dir), base_model_reason=model_reason,
                       machine=machine_summary(), complete=True, **extra)
        af.drop_checkpoint(folder)  # after the manifest: a kill in between still leaves a finished adapter
        print(summary_line(kind, metrics, folder))
    return metrics, folder
