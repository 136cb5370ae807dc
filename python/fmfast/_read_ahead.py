"""Reading the next chunk of a stream while the caller works on the current one: a two-stage pipeline.

Training from RecordIO took turns: decode a read, train on it, decode the next. Both stages release
the interpreter lock (the core decodes and trains without it), so a thread that reads ahead lets
them overlap. The pipeline is bounded: at most two chunks are held at once, the one the caller
works on and the next one, read meanwhile.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

#: What the reading thread hands over: a chunk, an exception it raised, or the end.
_CHUNK, _ERROR, _END = range(3)


def read_ahead(chunks: Iterator[T]) -> Generator[T, None, None]:
    """Yield the items of ``chunks``, each read on a thread of its own while the caller holds the one before.

    An exception that reading raises is raised here, at the item where it happened, as it was
    raised (a RecordIO error keeps its file and byte offset). When the caller stops early (an error,
    Ctrl-C, ``close()``), the thread stops after the read in progress and closes ``chunks``; the
    caller does not wait for it.
    """
    handed: queue.Queue[tuple[int, object]] = queue.Queue()
    # One read at a time, and the next only once the caller has taken the last: so at most two
    # chunks exist at once (the caller's and the one read ahead).
    may_read = threading.Semaphore(1)
    stop = threading.Event()

    def reader() -> None:
        try:
            while True:
                may_read.acquire()
                if stop.is_set():
                    return
                try:
                    chunk = next(chunks)
                except StopIteration:
                    handed.put((_END, None))
                    return
                handed.put((_CHUNK, chunk))
                del chunk
        except BaseException as error:  # handed to the caller, who raises it
            handed.put((_ERROR, error))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=reader, name="fmfast-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = handed.get()
            if kind == _END:
                return
            if kind == _ERROR:
                assert isinstance(item, BaseException)
                raise item
            may_read.release()
            yield item  # type: ignore[misc]
            del item
    finally:
        stop.set()
        may_read.release()
