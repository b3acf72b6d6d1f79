"""The Celery app. Queues: "default" (light web-side work: deliveries, reconciling),
"inference" (model workers) and "training" (retraining, on a worker of its own)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrayweb.settings")

app = Celery("xrayweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (
    Queue("default", routing_key="default"),
    Queue("inference", routing_key="inference"),
    Queue("training", routing_key="training"),
)
app.conf.task_default_queue = "default"
app.conf.task_routes = {
    "xrayweb.inference.tasks.retrain_model": {"queue": "training"},
    "xrayweb.inference.tasks.predict_study": {"queue": "inference"},
}
app.autodiscover_tasks()
