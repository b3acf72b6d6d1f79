from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from xrayweb.api.views import audit, exports, model_versions, reviews, studies, tokens

# The API authenticates itself (token or session) and answers 401/403 in JSON, so the
# login-redirect middleware stays out of its way; DRF's permission classes guard every view.
api = login_not_required

urlpatterns = [
    path("auth/token/", api(tokens.TokenApi.as_view()), name="api-token"),
    path("studies/", api(studies.StudyListCreateApi.as_view()), name="api-studies"),
    path("studies/<int:pk>/", api(studies.StudyDetailApi.as_view()), name="api-study"),
    path(
        "studies/<int:pk>/predictions/",
        api(studies.StudyPredictionsApi.as_view()),
        name="api-study-predictions",
    ),
    path("studies/<int:pk>/reviews/", api(reviews.StudyReviewsApi.as_view()), name="api-reviews"),
    path(
        "studies/<int:pk>/export.dcm",
        api(exports.StudyDicomExportApi.as_view()),
        name="api-study-export",
    ),
    path(
        "studies/<int:pk>/burned-in-check/",
        api(exports.StudyBurnedInCheckApi.as_view()),
        name="api-study-burned-in-check",
    ),
    path(
        "studies/<int:pk>/overlay.dcm",
        api(exports.StudyOverlayDicomApi.as_view()),
        name="api-study-overlay",
    ),
    path(
        "model-versions/",
        api(model_versions.ModelVersionListApi.as_view()),
        name="api-model-versions",
    ),
    path(
        "model-versions/<int:pk>/activate/",
        api(model_versions.ModelVersionActivateApi.as_view()),
        name="api-model-version-activate",
    ),
    path("audit/events/", api(audit.AuditEventListApi.as_view()), name="api-audit-events"),
    path("audit/export.csv", api(exports.PredictionsExportApi.as_view()), name="api-audit-export"),
    # The contract: OpenAPI 3 (JSON or YAML) and Swagger UI, for logged-in users only. The UI's
    # script is a file of its own (the split view), so the page needs no inline script.
    path("schema/", api(SpectacularAPIView.as_view()), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
