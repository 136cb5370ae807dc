"""Progress bars for long jobs: ``progress=True`` draws a tqdm bar, a callable gets ``done`` counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

Progress = bool | Callable[[int], object] | None


@contextmanager
def progress_callback(
    progress: Progress, total: int | None, unit: str
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
    with tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True) as bar:

        def advance(done: int) -> None:
            bar.update(done - bar.n)

        yield advance
