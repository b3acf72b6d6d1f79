from django.apps import AppConfig


def _enqueue_uploaded(sender, *, study_id: int, **kwargs) -> None:
    from xrayweb.inference.tasks import study_enqueue  # looked up per call: tests patch it

    study_enqueue(study_id)


class InferenceConfig(AppConfig):
    name = "xrayweb.inference"
    label = "inference"

    def ready(self) -> None:
        # Studies sit below inference and cannot import its tasks: a new study announces
        # itself, and inference enqueues it.
        from xrayweb.studies.signals import study_uploaded

        study_uploaded.connect(_enqueue_uploaded, dispatch_uid="inference-enqueue-uploaded")
