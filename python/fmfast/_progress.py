"""Progress bars for long jobs: ``progress=True`` draws a tqdm bar, a callable gets ``done`` counts.

Every bar is drawn here, with one naming convention: counts of things in the plural (``rows``,
``records``, ``queries``) and ``B`` for bytes, all scaled (``20.0k/20.0k``, ``1.22Mrows/s``, ``45.0MB/s``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from tqdm.auto import tqdm

Progress = bool | Callable[[int], object] | None
#: What a bar counts.
Unit = Literal["rows", "records", "queries", "B"]


def _bar(total: int | None, unit: Unit) -> tqdm:
    return tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True)


@contextmanager
def progress_callback(
    progress: Progress, total: int | None, unit: Unit
) -> Iterator[Callable[[int], object] | None]:
    """Yield the callback the Rust core calls with the cumulative count of ``unit`` done.

    ``progress`` may be falsy (no reporting), ``True`` (a tqdm bar) or a callable of its own.
    """
    if not progress:
        yield None
        return
    if callable(progress):
        yield progress
        return
    with _bar(total, unit) as bar:

        def advance(done: int) -> None:
            bar.update(done - bar.n)

        yield advance
