"""Continued pretraining (stage 1): LoRA on the paper's text, early stopping on the best validation loss.

Examples:
  python 10_stage1_cpt/train_cpt.py                       # data/cpt/demo_paper -> adapters/demo_paper-cpt
  python 10_stage1_cpt/train_cpt.py --resume              # continue an interrupted run where it stopped
  python 10_stage1_cpt/train_cpt.py --data data/cpt/paper --model models/X-Text-4bit --config configs/x.yaml
  mlx.launch --backend ring -n 2 --hosts 127.0.0.1 python 10_stage1_cpt/train_cpt.py --force
                                                          # data-parallel, 2 processes (--batch-size is per process)

Runs mlx-lm's trainer. adapters.safetensors holds the weights with the BEST
validation loss (last_adapters.safetensors the last ones), so
`mlx_lm.generate --model <base> --adapter-path adapters/demo_paper-cpt` works as is;
losses.csv / losses.png show the curves; manifest.json (written last) names the base.
By default stage 10's validation chunks are trained on too (see prepare_data.py), so
the validation loss says how much of the document is learned; 2 epochs, because on
the demo 4 cost general answers (docs/experiments/2026-11-25-cpt-two-epochs.md).
Base model by default: the model named in the data's manifest (the float text model)
on CPU, where QLoRA is about 30x slower; its -4bit sibling (QLoRA) on a GPU.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, parse_options
from omnilm.errors import run_main
from omnilm.training import add_training_arguments, train_adapter


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    add_training_arguments(p, "cpt")
    p.set_defaults(num_layers=16, rank=8, scale=20.0, batch_size=1, epochs=2)
    return p


def main():
    train_adapter("cpt", parse_options(build_parser(), "cpt"))


if __name__ == "__main__":
    run_main(main)
