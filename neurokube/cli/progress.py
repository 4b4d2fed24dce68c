"""Progress bars on stderr (hidden when stderr is not a terminal)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress(desc: str, total: int | None = None, unit: str = "step") -> Iterator[Callable[[int, int], None]]:
    """Yields ``update(done, total)``; ``total`` may grow as work is discovered."""
    bar = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None, dynamic_ncols=True)

    def update(done: int, new_total: int) -> None:
        if bar.disable:
            return
        if new_total != bar.total:
            bar.total = new_total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
