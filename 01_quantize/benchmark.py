"""Compare text models on this machine: size, bits/weight, load time, speed, memory, perplexity.

Examples:
  python 01_quantize/benchmark.py                      # demo float / 8-bit / 4-bit -> results/benchmark/
  python 01_quantize/benchmark.py --models models/demo-omni-Text models/demo-omni-Text-4bit --repeats 5
  python 01_quantize/benchmark.py --models models/My-Text models/My-Text-4bit \\
      --text-file data/cpt/my_paper/valid.jsonl --output results/my-benchmark
  python 01_quantize/benchmark.py --force              # measure again, replacing results/benchmark/

Each model runs in its own process (numbers never bleed from one into the next):
load (repeated), a warm-up, then N repeats of a greedy generation (prompt tok/s,
generation tok/s), peak memory, and perplexity on held-out text: --text-file (a
.jsonl of {"text"} lines or a .txt); without it the newest data/cpt/*/valid.jsonl,
else a built-in passage (01_quantize/benchmark_passage.txt). Writes benchmark.csv,
benchmark.md (with the change relative to the first model), benchmark.png and
manifest.json (with the machine: figures only compare on one machine).
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.benchmark import run_benchmark
from omnilm.config import make_parser, parse_options
from omnilm.errors import run_main


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    p.add_argument("--models", nargs="+", metavar="DIR", help="model folders, the first is the reference "
                   "(default: models/demo-omni-Text and its -8bit/-4bit versions)")
    p.add_argument("--output", help="results folder (default: results/benchmark)")
    p.add_argument("--repeats", default=3, type=int, help="timed repeats after the warm-up")
    p.add_argument("--text-file", help="held-out text: .jsonl of {\"text\"} lines or .txt (default: see above)")
    p.add_argument("--prompt-tokens", default=64, type=int, help="prompt length")
    p.add_argument("--max-tokens", default=32, type=int, help="tokens generated per repeat")
    p.add_argument("--perplexity-tokens", default=1024, type=int, help="held-out tokens scored for perplexity, 0 to skip "
                   "(default 1024)")
    return p


def main():
    run_benchmark(parse_options(build_parser(), "benchmark", force="replace the results folder of an earlier run"))


if __name__ == "__main__":
    run_main(main)
