"""Row blocks and tasks in threads, each with single-threaded BLAS.

The numerical core works on many small dense products (a row block's ridge
systems, a block's share of a Hessian). Multi-threaded BLAS on such products
costs more than it saves, and where numpy and scipy load two OpenBLAS
libraries, the threads one leaves spinning slow down the other's calls (a
10-class aggregator's Newton steps on 1,000 rows: 83 ms with two BLAS threads
against 35 ms with one, on 2 cores). So the sums over rows run by blocks, in
as many threads as BLAS may use, each block with one BLAS thread, and are
reduced in block order, so that results do not depend on the scheduling;
and the combiner selection's (candidate, fold) fits, with ``n_jobs=None``,
run the same way (joblib's threading backend under :func:`one_blas_thread`):
low-level parallelism that follows BLAS's thread count, as scikit-learn's
OpenMP loops follow OpenMP's. Row blocks use a bare ThreadPoolExecutor
rather than joblib: a sweep maps hundreds of millisecond blocks, where
joblib's per-call dispatch would cost more than the blocks.
"""

from concurrent.futures import ThreadPoolExecutor
from functools import cache

from threadpoolctl import ThreadpoolController

# Entries of a row block's widest temporary (1 MiB of float64). Smaller
# blocks stay in cache and leave less freed memory behind in the threads'
# malloc arenas: an ALS sweep at n = 1e6, d = 10 took 1.5 CPU seconds in
# blocks of 2^17 entries and 1.9 in blocks of 2^20, which also left 15 MB
# more resident.
BLOCK_ENTRIES = 1 << 17

# Row blocks of the sums over all rows outside the ALS sweep (the confidence
# totals, the initial factors' Gram matrix, the aggregator's loss, gradient
# and Hessian): a block holds REDUCTION_ENTRIES entries of its widest matrix
# (8 MiB), or REDUCTION_MIN_ROWS rows where that is more. Larger than
# BLOCK_ENTRIES because each block's sum is added in Python: up to 95,000
# rows at 10 columns, and every matrix of up to 16,384 rows, is one block,
# whose sums are exactly those of the whole matrix.
REDUCTION_ENTRIES = 1 << 20
REDUCTION_MIN_ROWS = 1 << 14


def reduction_rows(width, multiple=1):
    """Rows per block of a reduction over rows ``width`` entries wide.

    Rounded up to a multiple of ``multiple`` (the rows of finer blocks
    nested in it, so that their boundaries do not depend on how the rows
    are streamed).
    """
    rows = max(REDUCTION_ENTRIES // max(width, 1), REDUCTION_MIN_ROWS)
    return -(-rows // multiple) * multiple


def row_slices(n_rows, rows_per_block):
    """Consecutive slices of ``rows_per_block`` rows covering ``range(n_rows)``."""
    return [slice(start, min(start + rows_per_block, n_rows))
            for start in range(0, n_rows, rows_per_block)] or [slice(0, 0)]


@cache
def _controller():
    """The BLAS libraries loaded at first use: numpy's and scipy's, which skcfe imports.

    Built once: listing the loaded libraries takes milliseconds, as long as
    a small Newton solve.
    """
    return ThreadpoolController().select(user_api="blas")


def blas_threads():
    """Threads BLAS may use here (after the user's limits and environment variables)."""
    return max((library["num_threads"] for library in _controller().info()), default=1)


def one_blas_thread():
    """Context manager that limits numpy's and scipy's BLAS to one thread.

    OpenBLAS's thread count is process-wide, and threadpoolctl lets one
    Python thread at a time set it (the first to do so, while it lives);
    other threads' limits are no-ops. So every threaded map here sets the
    limit before it starts its threads, and the nested limits of the tasks
    change nothing.
    """
    return _controller().limit(limits=1)


def map_row_blocks(func, n_rows, rows_per_block, n_threads=1):
    """``[func(rows) for rows in blocks]`` over consecutive slices of ``rows_per_block`` rows.

    Over more than one block, BLAS is limited to one thread and the blocks
    run in ``n_threads`` threads. Multi-threaded BLAS on a block's small
    products costs more CPU than it saves (ALS at n = 1e6: 34 CPU seconds for
    two sweeps against 3 on a loaded 2-core machine). Results come back in
    block order, so reductions over them do not depend on the scheduling.
    """
    return list(iter_row_blocks(func, n_rows, rows_per_block, n_threads))


def iter_row_blocks(func, n_rows, rows_per_block, n_threads=1, group=None):
    """:func:`map_row_blocks` as a generator that computes ``group`` blocks at a time.

    A caller that reduces the results as they come holds at most one group's
    results (None: every block at once).
    """
    blocks = [slice(start, min(start + rows_per_block, n_rows))
              for start in range(0, n_rows, rows_per_block)]
    if len(blocks) == 1:
        yield func(blocks[0])
        return
    group = group or len(blocks)
    for start in range(0, len(blocks), group):
        results = _map_one_blas_thread(func, blocks[start:start + group], n_threads)
        yield from results
        del results  # before the next group is computed


def _map_one_blas_thread(func, items, n_threads):
    """``[func(item) for item in items]`` in order, in up to ``n_threads`` threads,
    with BLAS limited to one thread (set here, before any thread starts)."""
    n_threads = min(n_threads, len(items))
    with one_blas_thread():
        if n_threads <= 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(n_threads) as pool:
            return list(pool.map(func, items))
