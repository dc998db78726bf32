"""Progress bars (rate and ETA) on stderr."""
import contextlib
import sys

from tqdm import tqdm


@contextlib.contextmanager
def byte_bar(desc, total=None):
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
               file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    try:
        yield bar
    finally:
        bar.close()


def bar(iterable=None, desc=None, total=None, unit="it"):
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


def eval_by_layer(model, desc):
    """Evaluate a lazily built mlx model (loaded, quantized, fused...) one transformer
    layer at a time under a bar, so minutes of work on an 8B model show a count, a
    rate and the elapsed time instead of silence; then the rest (embeddings, head)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    layers = list(getattr(model, "layers", None) or [])
    for layer in bar(layers, desc=desc, unit="layer"):
        mx.eval(layer.parameters())
    mx.eval([v for _, v in tree_flatten(model.parameters())])  # the layers' are done: only the rest is computed
    return len(layers)


@contextlib.contextmanager
def timed_step(desc):
    """A step without natural units (writing files): says when it starts and how long it took."""
    import time

    print(f"{desc}...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(f"{desc}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
