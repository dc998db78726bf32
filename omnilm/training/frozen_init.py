"""SFT on top of a frozen CPT adapter, saved as one ordinary LoRA adapter.

Continuing the CPT adapter's own matrices lets the Q&A gradients of the trained facts
overwrite what CPT stored about the others (docs/design.md, "Frozen ranks in SFT";
docs/experiments/2026-12-01-frozen-cpt-ranks.md).
Instead, every LoRA layer gets rank r_cpt + r_new: the first r_cpt ranks hold the CPT
adapter and never change (their gradients are zeroed before Adam, which then never
moves them), the last r_new ranks start fresh. Since
    x A B = x A[:, :r] B[:r] + x A[:, r:] B[r:],
the saved adapter is exactly CPT plus a new LoRA, in mlx-lm's own format: the app,
evaluation, fuse and export load it like any other adapter.
"""


def load_under_new_ranks(model, init_weights, frozen_rank):
    """The init adapter's matrices into the first frozen_rank ranks of every LoRA layer
    (lora_a's columns, lora_b's rows); the other ranks keep their fresh init (B = 0,
    so the model starts out exactly as the init adapter left it)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    current = dict(tree_flatten(model.trainable_parameters()))
    stacked = []
    for name, w in init_weights.items():
        fresh = current[name]
        if name.endswith("lora_a"):
            stacked.append((name, mx.concatenate([w, fresh[:, frozen_rank:]], axis=1)))
        else:
            stacked.append((name, mx.concatenate([w, fresh[frozen_rank:]], axis=0)))
    model.load_weights(stacked, strict=False)


def init_shape_fits(name, init_w, new_w, frozen_rank):
    """Whether an init adapter matrix fills the frozen ranks of this layer's matrix."""
    if name.endswith("lora_a"):
        return init_w.shape == (new_w.shape[0], frozen_rank)
    return init_w.shape == (frozen_rank, new_w.shape[1])


def freeze_first_ranks(optimizer, model, frozen_rank):
    """Zero the gradients of the first frozen_rank ranks before every update. Adam's
    moments of a parameter whose gradient was always 0 stay 0, so its update is 0:
    those ranks keep their values exactly."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map_with_path

    # built here, outside mlx-lm's compiled step, once per parameter
    masks = {}
    for path, w in tree_flatten(model.trainable_parameters()):
        is_a = path.endswith("lora_a")
        keep = (mx.arange(w.shape[1] if is_a else w.shape[0]) >= frozen_rank).astype(w.dtype)
        masks[path] = keep[None, :] if is_a else keep[:, None]
    mx.eval(masks)
    apply = optimizer.apply_gradients

    def masked(gradients, parameters):
        return apply(tree_map_with_path(lambda path, g: g * masks[path], gradients), parameters)

    optimizer.apply_gradients = masked
    return optimizer
