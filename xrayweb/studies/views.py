import mimetypes

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated

from xrayweb.accounts.decorators import role_required
from xrayweb.accounts.roles import CAN_REVIEW, CAN_UPLOAD, user_has_any_role
from xrayweb.audit.addresses import client_ip
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.studies.selectors import studies_visible, study_list, study_of_media
from xrayweb.studies.services.ingest import Uploaded, studies_upload_batch


@require_GET
def home(request):
    if user_has_any_role(request.user, CAN_REVIEW):
        return redirect("worklist")
    return redirect("upload")


def _upload_message(request, outcome: Uploaded) -> None:
    if outcome.error is None:
        if outcome.study.out_of_scope:
            messages.warning(request, f"{outcome.name}: {outcome.study.scope_warning}")
        return
    exc = outcome.error
    if "study" in exc.extra:
        link = reverse("study-detail", args=[exc.extra["study"]])
        messages.error(request, format_html('{} <a href="{}">Open it</a>.', exc.message, link))
    else:
        messages.error(request, exc.message)


def _upload_result(outcome: Uploaded) -> dict:
    """One file's result, as upload.js shows it next to the file."""
    if outcome.error is None:
        study = outcome.study
        return {"name": outcome.name, "study": study.pk, "warning": study.scope_warning}
    exc = outcome.error
    return {"name": outcome.name, "error": exc.message, "existing": exc.extra.get("study")}


@require_http_methods(["GET", "POST"])
@role_required(CAN_UPLOAD)
def upload(request):
    status = 200
    # upload.js sends one file per request and asks for JSON, to show each file's progress
    # and result next to it; the plain form posts all files and gets the page back.
    wants_json = request.headers.get("Accept") == "application/json"
    if request.method == "POST":
        try:
            outcomes = studies_upload_batch(
                user=request.user,
                files=request.FILES.getlist("images"),
                patient_id=request.POST.get("patient_id", ""),
                accession=request.POST.get("accession", ""),
                site=request.POST.get("site", ""),
                view=request.POST.get("view", ""),
                ip=client_ip(request),
            )
        except ApplicationError as exc:
            if wants_json:
                return JsonResponse({"files": [], "detail": exc.message}, status=exc.status)
            messages.error(request, exc.message)
            outcomes, status = [], 400
        if wants_json:
            failed = [o.error.status for o in outcomes if o.error is not None]
            return JsonResponse(
                {"files": [_upload_result(o) for o in outcomes]},
                status=failed[0] if failed and len(failed) == len(outcomes) else 201,
            )
        for outcome in outcomes:
            _upload_message(request, outcome)
        created = sum(outcome.study is not None for outcome in outcomes)
        if created:
            messages.success(request, f"{created} image(s) queued for analysis.")
        if outcomes and not created:
            status = 400
        if status == 200:
            return redirect("upload")
    studies = study_list(uploaded_by=request.user)[:50]
    return render(request, "studies/upload.html", {"studies": studies}, status=status)


@login_not_required  # authenticated below by DRF: a session (pages) or a token (API clients)
@extend_schema(
    summary="An uploaded X-ray, a heatmap or a lung mask (the URLs a study's JSON gives)",
    responses={
        (200, "image/png"): OpenApiTypes.BINARY,
        (200, "image/jpeg"): OpenApiTypes.BINARY,
    },
)
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def media(request, path: str):
    """Uploaded images, heatmaps and lung masks, for logged-in users only, never sniffed as
    HTML."""
    if ".." in path.split("/") or not path.startswith(("studies/", "heatmaps/", "masks/")):
        raise Http404
    # Only a file of a study this user may read (staff: their site's); 404 for the rest, as
    # for a file that does not exist.
    study = study_of_media(path=path, qs=studies_visible(user=request.user))
    if study is None or not default_storage.exists(path):
        raise Http404
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if not content_type.startswith("image/"):
        raise Http404
    response = FileResponse(default_storage.open(path, "rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    # Patient images: never kept in a browser's or a proxy's cache (a shared workstation).
    response["Cache-Control"] = "private, no-store"
    if path != study.thumbnail.name:  # a thumbnail is read with its list, which is audited
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.STUDY_MEDIA,
            study=study,
            detail={"file": path.split("/", 1)[0]},
            ip=client_ip(request),
        )
    return response
