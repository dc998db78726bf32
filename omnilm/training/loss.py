"""The training loss, computed at the positions that carry loss only.

mlx-lm's loss takes the vocabulary-wide log-sum-exp at every position of the batch
and masks most of them away afterwards: an SFT batch's prompts and padding, most of
its tokens. On a CPU mlx's exp is a scalar loop, so that log-sum-exp over the whole
vocabulary (49,152 tokens on the demo, 200,704 on HyperCLOVAX-SEED) costs more than
the matmuls of the head. Here the batch brings the flat indices of its loss positions
(computed with numpy when the batch is made, in omnilm.training.data), the model runs
up to its last hidden state, and the head and the log-sum-exp run on those rows only,
once each (the replay rows' distillation reuses the same log-sum-exp). Same loss to
float rounding. Why and how much: docs/design.md, "Loss positions and padding";
docs/experiments/2026-12-02-loss-positions.md."""


def head_split(model):
    """(trunk, head) where the model's logits are head(trunk(inputs)), checked on a short
    input (the same operations give the same numbers, so the tolerance is tight), else
    None. With the split the head runs at the loss positions only; a model that does
    more after its head (a logit soft-cap, a scale) keeps full logits. Call it before
    LoRA dropout can make two forwards differ."""
    import mlx.core as mx

    trunk = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    if head is None and trunk is not None and hasattr(getattr(trunk, "embed_tokens", None), "as_linear"):
        head = trunk.embed_tokens.as_linear  # tied embeddings
    if not (callable(trunk) and callable(head)):
        return None
    probe = mx.array([[1, 2, 3, 4, 5]])
    try:
        whole, split = model(probe), head(trunk(probe))
        same = whole.shape == split.shape and mx.allclose(whole, split, rtol=1e-5, atol=1e-5).item()
    except Exception:  # an architecture whose trunk needs more than the tokens
        return None
    return (trunk, head) if same else None


def logits_at(model, split, inputs, at):
    """Logits [len(at), vocabulary] at the flat positions `at` of inputs [rows, width]:
    the head on those hidden states only when `split` (head_split) allows it."""
    if split is None:
        logits = model(inputs)
        return logits.reshape(-1, logits.shape[-1])[at]
    trunk, head = split
    hidden = trunk(inputs)
    return head(hidden.reshape(-1, hidden.shape[-1])[at])


def token_nll(logits, targets):
    """(-log p(target), log-sum-exp) for logits [n, vocabulary] and targets [n]: one
    vocabulary-wide log-sum-exp, which distillation reuses."""
    import mlx.core as mx

    lse = mx.logsumexp(logits, axis=-1, keepdims=True)
    return (lse - mx.take_along_axis(logits, targets[:, None], axis=-1))[:, 0], lse


def make_loss(split):
    """loss(model, batch, lengths, positions, ids=None, probs=None) -> (mean loss, tokens),
    mlx-lm's loss contract. ids/probs [positions, k]: where a position's teacher
    probabilities sum above 0 (replay rows) its loss is the cross-entropy to the
    teacher's top-k distribution, elsewhere to the next token."""
    def loss(model, batch, lengths, positions, ids=None, probs=None):
        import mlx.core as mx

        inputs, targets = batch[:, :-1], batch[:, 1:]
        counted = positions >= 0
        at = mx.maximum(positions, 0)  # padding indices read position 0 and weigh nothing
        logits = logits_at(model, split, inputs, at)
        ce, lse = token_nll(logits, targets.reshape(-1)[at])
        if ids is not None:  # log-probabilities of the k ids only: no second vocabulary-wide array
            soft = -((mx.take_along_axis(logits, ids, axis=-1) - lse).astype(mx.float32) * probs).sum(axis=-1)
            ce = mx.where(probs.sum(axis=-1) > 0, soft, ce)
        ntoks = counted.sum()
        return (ce * counted).astype(mx.float32).sum() / ntoks, ntoks

    return loss
