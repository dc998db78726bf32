"""What a training run leaves to read: losses.csv, losses.png, the replay trend and
the one-line summary."""
from pathlib import Path

from omnilm import adapters as af
from omnilm.atomic import write_csv_atomic
from omnilm.paths import display


LOSS_COLUMNS = ("iteration", "train_loss", "val_loss", "val_loss_document", "val_loss_replay", "tokens_per_second",
                "peak_memory_gb")


def write_losses_csv(path, history):
    rows = [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()}
            for h in sorted(history, key=lambda h: (h["iteration"], "val_loss" in h))]
    write_csv_atomic(path, rows, LOSS_COLUMNS)


def plot_losses(path, history, best_iteration, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["iteration"], h["train_loss"]) for h in history if "train_loss" in h]
    val = [(h["iteration"], h["val_loss"]) for h in history if "val_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", color="tab:blue", alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", color="tab:orange")
        best = [v for i, v in val if i == best_iteration]
        if best:
            ax.plot([best_iteration], best, "*", ms=14, color="tab:red", label=f"best (iter {best_iteration})")
    for name, color in (("document", "tab:green"), ("replay", "tab:purple")):
        part = [(h["iteration"], h[f"val_loss_{name}"]) for h in history if f"val_loss_{name}" in h]
        if part:
            ax.plot(*zip(*part), ".--", label=f"validation: {name}", color=color)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def replay_trend(history, best_iteration):
    """The general answers' validation loss: first, at the kept weights, lowest and where."""
    seen = [(h["iteration"], h["val_loss_replay"]) for h in history if "val_loss_replay" in h]
    if best_iteration not in dict(seen):  # resumed from a checkpoint written before groups existed
        return None
    lowest = min(seen, key=lambda p: p[1])
    return {"first": round(seen[0][1], 4), "at_best": round(dict(seen)[best_iteration], 4),
            "lowest": round(lowest[1], 4), "lowest_iteration": lowest[0]}


def summary_line(kind, metrics, folder):
    m = metrics
    r = m.get("replay_val_loss")
    replay = (f"; general answers (replay) {r['first']:.3f} -> {r['at_best']:.3f}, lowest {r['lowest']:.3f} "
              f"at iteration {r['lowest_iteration']}" if r else "")
    return (f"{kind} adapter: {display(folder)} (best weights of iteration {m['best_iteration']}: validation loss "
            f"{m['val_loss_before']:.3f} -> {m['best_val_loss']:.3f}; {m['stop']} at {m['iterations']}/"
            f"{m['planned_iterations']}{replay}) · {m['tokens_per_second'] or 0:,.0f} trained tok/s · peak {m['peak_memory_gb']:.2f} GB"
            f" · {m['seconds']:.0f}s; losses: {display(Path(folder) / af.LOSSES_PNG)}")
