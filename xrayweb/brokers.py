"""The embedded default's broker: kombu's filesystem transport, made safe under load.

kombu's own filesystem channel creates a message file and only then writes into it, and a
reader moves and reads any file with the right name. Under load (deliveries retrying, films
arriving over DICOM and HTTP at once) a worker read a message file that was still empty and
died: ``Unrecoverable error: JSONDecodeError('Expecting value: line 1 column 1 (char 0)')``
(celery/kombu#1551, open). Here a message is written under a name no reader takes, flushed to
disk, and renamed into place (a rename within a folder is atomic); a reader claims a file by
renaming it to a name of its own before reading it, so two readers never take the same one.
The "filesystem" transport alias is pointed at this one below.
"""

import os
import uuid
from pathlib import Path
from time import monotonic

from kombu import transport
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

# Names a reader never takes: kombu matches "<stamp>_<uuid>.<queue>.msg" on the text after
# the first dot, and these start with one.
WRITING = ".writing-"
CLAIMED = ".claimed-"


class AtomicChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        partial = os.path.join(folder, WRITING + name)
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, os.path.join(folder, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _get(self, queue):
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue  # another queue's, or one still being written or claimed
            claimed = os.path.join(folder, f"{CLAIMED}{uuid.uuid4().hex}-{name}")
            try:
                os.rename(os.path.join(folder, name), claimed)
            except FileNotFoundError:
                continue  # another reader took it first
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
                os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {name!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise filesystem.Empty()


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel


# Every "filesystem://" broker URL in this project means the atomic transport, in every
# process that loads the settings (they import this module): web, workers, listener, tests.
transport.TRANSPORT_ALIASES["filesystem"] = f"{__name__}:AtomicFilesystemTransport"
# kombu's own, by another name, for the measurement against it (tests/bench/broker_burst.py).
transport.TRANSPORT_ALIASES["kombu-filesystem"] = "kombu.transport.filesystem:Transport"


def filesystem_broker_options(folder: Path) -> dict[str, str | float]:
    """kombu filesystem-transport options for a broker kept in ``folder`` (created here).

    Producers and consumers share one queue folder, so ``data_folder_in`` and ``_out`` match.
    """
    folders = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
    }
    for path in folders.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    # kombu's virtual transports sleep this long whenever a poll finds nothing to take, which
    # includes "prefetch limit reached": at the default 1 s a worker idled about a second
    # between tasks. 0.1 s costs an idle directory listing ten times a second.
    return {**folders, "polling_interval": 0.1}
