"""How long a PACS waits for the C-STORE answer of a large film: a 3,000 × 3,000 16-bit DX
film sent by DCMTK's storescu to the listener, against the store service called directly on
the same bytes (the ratio is the network's share), in a throwaway SQLite database.

    python -m tests.bench.dicom_store [--size 3000] [--repeat 5]

The answer goes out once the study is stored; inference is only enqueued (to a throwaway
filesystem broker here), so this is the whole wait."""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _film(size: int):
    import numpy as np
    from PIL import Image

    from tests.conftest import SAMPLE_DIR
    from tests.xrayweb.dicom_corpus import dataset

    sample = sorted((SAMPLE_DIR / "images").glob("*.jpg"))[0]
    grey = np.asarray(Image.open(sample).convert("L").resize((size, size), Image.BILINEAR))
    # 16 bits with sensor-like noise, so that the file does not compress to nothing.
    stored = grey.astype(np.float64) * 257 + np.random.default_rng(0).normal(0, 40, grey.shape)
    ds = dataset(grey, bits=16)
    ds.PixelData = np.clip(stored, 0, 65535).astype(np.uint16).tobytes()
    return ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xrayweb-bench-dicom-"))
    os.environ.update(
        {
            "XRAYWEB_DATA_DIR": str(folder),
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "DJANGO_SETTINGS_MODULE": "xrayweb.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from pydicom.uid import generate_uid

    from tests.xrayweb.dicom_corpus import to_bytes
    from xrayweb.dicomnet.listener import Listener, ListenerConfig
    from xrayweb.dicomnet.receiving import instance_store, service_user

    call_command("migrate", verbosity=0)
    user = service_user()
    listener = Listener(ListenerConfig("XRAYWEB", "127.0.0.1", 0), user=user)
    listener.start()
    ds = _film(args.size)
    network, direct = [], []
    try:
        for i in range(args.repeat):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            path = folder / f"film-{i}.dcm"
            path.write_bytes(to_bytes(ds))
            start = time.perf_counter()
            result = subprocess.run(
                ["storescu", "-aec", "XRAYWEB", "127.0.0.1", str(listener.port), str(path)],
                capture_output=True,
                text=True,
            )
            network.append(time.perf_counter() - start)
            assert result.returncode == 0, result.stderr
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            data = to_bytes(ds)
            start = time.perf_counter()
            received = instance_store(data=data, user=user, via="bench")
            direct.append(time.perf_counter() - start)
            assert received.outcome == "stored", received.message
    finally:
        listener.stop()
    size_mb = path.stat().st_size / 1e6
    print(f"film: {args.size} x {args.size}, 16 bits, {size_mb:.1f} MB, {args.repeat} runs each")
    print(
        f"{'storescu -> C-STORE answer':32} median {statistics.median(network):6.2f} s  "
        f"max {max(network):6.2f} s"
    )
    print(
        f"{'store service, in process':32} median {statistics.median(direct):6.2f} s  "
        f"max {max(direct):6.2f} s"
    )
    print(f"ratio network/in-process: {statistics.median(network) / statistics.median(direct):.2f}")
    print(f"cstore_answer_s={max(network):.2f}")


if __name__ == "__main__":
    main()
