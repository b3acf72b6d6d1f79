from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from xrayweb.accounts.decorators import role_required
from xrayweb.accounts.roles import CAN_REVIEW
from xrayweb.errors import ApplicationError
from xrayweb.review.selectors import study_with_details, worklist
from xrayweb.review.services import review_classes, review_submit


@require_GET
def worklist_page(request):
    page = Paginator(worklist(), 50).get_page(request.GET.get("page"))
    return render(request, "review/worklist.html", {"page": page})


@require_GET
def study_detail(request, pk: int):
    study = get_object_or_404(study_with_details(), pk=pk)
    prediction = next(iter(study.predictions.all()), None)
    probabilities = []
    if prediction:
        probabilities = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])
    context = {
        "study": study,
        "prediction": prediction,
        "probabilities": probabilities,
        "reviews": list(study.reviews.all()),
        "classes": review_classes(study=study),
    }
    return render(request, "review/study.html", context)


@require_POST
@role_required(CAN_REVIEW)
def review_create(request, pk: int):
    study = get_object_or_404(study_with_details(), pk=pk)
    try:
        review_submit(
            study=study,
            reviewer=request.user,
            label=request.POST.get("label", ""),
            comment=request.POST.get("comment", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("study-detail", pk=pk)
    messages.success(request, f"Review saved for study {pk}.")
    return redirect("study-detail", pk=pk)
