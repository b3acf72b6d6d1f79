from django.db.models import QuerySet

from xrayweb.dicomnet.models import Delivery


def study_deliveries(*, study) -> QuerySet[Delivery]:
    """Where a study's results were sent, oldest first; none for a study with no DICOM."""
    if not study.original:
        return Delivery.objects.none()
    return (
        Delivery.objects.filter(study=study)
        .select_related("destination")
        .order_by("created_at", "id")
    )
