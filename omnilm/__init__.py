"""Shared code of the knowledge-injection pipeline (stage scripts stay thin).

Importing this package before mlx makes mlx's float matmuls use OpenBLAS on
Linux CPU (about 30x faster than the reference BLAS its wheel ships), so every
script, the chat app and the tests get the fast setting with no flag.
"""
from omnilm.runtime import use_fast_blas

BLAS = use_fast_blas()
