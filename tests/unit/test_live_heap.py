"""Settling the heap after a full list: garbage is collected, what is alive is frozen (later
collections skip it), a frozen cycle that becomes garbage is collected by the next settle, and
the watch cache runs its hook after every full list, with the raw list already dropped."""

import gc
import weakref

import pytest

from neurokube.live import heap
from neurokube.live.cache import ClusterCache
from neurokube.testing import node_doc, pod_doc


class Cycle:
    def __init__(self):
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()


def test_settle_collects_then_freezes():
    garbage = weakref.ref(Cycle())  # unreachable at once: only a collection can free it
    kept = Cycle()
    heap.settle()
    assert garbage() is None and gc.get_freeze_count() > 0
    frozen = weakref.ref(kept)
    del kept
    gc.collect()
    assert frozen() is not None  # frozen: collections no longer look at it
    heap.settle()
    assert frozen() is None  # the next settle unfreezes first


class Doc(dict):
    """A JSON object that can be watched for being freed."""


class ListingKube:
    def __init__(self):
        self.sent = []

    def get(self, path, **query):
        item = Doc(node_doc("a") if path.endswith("nodes") else pod_doc("p", node="a", uid="u"))
        self.sent.append(weakref.ref(item))
        return {"metadata": {"resourceVersion": "5"}, "items": [item]}


def test_the_cache_settles_after_every_full_list_without_the_raw_list():
    kube = ListingKube()
    alive_at_hook = []

    def on_listed():
        gc.collect()
        alive_at_hook.append(sum(ref() is not None for ref in kube.sent))

    cache = ClusterCache(kube, "neurokube", on_listed=on_listed)
    assert cache._list("nodes") == "5" and cache._list("pods") == "5"
    assert alive_at_hook == [0, 0]  # the raw objects are not frozen along with the cache
    assert cache.synced and cache.snapshot().used_pods.tolist() == [1]
