"""Keep one command running: ``python -m xrayweb.ops.supervise -- celery -A xrayweb worker ...``.
`make run` runs its worker under it (issue 27: the embedded worker died under load, and
every later study stayed queued). A command that ends is started again after a pause that
doubles from 1 s up to 30 s, back to 1 s after a minute of running; SIGINT and SIGTERM go on
to it, and then the supervisor ends too. Production restarts with its own supervisor
(compose's ``restart: unless-stopped``, systemd)."""

import signal
import subprocess
import sys
import time


def supervise(command: list[str], *, max_restarts: int | None = None, first_pause=1.0) -> int:
    stopping = False
    child: subprocess.Popen | None = None

    def forward(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    pause, restarts = first_pause, 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return code
        if max_restarts is not None and restarts >= max_restarts:
            return code
        pause = first_pause if time.monotonic() - started > 60 else min(pause * 2, 30.0)
        print(
            f"supervise: {command[0]} ended (exit {code}); starting it again in {pause:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(pause)
        restarts += 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m xrayweb.ops.supervise -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return supervise(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
