"""The relay inside a CLI agent's sandbox: loopback TCP in, agentd's proxy (a unix socket) out.

A sandbox without network (``--unshare-net``) has only its own loopback.  This program is the
sandbox's command: it listens on ``127.0.0.1:PORT`` there, starts the CLI as its child (which reaches
its API and ``HTTPS_PROXY`` at that address), copies each connection to the unix socket that agentd's
``proxy.Proxy`` listens on outside (bound into the sandbox), and exits with the CLI's exit status.

It is run from its source text (``command``: ``python -I -S -c SOURCE``, read outside), by a Python the
sandbox can see (``sandbox.python_inside``), and imports only the standard library: no file of agentd's
need be visible inside (a checkout under /tmp is not), and nothing in the sandbox's environment or
workspace changes what it runs::

    python -I -S -c <relay.py> SOCKET PORT -- claude -p ...
"""

import os
import select
import signal
import socket
import subprocess
import sys
import threading


def command(python: str, sock_path, port: int, argv: list[str]) -> list[str]:
    """The sandbox's command: this relay, from its source text, in front of ``argv``."""
    with open(__file__, encoding="utf-8") as f:
        source = f.read()
    return [python, "-I", "-S", "-c", source, str(sock_path), str(port), "--", *argv]


def pipe(a: socket.socket, b: socket.socket, idle: float | None = None, close=None) -> None:
    """Copy bytes both ways until either side closes (or ``idle`` seconds pass with nothing), then close
    ``close`` (both sockets unless told).  ``proxy.Proxy``'s tunnels use it too."""
    socks = [a, b]
    try:
        while True:
            ready, _, _ = select.select(socks, [], [], idle)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        for s in (a, b) if close is None else close:
            s.close()


def _serve(listener: socket.socket, sock_path: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(sock_path)
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pipe, args=(conn, up), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: relay.py SOCKET PORT -- COMMAND...", file=sys.stderr)
        return 2
    sock_path, port, cmd = argv[0], int(argv[1]), argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as e:
        print(f"agentd relay: can't listen on 127.0.0.1:{port}: {e}", file=sys.stderr)
        return 125
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, sock_path), daemon=True).start()
    try:
        child = subprocess.Popen(cmd, close_fds=True)
    except OSError as e:
        print(f"agentd relay: can't start {cmd[0]}: {e}", file=sys.stderr)
        return 127
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    rc = child.wait()
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(sys.argv[1:]))
