"""Replay by distillation: replay rows learn the base model's top-k next-token
probabilities (computed once, before LoRA) instead of its greedy words."""
from omnilm.training.data import replay_rows


def replay_teacher(model, dataset, k):
    """{token tuple: (first loss position, top-k ids [n, k], their probabilities [n, k])}
    for the replay rows of a load_split dataset, from the model as it is now (the base, before
    LoRA): the targets of replay by distillation.

    Why: cross-entropy on the base model's greedy answers, repeated over the epochs, makes
    those answers certain, and they bleed into nearby questions (after "the animal with
    black and white stripes is the African elephant", the base's own mistake, "the
    animal that says moo is the African elephant"). Matching the base's distribution
    keeps its uncertainty (docs/design.md, "Replay against forgetting"; the figures over
    seeds: docs/experiments/2026-11-25-replay-distillation.md)."""
    import mlx.core as mx
    import numpy as np

    teacher = {}
    for i in replay_rows(dataset):
        tokens, start = dataset[i]
        logits = model(mx.array([tokens[:-1]]))[0, max(start - 1, 0):].astype(mx.float32)
        probs = mx.softmax(logits, axis=-1)
        ids = mx.argsort(-probs, axis=-1)[:, :k]
        top = mx.take_along_axis(probs, ids, axis=-1)
        top = top / top.sum(axis=-1, keepdims=True)
        teacher[tuple(tokens)] = (max(start - 1, 0), np.array(ids), np.array(top))
    return teacher


def with_teacher(batch, lengths, positions, teacher, k):
    """A batch with its loss positions (omnilm.training.data.with_positions), plus the
    teacher arrays [positions, k] lined up with them (probabilities 0 where a row has none)."""
    import mlx.core as mx
    import numpy as np

    b, ln, flat = np.array(batch), np.array(lengths), np.array(positions)
    width = b.shape[1] - 1
    ids, probs = np.zeros((len(flat), k), np.int32), np.zeros((len(flat), k), np.float32)
    rows = {}
    for i, p in enumerate(flat.tolist()):
        if p < 0:
            continue
        r, step = divmod(p, width)
        if r not in rows:
            rows[r] = teacher.get(tuple(b[r, :ln[r, 1]].tolist()))
        if rows[r]:
            start, ti, tq = rows[r]
            if 0 <= step - start < len(ti):
                ids[i], probs[i] = ti[step - start], tq[step - start]
    return batch, lengths, positions, mx.array(ids), mx.array(probs)
