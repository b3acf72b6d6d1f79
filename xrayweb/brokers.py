from pathlib import Path


def filesystem_broker_options(folder: Path) -> dict[str, str]:
    """kombu filesystem-transport options for a broker kept in ``folder`` (created here).

    Producers and consumers share one queue folder, so ``data_folder_in`` and ``_out`` match.
    """
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
    }
    for path in options.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    return options
