"""A Celery worker for the fault tests, with an optional injected fault (env XRAYWEB_FAULT):

- "slow": each predict() first sleeps XRAYWEB_FAULT_SECONDS, so a test can kill the worker or
  drop its database connection in the middle of a task;
- "broken": predict() raises for any batch holding an image 37 pixels wide;
- "crash": the process dies (as a segfault would) on any batch holding an image 37 pixels
  wide: a poison film.

Production code has no fault hooks: this wrapper patches the Predictor, then runs Celery."""

import os
import sys
import time


def _inject(fault: str) -> None:
    from PIL import Image

    from classifier import predictor

    real = predictor.Predictor.predict

    # Uploaded studies reach predict() as PIL images; the worker's warm-up batch of blank
    # arrays at model load is left alone.
    def slow(self, images, **kwargs):
        if any(isinstance(image, Image.Image) for image in images):
            time.sleep(float(os.environ.get("XRAYWEB_FAULT_SECONDS", "5")))
        return real(self, images, **kwargs)

    def broken(self, images, **kwargs):
        if any(isinstance(image, Image.Image) and image.width == 37 for image in images):
            raise RuntimeError("injected fault: inference crashed")
        return real(self, images, **kwargs)

    def crash(self, images, **kwargs):
        if any(isinstance(image, Image.Image) and image.width == 37 for image in images):
            os._exit(70)
        return real(self, images, **kwargs)

    predictor.Predictor.predict = {"slow": slow, "broken": broken, "crash": crash}[fault]


if __name__ == "__main__":
    if os.environ.get("XRAYWEB_FAULT"):
        _inject(os.environ["XRAYWEB_FAULT"])
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(main())
