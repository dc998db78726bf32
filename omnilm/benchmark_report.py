"""Stage 01's benchmark tables: medians with their range, the unsteady flag, the
comparison with the first model, CSV, Markdown and the chart."""
import statistics

UNSTEADY_RATIO = 2.0  # a timed figure whose max/min exceeds this is flagged, not summarized
CSV_COLUMNS = ["model", "bits_per_weight", "size_mb", "load_s", "prompt_tps", "generation_tps", "peak_memory_gb",
               "perplexity", "quantization", "scales_dtype", "load_s_min", "load_s_max", "prompt_tps_min",
               "prompt_tps_max", "generation_tps_min", "generation_tps_max", "peak_rss_gb", "prompt_tokens",
               "generated_tokens", "perplexity_tokens", "perplexity_method", "repeats", "path"]


def spread(values):
    """(median, min, max) of repeated measurements."""
    return statistics.median(values), min(values), max(values)


def unsteady(values):
    """True when repeated timings differ by more than UNSTEADY_RATIO (max/min): their
    median says little, so the table shows the range and a flag instead."""
    low, high = min(values), max(values)
    return low <= 0 or high / low > UNSTEADY_RATIO


def to_row(result):
    """One CSV row: medians with min-max for every repeated figure."""
    row = {k: result.get(k) for k in CSV_COLUMNS}
    for key in ("load_s", "prompt_tps", "generation_tps"):
        row[key], row[f"{key}_min"], row[f"{key}_max"] = (round(v, 3) for v in spread(result[key]))
    for key in ("peak_memory_gb", "peak_rss_gb", "perplexity"):
        row[key] = round(result[key], 3) if result[key] is not None else None
    return row


def _change(fraction, up, down):
    return f"{abs(fraction):.0%} {up if fraction >= 0 else down}"


def improvement(row, base):
    """The seed's wording, relative to the first model: 44% smaller, 42% less memory, 58% faster."""
    parts = [_change(1 - row["size_mb"] / base["size_mb"], "smaller", "larger"),
             _change(1 - row["peak_memory_gb"] / base["peak_memory_gb"], "less memory", "more memory"),
             _change(row["generation_tps"] / base["generation_tps"] - 1, "faster", "slower")]
    if row["perplexity"] and base["perplexity"]:
        parts.append(f"perplexity x{row['perplexity'] / base['perplexity']:.2f}")
    return ", ".join(parts)


def markdown(rows, machine, text_source):
    first = rows[0]
    flagged = []

    def fmt(row, k, d):
        low, high = row[k + "_min"], row[k + "_max"]
        if unsteady([low, high]):
            flagged.append(f"{row['model']} {k}")
            return f"**unsteady** {low:.{d}f}-{high:.{d}f}"
        return f"{row[k]:.{d}f} ({low:.{d}f}-{high:.{d}f})"

    lines = [f"Machine: {machine_line(machine)}", "",
             f"Prompt {first['prompt_tokens']} tokens, {first['generated_tokens']} generated tokens (greedy), "
             f"{first['repeats']} repeats after a warm-up: median (min-max). Perplexity on "
             f"{first['perplexity_tokens']} held-out tokens of {text_source}. Each model in its own process.", "",
             f"| model | quantization | bits/weight | size (MB) | load (s) | prompt tok/s | generation tok/s | "
             f"peak memory (GB) | perplexity | vs {first['model']} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ppl = f"{row['perplexity']:.2f}" if row["perplexity"] else "-"
        vs = "baseline" if row is first else improvement(row, first)
        lines.append(f"| {row['model']} | {row['quantization']} | {row['bits_per_weight']:.2f} | {row['size_mb']:.0f} | "
                     f"{fmt(row, 'load_s', 2)} | {fmt(row, 'prompt_tps', 1)} | {fmt(row, 'generation_tps', 1)} | "
                     f"{row['peak_memory_gb']:.2f} | {ppl} | {vs} |")
    if flagged:
        lines += ["", f"**unsteady**: the repeats of {', '.join(flagged)} differ by more than {UNSTEADY_RATIO:g}x "
                      "(max/min), so no median is given; rerun with more --repeats on an idle machine."]
    methods = {r["perplexity_method"] for r in rows if r["perplexity_method"]}
    if methods:
        lines += ["", "Perplexity computed with: " + "; ".join(sorted(methods)) + "."]
    return "\n".join(lines) + "\n"


def machine_line(machine):
    return ", ".join(f"{k} {v}" for k, v in machine.items())


def plot(rows, path, machine):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    panels = [("size on disk (MB)", "size_mb", False), ("peak memory (GB)", "peak_memory_gb", False),
              ("generation tok/s", "generation_tps", True), ("perplexity (lower is better)", "perplexity", False)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    colors = plt.cm.tab10.colors
    for ax, (title, key, ranged) in zip(axes, panels):
        values = [r[key] or 0 for r in rows]
        errors = None
        if ranged:
            errors = [[v - r[f"{key}_min"] for v, r in zip(values, rows)],
                      [r[f"{key}_max"] - v for v, r in zip(values, rows)]]
        ax.bar(range(len(rows)), values, yerr=errors, capsize=4, color=colors[:len(rows)])
        ax.set_xticks(range(len(rows)), names, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(values):
            top = errors[1][i] + v if errors else v  # above the error bar
            ax.annotate(f"{v:.3g}", (i, top), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{machine.get('cpu', '')} / mlx {machine.get('mlx_device', '')} / {machine.get('blas', '')}",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
