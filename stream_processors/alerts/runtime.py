"""Process-wide tuning of an alerting worker: Python's cyclic garbage collector.

A batch keeps thousands of decoded samples and every held server's state alive at once, so with
Python's default thresholds (a collection every 700 net allocations) the collector runs many
times per batch and its older generations walk the whole heap, the imported modules and the
rules included. A py-spy profile of the evaluation put a quarter of its time in the decode line
that triggered those collections. What the worker has loaded at start is frozen (never scanned
again) and the first generation is collected after `gc_gen0_threshold` net allocations instead;
0 leaves the interpreter's defaults.
"""

from __future__ import annotations

import gc

# The older generations' thresholds that go with a raised first one (Python's are 10 and 10).
_GEN1_THRESHOLD = 20
_GEN2_THRESHOLD = 100


def tune_gc(gen0_threshold: int) -> bool:
    """Freeze what is loaded and raise the collector's first threshold; whether anything changed."""
    if gen0_threshold <= 0:
        return False
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, _GEN1_THRESHOLD, _GEN2_THRESHOLD)
    return True
