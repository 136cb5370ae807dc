"""Serve a model on a local endpoint with SageMaker's contract, and call it over HTTP.

    python examples/serve.py [OUT_DIR]

Starts ``fmfast serve OUT_DIR/model.tar.gz`` (the model ``examples/train_from_recordio.py`` wrote;
it runs first when the model is missing) on 127.0.0.1 and a free port, waits for ``GET /ping``,
scores two rows with ``POST /invocations``, shows a bad request's 400, and stops the server.
Code written for a SageMaker endpoint can be pointed at the same URL. Needs ``pip install
'fmfast[serve]'``.
"""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import fmfast
import train_from_recordio  # the example beside this one


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def invoke(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    """POST ``body`` to ``url``; the status and the response text, 4xx included."""
    request = urllib.request.Request(url, body, {"Content-Type": content_type, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for_ping(url: str, server: subprocess.Popen[bytes], log: str) -> None:
    """Wait until ``GET /ping`` answers 200 (the model is loaded), for at most 30 seconds."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as ping:
                if ping.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"fmfast serve did not start; see {log}")
        time.sleep(0.1)


def main(out: Path) -> None:
    """Serve ``out/model.tar.gz``, score two test rows, send one bad request, stop."""
    if not (out / "model.tar.gz").exists():
        train_from_recordio.main(out)
    X_test, _ = fmfast.read_recordio(out / "test.recordio")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The same as the shell command `fmfast serve model.tar.gz --port PORT`.
    command = [sys.executable, "-m", "fmfast.cli", "serve", str(out / "model.tar.gz"), "--port", str(port)]
    with open(out / "serve.log", "wb") as log:  # the server's log: requests, and tracebacks of bugs
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_ping(url, server, log.name)
            print(f"serving on {url}")

            body = fmfast.serialize_request(X_test[:2], "application/json")
            status, text = invoke(f"{url}/invocations", body, "application/json")
            print(status, json.loads(text))  # {"predictions": [{"score": ...}, ...]}

            status, text = invoke(f"{url}/invocations", b'{"instances": [', "application/json")
            print(status, json.loads(text))  # 400 {"error": "..."}
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("stopped")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "fmfast-example"))
