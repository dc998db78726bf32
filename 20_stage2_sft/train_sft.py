"""Supervised fine-tuning (stage 2): new LoRA ranks over the frozen CPT adapter, on question/answer chats.

Examples:
  python 20_stage2_sft/train_sft.py                       # data/sft/demo_paper + adapters/demo_paper-cpt -> adapters/demo_paper-sft
  python 20_stage2_sft/train_sft.py --resume              # continue an interrupted run where it stopped
  python 20_stage2_sft/train_sft.py --init-adapter none --num-layers 16 --rank 16 --scale 20 --dropout 0
  python 20_stage2_sft/train_sft.py --data data/sft/paper --init-adapter adapters/paper-cpt --config configs/x.yaml

The same trainer as CPT (early stopping on the best validation loss, resume,
losses.csv/png). Rows are {"messages": [...]} rendered with the model's own chat
template; the loss covers only the last assistant answer (the prompt, including the
template's empty <think></think> block, is masked); replay rows (the base model's own
answers to general questions) learn the base's next-token distribution instead of its
words (--replay-distill). The base model and the LoRA layers come from the init
adapter, whose ranks stay frozen under as many new ones (--freeze-init; the saved
adapter is one LoRA of both, so everything downstream loads it as any adapter);
manifest.json names it under "continued_from".
"""
import argparse

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, parse_options
from omnilm.errors import UserError, run_main
from omnilm.training import add_training_arguments, train_adapter


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    add_training_arguments(p, "sft")
    p.add_argument("--init-adapter", help="adapter to start from (default adapters/<data folder name>-cpt; "
                                          "'none' for fresh LoRA weights)")
    # frozen by default: it keeps what CPT stored about facts SFT never asks (docs/design.md,
    # "Frozen ranks in SFT"; docs/experiments/2026-12-01-frozen-cpt-ranks.md);
    # --no-freeze-init continues the CPT matrices themselves
    p.add_argument("--freeze-init", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the init adapter's LoRA ranks frozen and train --rank new ones beside them (unset: "
                        "as many as the init adapter has), so the Q&A cannot overwrite what CPT stored about facts "
                        "it never asks; the saved adapter holds both, as one LoRA")
    p.add_argument("--no-mask-prompt", default=True, dest="mask_prompt", action="store_const", const=False,
                   help="train on the whole conversation, not only the answers")
    p.add_argument("--replay-distill", default=32, type=int, metavar="K",
                   help="replay rows (source=replay) learn the base model's top-K next-token probabilities "
                        "instead of its greedy answer, so general answers stay as sure as they were (default 32; "
                        "0 = plain cross-entropy)")
    # LoRA shape: the init adapter's. 3 epochs: about as good as 6 on the demo in about half
    # the time, and 2 fell short (docs/experiments/2026-12-01-sft-three-epochs.md,
    # docs/experiments/2026-12-02-cpu-time.md)
    p.set_defaults(batch_size=4, epochs=3)
    return p


def main():
    args = parse_options(build_parser(), "sft")
    if args.replay_distill < 0:
        raise UserError("--replay-distill must be >= 0")
    train_adapter("sft", args)


if __name__ == "__main__":
    run_main(main)
