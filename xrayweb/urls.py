from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from xrayweb.accounts import views as account_views
from xrayweb.api.views.dicomweb import StowApi
from xrayweb.directory.forms import DirectoryLoginForm
from xrayweb.ops import views as ops_views
from xrayweb.review import views as review_views
from xrayweb.studies import views as study_views


def _moved(name: str):
    return RedirectView.as_view(
        pattern_name=name, permanent=True, query_string=True, http_method_names=["get", "head"]
    )


urlpatterns = [
    path("", study_views.home, name="home"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=DirectoryLoginForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/shortcuts/", account_views.shortcuts_toggle, name="shortcuts"),
    path("upload/", study_views.upload, name="upload"),
    path("worklist/", review_views.worklist_page, name="worklist"),
    path("worklist/next/", review_views.worklist_next, name="worklist-next"),
    path("agreement/", review_views.agreement_page, name="agreement"),
    path("agreement/export.csv", review_views.agreement_export, name="agreement-export"),
    # The agreement dashboard's earlier address, for bookmarks: "audit" is the access log now.
    path("audit/", _moved("agreement")),
    path("audit/export.csv", _moved("agreement-export")),
    path("audit/log/", review_views.audit_log_page, name="audit-log"),
    path("studies/<int:pk>/", review_views.study_detail, name="study-detail"),
    path("studies/<int:pk>/review/", review_views.review_create, name="review-create"),
    path("media/<path:path>", study_views.media, name="media"),
    path("api/", include("xrayweb.api.urls")),
    # DICOMweb at its conventional root; authenticated like the API (token or session).
    path("dicomweb/studies", login_not_required(StowApi.as_view()), name="dicomweb-stow"),
    path("admin/", admin.site.urls),
]

handler400 = "xrayweb.errors.bad_request"
handler403 = "xrayweb.errors.permission_denied"
handler404 = "xrayweb.errors.page_not_found"
handler500 = "xrayweb.errors.server_error"
