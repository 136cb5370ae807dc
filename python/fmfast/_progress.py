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

    ``progress`` may be falsy (no reporting), ``True`` (a tqdm bar, drawn at the first report)
    or a callable of its own.
    """
    if not progress:
        yield None
        return
    if callable(progress):
        yield progress
        return
    # The bar is drawn at the first report, not before: a job that fails to open its input
    # (a missing file, say) then prints its error without an empty bar above it.
    bar: tqdm | None = None

    def advance(done: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.close()
