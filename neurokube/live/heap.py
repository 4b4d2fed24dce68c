"""Keep the long-lived heap out of the garbage collector's way.

A function process holds every node and pod of the cluster in its watch cache, next to the
modules it imported (numpy, LightGBM, Flask): hundreds of thousands of objects that live as long
as the process. A full (generation 2) collection walks every one of them, and it runs in
whichever request happens to cross the threshold. An extender in ``Nodes`` mode decodes a whole
NodeList per call and crosses it every few calls: benchmarks/extender_latency.py counted 34 full
collections of up to 283 ms in 200 pods at 1,000 nodes.

:func:`settle` runs after every full list of the watch cache (start-up and each re-list, every
``NEUROKUBE_RESYNC_S``): one full collection, then :func:`gc.freeze` moves everything alive to
the permanent generation, so later collections walk only what was allocated since. In the same
benchmark row the longest full collection fell to 2 ms and the p99 per pod from 305 ms to 39 ms.
Frozen objects are still freed by reference counting when the cache drops them; only cyclic
garbage among them waits for the next settle, which unfreezes first.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect everything, then freeze what is left (see the module docstring)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
