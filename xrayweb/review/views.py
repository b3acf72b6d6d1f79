import json
from datetime import date
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from xrayweb.accounts.decorators import role_required
from xrayweb.accounts.roles import (
    CAN_READ_AUDIT_LOG,
    CAN_REVIEW,
    CAN_SEE_AGREEMENT,
)
from xrayweb.accounts.selectors import shortcuts_enabled
from xrayweb.audit.addresses import client_ip
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.selectors import audit_events, chain_check_latest
from xrayweb.audit.services import audit_record
from xrayweb.downloads import csv_download
from xrayweb.errors import ApplicationError
from xrayweb.inference.conformal import (
    prediction_set_rows,
    set_absent_reason,
    sets_explanation,
)
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.selectors import model_version_active, study_assessment
from xrayweb.review import charts
from xrayweb.review.agreement import (
    AgreementSlice,
    agreement_dashboard,
    agreement_slice_choices,
    assessability_counts,
    matrix_rows,
)
from xrayweb.review.export import COLUMNS, export_filename, predictions_export
from xrayweb.review.models import DriftSignal
from xrayweb.review.monitoring import monitor_report, monitor_series
from xrayweb.review.saliency import saliency_distribution
from xrayweb.review.selectors import (
    next_case,
    review_classes,
    reviews_visible,
    study_with_details,
    worklist,
    worklist_neighbours,
)
from xrayweb.review.services import review_submit, study_prediction_show
from xrayweb.review.worklist_ui import filter_chips, filter_groups, sort_headers
from xrayweb.studies.models import Overrule
from xrayweb.studies.selectors import studies_visible
from xrayweb.studies.services.reads import study_list_read_record

MAX_PAGE_SIZE = 100


def _query_without(request, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _page_size(request) -> int:
    try:
        size = int(request.GET.get("per_page", settings.WORKLIST_PAGE_SIZE))
    except ValueError:
        return settings.WORKLIST_PAGE_SIZE
    return max(1, min(size, MAX_PAGE_SIZE))


@require_GET
def worklist_page(request):
    filters = worklist(params=request.GET, user=request.user)
    status = 200 if filters.is_valid() else 400
    page = Paginator(filters.qs, _page_size(request)).get_page(request.GET.get("page"))
    study_list_read_record(
        user=request.user,
        ids=[study.pk for study in page],
        query=request.GET.urlencode(),
        ip=client_ip(request),
    )
    primary, more, more_open = filter_groups(filters=filters, params=request.GET)
    context = {
        "page": page,
        "filters": filters,
        "primary_filters": primary,
        "more_filters": more,
        "more_open": more_open or not filters.is_valid(),
        "chips": filter_chips(filters=filters, params=request.GET),
        "sort": sort_headers(params=request.GET),
        "current_sort": request.GET.get("sort", ""),
        "needs_me": request.GET.get("needs_me") == "yes",
        "query": _query_without(request, "page"),
        "low_confidence": settings.REVIEW_LOW_CONFIDENCE,
        "outside_threshold": settings.CAM_OUTSIDE_LUNGS_THRESHOLD,
    }
    return render(request, "review/worklist.html", context, status=status)


@require_GET
@role_required(CAN_REVIEW)
def worklist_next(request):
    """The "next case" button: the most uncertain study still waiting for this reader."""
    study = next_case(user=request.user)
    if study is None:
        messages.info(request, "Nothing is waiting for your reading.")
        return redirect("worklist")
    return redirect(f"{reverse('study-detail', args=[study.pk])}?needs_me=yes&sort=uncertain")


@require_GET
def study_detail(request, pk: int):
    study = get_object_or_404(studies_visible(user=request.user, qs=study_with_details()), pk=pk)
    audit_record(
        actor=request.user, action=AuditEvent.Action.STUDY_VIEW, study=study, ip=client_ip(request)
    )
    shown = study_prediction_show(
        study=study,
        user=request.user,
        reveal=request.GET.get("reveal") == "1",
        ip=client_ip(request),
    )
    prediction = shown.prediction
    rows = []
    if prediction:
        members = sorted(prediction.member_probabilities)
        for name, value in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]):
            rows.append(
                {
                    "label": name,
                    "ensemble": value,
                    "members": [prediction.member_probabilities[m].get(name) for m in members],
                }
            )
    filters = worklist(params=request.GET, user=request.user)
    previous_id, next_id = worklist_neighbours(
        qs=filters.qs if filters.is_valid() else worklist(params={}, user=request.user).qs,
        study_id=study.pk,
    )
    query = _query_without(request, "page", "reveal")
    fraction = prediction.cam_lung_fraction if prediction else None
    set_rows = (
        prediction_set_rows(
            prediction_sets=prediction.prediction_sets, assessable=prediction.assessable
        )
        if prediction
        else []
    )
    context = {
        "study": study,
        "prediction": prediction,
        "assessment": study_assessment(study=study),
        "withheld": shown.withheld,
        "revealed": shown.revealed,
        "can_reveal": shown.can_reveal,
        "outside_lungs": fraction is not None and fraction < settings.CAM_OUTSIDE_LUNGS_THRESHOLD,
        "outside_threshold": settings.CAM_OUTSIDE_LUNGS_THRESHOLD,
        "member_names": sorted(prediction.member_probabilities) if prediction else [],
        "rows": rows,
        "set_rows": set_rows,
        "sets_explanation": sets_explanation(set_rows),
        "set_absent": set_absent_reason(assessable=prediction.assessable if prediction else None),
        "reviews": reviews_visible(study=study, user=request.user),
        "classes": review_classes(study=study),
        "query": query,
        "previous_id": previous_id,
        "next_id": next_id,
        "second_read": settings.REVIEW_SECOND_READ,
        "shortcuts": shortcuts_enabled(user=request.user),
    }
    return render(request, "review/study.html", context)


@require_POST
@role_required(CAN_REVIEW)
def review_create(request, pk: int):
    study = get_object_or_404(study_with_details(), pk=pk)
    query = request.POST.get("query", "")
    target = reverse("study-detail", args=[pk]) + (f"?{query}" if query else "")
    assessability = request.POST.get("assessability", "")
    # On the page, choosing "not diagnostic" sets aside a class that was also ticked.
    label = "" if assessability == Overrule.NOT_DIAGNOSTIC else request.POST.get("label", "")
    try:
        review = review_submit(
            study=study,
            reviewer=request.user,
            label=label,
            assessability=assessability,
            comment=request.POST.get("comment", ""),
            expected_state=request.POST.get("state", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(target)
    messages.success(request, f"Review saved for study {pk} ({review.get_kind_display()}).")
    return redirect(target)


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    return date.fromisoformat(value)


@require_GET
@role_required(CAN_SEE_AGREEMENT)
def agreement_page(request):
    try:
        version_name = request.GET.get("model_version") or ""
        version = get_object_or_404(ModelVersion, name=version_name) if version_name else None
        where = AgreementSlice(
            version=version,
            date_from=_parse_date(request.GET.get("date_from")),
            date_to=_parse_date(request.GET.get("date_to")),
            site=request.GET.get("site", ""),
            view=request.GET.get("view", ""),
        )
    except ValueError:
        return HttpResponseBadRequest("Dates must be YYYY-MM-DD.")
    stats = agreement_dashboard(where=where)
    labels = stats["labels"]
    saliency = saliency_distribution(where=where, threshold=settings.CAM_OUTSIDE_LUNGS_THRESHOLD)
    # The worklist takes the same slice parameters (on each study's current prediction).
    sliced = {
        k: request.GET.get(k, "") for k in ("model_version", "date_from", "date_to", "site", "view")
    }
    outside = {"outside_lungs": "yes"} | {k: v for k, v in sliced.items() if v}
    monitored = where.version or model_version_active()
    monitor = monitor_report(version=monitored, site=where.site)
    series = monitor_series(monitor, monitored)
    titles = {
        DriftSignal.DISTANCE: ("Films beyond the training films' 95th percentile", "share"),
        DriftSignal.MIX: ("Prediction mix: distance from the validation mix", "total variation"),
        DriftSignal.CONFIDENCE: ("Mean confidence", "mean confidence"),
        DriftSignal.AGREEMENT: ("Agreement with the radiologists' final labels", "agreement"),
    }
    context = {
        "monitor": monitor,
        "monitored": monitored,
        "window": settings.MONITOR_WINDOW_FILMS,
        "monitor_svgs": [
            charts.weekly_svg(
                title,
                series["weeks"],
                series[signal]["series"],
                y_label,
                reference=series[signal]["reference"],
                reference_label=series[signal]["reference_label"],
            )
            for signal, (title, y_label) in titles.items()
        ]
        if series["weeks"]
        else [],
        "stats": stats,
        "where": where,
        "choices": agreement_slice_choices(),
        "rows": matrix_rows(labels, stats["matrix"]),
        "reliability_svg": charts.reliability_svg(stats["calibration"]),
        "trend_svg": charts.trend_svg(stats["trend"]),
        "gate": assessability_counts(where=where),
        "saliency": saliency,
        "saliency_class_svg": charts.saliency_svg(
            saliency["by_class"], saliency["threshold"], "Grad-CAM mass inside the lungs by class"
        ),
        "saliency_version_svg": charts.saliency_svg(
            saliency["by_version"], saliency["threshold"], "… by model version"
        ),
        "outside_query": urlencode(outside),
        "query": request.GET.urlencode(),
    }
    return render(request, "review/agreement.html", context)


@require_GET
@role_required(CAN_SEE_AGREEMENT)
def agreement_export(request):
    """Every prediction with its review history, as CSV. A radiologist's export hides a first
    read awaiting someone else's second read, as the review page does; an admin's shows all."""
    try:
        rows = predictions_export(user=request.user, query=request.GET, ip=client_ip(request))
    except ApplicationError as exc:
        return HttpResponseForbidden(exc.message)
    return csv_download(rows, header=COLUMNS, filename=export_filename())


def _detail_text(detail: dict) -> str:
    """An event's detail for people: "key: value" pairs, a dash for an empty value (never
    Python's None)."""

    def shown(value) -> str:
        if value is None or value == "":
            return "–"
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False).replace("null", "–")
        return str(value)

    return "; ".join(f"{key}: {shown(value)}" for key, value in sorted(detail.items()))


@require_GET
@role_required(CAN_READ_AUDIT_LOG)
def audit_log_page(request):
    study = request.GET.get("study", "")
    where = {
        "action": request.GET.get("action", "")[:32],
        "actor": request.GET.get("actor", "")[:150],
        "study_id": int(study) if study.isdigit() and len(study) < 19 else None,
    }
    events = audit_events(**where)
    audit_record(
        actor=request.user,
        action=AuditEvent.Action.AUDIT_READ,
        detail={k: str(v) for k, v in where.items() if v},
        ip=client_ip(request),
    )
    page = Paginator(events, _page_size(request)).get_page(request.GET.get("page"))
    for event in page:
        event.detail_text = _detail_text(event.detail)
    context = {
        "page": page,
        "chain_check": chain_check_latest(),
        "actions": AuditEvent.Action.choices,
        "query": _query_without(request, "page"),
    }
    return render(request, "review/audit_log.html", context)
