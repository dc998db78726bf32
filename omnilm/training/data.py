"""Training rows for mlx-lm's trainer: chat rows with the prompt masked, text rows,
the replay/document groups, and the batch order (fixed per epoch, resumable)."""
from omnilm.errors import UserError
from omnilm.jsonl import read_jsonl
from omnilm.paths import display

# Batches are padded to a multiple of this many tokens. mlx-lm pads to 32, which on
# the demo's SFT data computed much more padding for a slower step (docs/design.md,
# "Loss positions and padding"; docs/experiments/2026-12-01-padding-to-8.md).
PAD_TO = 8


def chat_tokens(tokenizer, messages, mask_prompt=True):
    """(token ids, loss start): a conversation in the model's own chat template, with
    everything before the last assistant answer counted as prompt.

    The prompt is the generation prompt with reasoning skipped: for a template that
    renders past answers as `<think>\\n\\n</think>\\n\\n` + answer, the empty think block
    is prompt too, so only the answer and its end token carry loss. Token boundaries
    come from the tokenizer's character offsets: the prompt tokenized alone may
    split differently ('\\n' + '\\n' vs '\\n\\n') than inside the full text."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    enc = hf(text, add_special_tokens=False, return_offsets_mapping=mask_prompt)
    tokens = list(enc["input_ids"])
    if not mask_prompt:
        return tokens, 0
    if messages[-1].get("role") != "assistant":
        raise UserError("a chat example must end with an assistant answer to train on")
    head = messages[:-1]
    for options in ({"skip_reasoning": True}, {}):
        prompt = tokenizer.apply_chat_template(head, add_generation_prompt=True, tokenize=False, **options)
        if text.startswith(prompt):
            break
    else:
        raise UserError("the chat template renders the prompt differently inside the conversation; "
                        "cannot mask it (train with --no-mask-prompt)")
    start = next((i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > len(prompt)), len(tokens))
    return tokens, start


class ChatAnswers:
    """{"messages": [...]} rows for mlx-lm's trainer; loss on the last answer only.
    A {"text"} row among them (stage 20's fact statements) is plain text, loss on all."""

    def __init__(self, rows, tokenizer, mask_prompt=True):
        self._rows, self.tokenizer, self.mask_prompt = rows, tokenizer, mask_prompt

    def process(self, row):
        if "messages" not in row:  # mlx-lm's own rule for text rows (the end token appended)
            from omnilm.mlx_lm_api import text_dataset

            return text_dataset([], self.tokenizer).process(row)
        return chat_tokens(self.tokenizer, row["messages"], self.mask_prompt)

    def __getitem__(self, i):
        return self._rows[i]

    def __len__(self):
        return len(self._rows)


class Rows:
    """Some rows of a processed dataset, in the given order (repeats allowed)."""

    def __init__(self, data, indices):
        self._data, self._indices = data, list(indices)

    def itemlen(self, i):
        return self._data.itemlen(self._indices[i])

    def __getitem__(self, i):
        return self._data[self._indices[i]]

    def __len__(self):
        return len(self._indices)


def padded_batches(dataset, batch_size, max_seq_length, **options):
    """mlx-lm's iterate_batches, each batch cut to its longest row rounded up to a
    multiple of PAD_TO (plus the one token that inputs and targets are shifted by).
    mlx-lm pads to multiples of 32; the cut columns are zeros that the loss mask
    leaves out. The one place the project's batches come from."""
    from omnilm.mlx_lm_api import trainer_batches

    for batch, lengths in trainer_batches(dataset, batch_size, max_seq_length, **options):
        longest = int(lengths[:, 1].max().item())
        yield batch[:, :min(batch.shape[1], 1 + PAD_TO * -(-longest // PAD_TO))], lengths


def every_row_batches(dataset, batch_size, max_seq_length, comm_group=None):
    """Validation batches that hold every row once. mlx-lm's batching drops the last
    partial batch, so the rows left over make one smaller batch of their own (padded
    with repeats of themselves to a multiple of the process count, whose rows it
    splits). Before, the whole set was repeated to a whole number of batches, several
    times the work on a small set (docs/experiments/2026-11-25-replay-validation.md)."""
    n, processes = len(dataset), comm_group.size() if comm_group is not None else 1
    whole = n // batch_size * batch_size
    if whole:
        yield from padded_batches(Rows(dataset, range(whole)), batch_size, max_seq_length, comm_group=comm_group)
    rest = n - whole
    if rest:
        size = -(-rest // processes) * processes
        yield from padded_batches(Rows(dataset, [whole + i % rest for i in range(size)]), size, max_seq_length,
                                  comm_group=comm_group)


def load_split(path, tokenizer, mask_prompt):
    """One split as an mlx-lm dataset, by the format of its rows; `.sources` holds each
    row's "source" (stage 20 tags the model's own general answers "replay")."""
    from omnilm.mlx_lm_api import cache_dataset, text_dataset

    rows = read_jsonl(path, "training data")
    if not rows:
        raise UserError(f"{display(path)} is empty")
    first, sources = rows[0], [r.get("source") for r in rows]
    if "messages" in first:
        if any("messages" not in r and "text" not in r for r in rows):
            raise UserError(f"{display(path)}: a row among chat rows has neither \"messages\" nor \"text\"")
        data = ChatAnswers(rows, tokenizer, mask_prompt)
    elif "prompt" in first and "completion" in first:
        rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                              {"role": "assistant", "content": r["completion"]}]} for r in rows]
        data = ChatAnswers(rows, tokenizer, mask_prompt)
    elif "text" in first:
        data = text_dataset(rows, tokenizer)
    else:
        raise UserError(f"{display(path)}: rows need \"text\", \"messages\" or \"prompt\"+\"completion\"")
    dataset = cache_dataset(data)
    dataset.sources = sources
    return dataset


def replay_rows(dataset):
    """Indices of the rows of a load_split dataset tagged source=replay."""
    return [i for i, source in enumerate(getattr(dataset, "sources", ())) if source == "replay"]


def validation_groups(dataset):
    """{"document": rows, "replay": rows} of a validation split that holds both kinds, else {}.

    The two losses are reported apart because their sum hides forgetting: the document's
    loss keeps falling while the replay loss turns and rises, and control accuracy
    falls from that turn (docs/design.md, "Replay against forgetting";
    docs/experiments/2026-11-25-replay-validation.md)."""
    replay = replay_rows(dataset)
    if not replay or len(replay) == len(dataset):
        return {}
    document = sorted(set(range(len(dataset))) - set(replay))
    return {"document": Rows(dataset, document), "replay": Rows(dataset, replay)}


def loss_positions(lengths, width, multiple=PAD_TO):
    """Flat indices (row * width + target position) of the targets that carry loss, as
    mlx-lm's mask picks them (1-based step s counts when start <= s <= end), padded
    with -1 to a multiple of `multiple` so that few array shapes need compiling."""
    import mlx.core as mx
    import numpy as np

    spans = np.array(lengths)
    steps = np.arange(1, width + 1)
    mask = (steps >= spans[:, 0:1]) & (steps <= spans[:, 1:2])
    flat = np.flatnonzero(mask)
    padded = np.full(-(-len(flat) // multiple) * multiple or multiple, -1, np.int32)
    padded[:len(flat)] = flat
    return mx.array(padded)


def with_positions(batch, lengths):
    """A (batch, lengths) pair as the loss takes it: (batch, lengths, positions)."""
    return batch, lengths, loss_positions(lengths, batch.shape[1] - 1)


def epoch_batches(seed, skip=0, on_step=None, extend=None):
    """mlx-lm's batching with a fixed order per epoch (seed + epoch), identical on
    every process, padded to PAD_TO, and the first `skip` batches dropped: a resumed run sees the
    batches the interrupted run would have seen next. `on_step` is called once a
    step is done (when the trainer asks for the next batch). Every batch comes with its
    loss positions (with_positions); `extend(batch, lengths, positions)`, when
    given, returns the tuple a training batch becomes (distillation adds targets)."""

    def batches(dataset, batch_size, max_seq_length, loop=False, comm_group=None, **_):
        if not loop:  # validation: the order does not matter
            for batch in every_row_batches(dataset, batch_size, max_seq_length, comm_group=comm_group):
                yield with_positions(*batch)
            return
        to_skip, epoch = skip, 0
        while True:
            for batch in padded_batches(dataset, batch_size, max_seq_length, seed=seed + epoch,
                                        comm_group=comm_group):
                if to_skip:
                    to_skip -= 1
                    continue
                batch = with_positions(*batch)
                yield extend(*batch) if extend else batch
                if on_step:
                    on_step()
            epoch += 1

    return batches
