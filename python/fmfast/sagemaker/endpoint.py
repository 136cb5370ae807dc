"""A local endpoint: the ``fmfast serve`` contract on 127.0.0.1, served by uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time

from fmfast.interop.serve import Scorer, create_app

#: Seconds to wait for the server to start listening, and to stop.
_STARTUP_TIMEOUT = 30.0
_SHUTDOWN_TIMEOUT = 30.0


class LocalEndpoint:
    """Serves ``model`` at ``url`` (``GET /ping``, ``POST /invocations``) until :meth:`stop`.

    The listening socket is bound before the server starts, on a free port chosen by the
    system, so that two endpoints never race for a port.
    """

    def __init__(self, model: Scorer, host: str = "127.0.0.1") -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.bind((host, 0))
            port = self._socket.getsockname()[1]
            config = uvicorn.Config(create_app(model), log_level="warning", access_log=False)
            self._server = uvicorn.Server(config)
            # uvicorn installs signal handlers only on the main thread, so Ctrl-C stays the caller's;
            # a daemon thread, so that an endpoint never deleted does not keep the process alive.
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._socket]},
                name=f"fmfast-endpoint-{port}",
                daemon=True,
            )
            self._thread.start()
            deadline = time.monotonic() + _STARTUP_TIMEOUT
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the local endpoint on {host}:{port} did not start")
                time.sleep(0.01)
        except BaseException:
            self._socket.close()
            raise
        self.url = f"http://{host}:{port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving, wait for the server thread to end and close the socket; again is a no-op."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_SHUTDOWN_TIMEOUT)
        self._socket.close()
