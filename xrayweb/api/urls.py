from django.contrib.auth.decorators import login_not_required
from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from xrayweb.api import views

# The API authenticates itself (token or session) and answers 401/403 in JSON, so the
# login-redirect middleware stays out of its way; DRF's permission classes guard every view.
urlpatterns = [
    path("auth/token/", login_not_required(obtain_auth_token), name="api-token"),
    path("studies/", login_not_required(views.StudyListCreateApi.as_view()), name="api-studies"),
    path("studies/<int:pk>/", login_not_required(views.StudyDetailApi.as_view()), name="api-study"),
    path(
        "studies/<int:pk>/export.dcm",
        login_not_required(views.StudyDicomExportApi.as_view()),
        name="api-study-export",
    ),
    path(
        "studies/<int:pk>/overlay.dcm",
        login_not_required(views.StudyOverlayDicomApi.as_view()),
        name="api-study-overlay",
    ),
    path(
        "studies/<int:pk>/reviews/",
        login_not_required(views.ReviewCreateApi.as_view()),
        name="api-reviews",
    ),
]
