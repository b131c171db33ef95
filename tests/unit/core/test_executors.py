"""One shared pool per name, sized once; a broken process pool is replaced."""

from __future__ import annotations

from lumbarview.core import executors
from lumbarview.io.dicom import pixels
from lumbarview.slicing import reformat


def test_one_pool_per_name_shared_by_its_users() -> None:
    pool = executors.thread_pool("reformat")
    assert executors.thread_pool("reformat") is pool and reformat._default_executor() is pool
    assert executors.thread_pool("other") is not pool
    assert pool._max_workers <= executors.CPUS
    assert pool.submit(lambda: 6 * 7).result() == 42


def test_a_reset_process_pool_is_replaced() -> None:
    pool = executors.process_pool("test-reset")
    assert executors.process_pool("test-reset") is pool
    executors.reset_process_pool("test-reset", pool)
    fresh = executors.process_pool("test-reset")
    assert fresh is not pool
    executors.reset_process_pool("test-reset", fresh)
    assert pixels._decoder_pool() is executors.process_pool("decode")
    executors.reset_process_pool("decode", pixels._decoder_pool())
