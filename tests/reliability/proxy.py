"""A TCP proxy, in its own process, in front of a server whose death the fault tests play.

The proxy runs as a separate process on purpose: in the test process its relay threads would wait for
the GIL while the test loads a model, so when the server closed an idle keep-alive connection the
client could reuse it before the proxy passed the close on. That is a race a client talking to the
server directly never sees, and it failed an unfaulted request in CI.

Run as ``python proxy.py TARGET_PORT``: it prints its own port, then obeys one command per stdin line
and answers each with one line: ``stop`` (reset every open connection and refuse new ones), ``heal``,
``cut_after N`` (play the death once clients have sent N bytes), ``cuts`` (how many deaths so far),
``delay S`` (hold every chunk S seconds before passing it on, both ways: a slow network).
Only the standard library is imported, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time


class _Relay:
    """The proxy itself: accepts clients, pipes bytes both ways, and cuts everything on cue."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.cut_after: int | None = None
        self.sent = 0
        self.down = False
        self.cuts = 0
        self.delay = 0.0
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()

    def serve(self) -> None:
        while True:
            client, _ = self.listener.accept()
            with self.lock:
                if self.down:
                    client.close()
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if counted and self.cut_after is not None:
                    with self.lock:
                        self.sent += len(chunk)
                        if self.sent >= self.cut_after:
                            self._cut()
                            return
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _cut(self) -> None:
        self.down = True
        self.cuts += 1
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.open.clear()

    def obey(self, command: str) -> str:
        verb, _, arg = command.partition(" ")
        with self.lock:
            if verb == "stop":
                self._cut()
            elif verb == "heal":
                self.down, self.cut_after, self.sent = False, None, 0
            elif verb == "cut_after":
                self.cut_after, self.sent = int(arg), 0
            elif verb == "cuts":
                return str(self.cuts)
            elif verb == "delay":
                self.delay = float(arg)
            else:
                return f"unknown command {command!r}"
        return "ok"


class CuttableProxy:
    """Test-side handle on a proxy process in front of ``127.0.0.1:target_port``.

    :meth:`stop` (or, after :meth:`cut_after`, the n-th byte sent by clients) resets
    every open connection and turns new ones away until :meth:`heal`. :attr:`url` is the proxy's
    address; :attr:`cuts` counts the deaths played so far.
    """

    def __init__(self, target_port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(target_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.port = int(self._read())

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the proxy process exited (code {self.process.poll()})")
        return line.strip()

    def _ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        answer = self._read()
        if answer.startswith("unknown"):
            raise ValueError(answer)
        return answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cuts(self) -> int:
        return int(self._ask("cuts"))

    def cut_after(self, n_bytes: int) -> None:
        """Play the death once clients have sent ``n_bytes`` more bytes."""
        self._ask(f"cut_after {n_bytes}")

    def stop(self) -> None:
        self._ask("stop")

    def heal(self) -> None:
        self._ask("heal")

    def delay(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before passing it on, in both directions (injected latency)."""
        self._ask(f"delay {seconds}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def main(target_port: int) -> None:
    relay = _Relay(target_port)
    threading.Thread(target=relay.serve, daemon=True).start()
    print(relay.listener.getsockname()[1], flush=True)
    for line in sys.stdin:
        print(relay.obey(line.strip()), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
