"""Keep freed tensor memory in the process instead of handing it back to the kernel.

PyTorch's CPU tensors come from ``malloc``. With glibc's defaults, the blocks of a
few MB that every training step allocates and frees are returned to the kernel
(unmapped, or trimmed off the heap) and page-faulted back in on the next step, a
large share of the training time (docs/decisions.md).
Fixed mmap and trim thresholds keep those blocks in the heap for reuse.
"""

import ctypes
import ctypes.util
import platform

# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value: blocks below it come from the heap
TRIM_THRESHOLD = 1 << 30  # give memory back only when a GiB lies free at the heap's top
TOP_PAD = 64 << 20  # grow the heap in large steps


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process; False where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
