"""Replay by distillation: replay rows learn the base model's top-k next-token
probabilities (computed once, before LoRA) instead of its greedy words."""
from omnilm.training.data import replay_rows


def replay_teacher(model, dataset, k):
    """{token tuple: (first loss position, top-k ids [n, k], their probabilities [n, k])}
    for the replay rows of a load_split dataset, from the model as it is now (the base, before
    LoRA): the targets of replay by distillation.

    Why: cross-entropy on the base model's greedy answers, repeated for 6 epochs, makes
    those answers certain, and they bleed into nearby questions (after "the animal with
    black and white stripes is the African elephant", the base's own mistake, "the
    animal that says moo is the African elephant"). Matching the base's distribution
    keeps its uncertainty. Measured on the demo over SFT seeds 0-2: control 0.80 /
    0.73 / 0.80 vs 0.80 / 0.67 / 0.60, paraphrase 0.60 / 0.50 / 0.40 vs 0.40 / 0.20 /
    0.40, domain 1.00 in both."""
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


def with_teacher(batch, lengths, teacher, k):
    """The batch plus teacher arrays [B, L, k] (probabilities 0 where a row has none)."""
    import mlx.core as mx
    import numpy as np

    b, ln = np.array(batch), np.array(lengths)
    rows, width = b.shape[0], b.shape[1] - 1
    ids, probs = np.zeros((rows, width, k), np.int32), np.zeros((rows, width, k), np.float32)
    for r in range(rows):
        t = teacher.get(tuple(b[r, :ln[r, 1]].tolist()))
        if t:
            start, ti, tq = t
            n = min(len(ti), width - start)
            ids[r, start:start + n], probs[r, start:start + n] = ti[:n], tq[:n]
    return batch, lengths, mx.array(ids), mx.array(probs)


def distill_loss(model, batch, lengths, ids=None, probs=None):
    """mlx-lm's loss, except that positions with teacher probabilities take the cross
    entropy to the teacher's top-k distribution instead of to the token."""
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps <= lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets)
    if ids is not None:  # log-probabilities of the k ids only: no second vocabulary-wide array
        logp = mx.take_along_axis(logits, ids, axis=-1) - mx.logsumexp(logits, axis=-1, keepdims=True)
        soft = -(logp.astype(mx.float32) * probs).sum(axis=-1)
        ce = mx.where(probs.sum(axis=-1) > 0, soft, ce)
    ce = ce * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks
