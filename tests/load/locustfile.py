"""Load scenario: staff upload real sample X-rays through the API and poll their status;
radiologists browse the worklist, open studies, save readings and look at the agreement page.
Run through `make bench-load` (tests/load/run.py), not as a test."""

import random
import re
from pathlib import Path

from locust import HttpUser, between, task

from classifier import DEFAULT_CLASSES

SAMPLES = sorted(
    (Path(__file__).resolve().parents[1] / "data" / "cxr_sample" / "images").glob("*.jpg")
)
PASSWORD = "xrayweb-demo"
CLASSES = list(DEFAULT_CLASSES)


class Staff(HttpUser):
    weight = 1
    wait_time = between(2, 5)

    def on_start(self):
        response = self.client.post(
            "/api/auth/token/", json={"username": "staff", "password": PASSWORD}
        )
        self.client.headers["Authorization"] = f"Token {response.json()['token']}"
        self.mine: list[int] = []

    @task(1)
    def upload(self):
        path = random.choice(SAMPLES)
        n = random.randrange(10**9)
        response = self.client.post(
            "/api/studies/",
            files={"image": (path.name, path.read_bytes(), "image/jpeg")},
            data={"patient_id": f"LOAD-{n % 5000}", "accession": f"LOAD-{n}"},
            name="POST /api/studies/",
        )
        if response.status_code == 201:
            self.mine.append(response.json()["id"])

    @task(3)
    def poll(self):
        if self.mine:
            ids = ",".join(map(str, self.mine[-10:]))
            self.client.get(f"/api/studies/?ids={ids}", name="GET /api/studies/?ids")


class Radiologist(HttpUser):
    weight = 3
    wait_time = between(1, 3)

    def on_start(self):
        page = self.client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        self.client.post(
            "/accounts/login/",
            data={"username": "radiologist", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.host}/accounts/login/"},
        )
        self.seen: list[int] = []

    @task(4)
    def worklist(self):
        response = self.client.get(
            random.choice(["/worklist/", "/worklist/?reviewed=no&sort=uncertain"]),
            name="GET /worklist/",
        )
        self.seen = [int(i) for i in re.findall(r'data-study-id="(\d+)"', response.text)][:20]

    @task(3)
    def review_page(self):
        if self.seen:
            self.client.get(f"/studies/{random.choice(self.seen)}/", name="GET /studies/{id}/")

    @task(1)
    def read(self):
        if not self.seen:
            return
        study = random.choice(self.seen)
        page = self.client.get(f"/studies/{study}/", name="GET /studies/{id}/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        state = re.search(r'name="state" value="([^"]*)"', page.text)
        if token and "No prediction yet" not in page.text:
            self.client.post(
                f"/studies/{study}/review/",
                data={
                    "label": random.choice(CLASSES),
                    "csrfmiddlewaretoken": token.group(1),
                    "state": state.group(1) if state else "",
                },
                headers={"Referer": f"{self.host}/studies/{study}/"},
                name="POST /studies/{id}/review/",
            )

    @task(1)
    def agreement(self):
        self.client.get("/agreement/", name="GET /agreement/")
