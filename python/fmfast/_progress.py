"""Progress bars for long jobs: ``progress=True`` draws a tqdm bar, a callable gets ``done`` counts.

Every bar is drawn here, with one naming convention: counts of things in the plural (``rows``,
``records``, ``queries``) and ``B`` for bytes, all scaled (``20.0k/20.0k``, ``1.22Mrows/s``, ``45.0MB/s``).
A fit draws a single bar for all its epochs (:func:`fit_progress`).
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
    # The bar is drawn at the first report, not before: a job that fails to open its input
    # (a missing file, say) then prints its error without an empty bar above it.
    bar: tqdm | None = None

    def advance(done: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _bar(total, unit)
        bar.update(done - bar.n)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.close()


class FitProgress:
    """The rows done over every epoch of a fit, on one bar or for a callable of the user's.

    The bar's description names the epoch in progress, its postfix the metrics of the last one
    that ended; its total is known once an epoch's row count is (at once for data in memory).
    Like :func:`progress_callback`'s, the bar is drawn at the first report, so a fit that fails
    to open its input prints its error without an empty bar above it.
    """

    def __init__(
        self, epochs: int, *, bar: bool = False, report: Callable[[int], object] | None = None
    ) -> None:
        self._epochs, self._wants_bar = epochs, bar
        self._bar: tqdm | None = None
        self._report = self._draw if bar else report
        self._done = 0
        self._ended = 0
        self._epoch_rows: int | None = None

    def epoch_rows(self, rows: int) -> None:
        """Every epoch of this fit trains ``rows`` rows."""
        self._epoch_rows = rows
        if self._bar is not None:
            self._bar.total = self._epochs * rows
            self._bar.refresh()

    def callback(self) -> Callable[[int], object] | None:
        """For the next call to the core: it counts its own rows, reported as rows of the fit."""
        report, before = self._report, self._done
        if report is None:
            return None

        def fit_rows(done: int) -> object:
            self._done = before + done
            return report(self._done)

        return fit_rows

    def epoch_ended(self, rows: int, metrics: dict[str, float]) -> None:
        """An epoch of ``rows`` rows ended with these ``metrics`` (``history_``'s entry)."""
        self._ended += 1
        if self._epoch_rows is None:
            self.epoch_rows(rows)
        if self._wants_bar:
            bar = self._open_bar()
            bar.set_postfix({k: v for k, v in metrics.items() if k != "epoch"}, refresh=False)
            self._describe(bar)  # drawn by the next update, or when the bar closes

    def close(self) -> None:
        """Close the bar, if one was drawn."""
        if self._bar is not None:
            self._bar.close()

    def _open_bar(self) -> tqdm:
        if self._bar is None:
            total = None if self._epoch_rows is None else self._epochs * self._epoch_rows
            self._bar = _bar(total, "rows")
        return self._bar

    def _draw(self, done: int) -> None:
        """The bar's own report: ``done`` rows of the fit, under the epoch they fall in."""
        bar = self._open_bar()
        self._describe(bar)
        bar.update(done - bar.n)

    def _describe(self, bar: tqdm) -> None:
        """Name the epoch in progress: the next to end, as far as the rows done say."""
        epoch = self._ended
        if self._epoch_rows:
            epoch = max(epoch, self._done // self._epoch_rows)
        bar.set_description_str(f"epoch {min(epoch + 1, self._epochs)}/{self._epochs}", refresh=False)


@contextmanager
def fit_progress(progress: Progress, epochs: int) -> Iterator[FitProgress]:
    """Reporting for a fit of ``epochs`` passes: nothing, one bar (``True``) or the user's callable."""
    if not progress or callable(progress):
        yield FitProgress(epochs, report=progress or None)
        return
    fit = FitProgress(epochs, bar=True)
    try:
        yield fit
    finally:
        fit.close()
