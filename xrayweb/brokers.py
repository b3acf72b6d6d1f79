from pathlib import Path


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
