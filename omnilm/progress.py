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
