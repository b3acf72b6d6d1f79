"""Write a DICOM chest X-ray made from a real sample image, to try the DICOM path on
`make run`:  .venv/bin/python -m tests.data.make_sample_dicom var/sample.dcm [--monochrome1]

The header carries made-up identifiers (patient "Doe^Jane", MRN-12345), a DX modality and a
PA view; the pixels are the sample image at 12 bits with a window over the full range."""

import argparse
from pathlib import Path

from tests.xrayweb.dicom_corpus import dataset, source_image, to_bytes

SAMPLE = Path(__file__).parent / "cxr_sample" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--monochrome1", action="store_true")
    parser.add_argument("--width", type=int, default=1024)
    args = parser.parse_args()
    grey = source_image(sorted(SAMPLE.glob("*.jpg"))[0], width=args.width)
    ds = dataset(
        grey, bits=12, monochrome1=args.monochrome1, WindowCenter="2048", WindowWidth="4096"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(to_bytes(ds))
    print(f"wrote {args.out} ({grey.shape[1]}×{grey.shape[0]}, SOPInstanceUID {ds.SOPInstanceUID})")


if __name__ == "__main__":
    main()
