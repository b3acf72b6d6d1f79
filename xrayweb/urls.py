from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from xrayweb.ops import views as ops_views
from xrayweb.review import views as review_views
from xrayweb.studies import views as study_views

urlpatterns = [
    path("", study_views.home, name="home"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("upload/", study_views.upload, name="upload"),
    path("worklist/", review_views.worklist_page, name="worklist"),
    path("worklist/next/", review_views.worklist_next, name="worklist-next"),
    path("audit/", review_views.audit_page, name="audit"),
    path("audit/export.csv", review_views.audit_export, name="audit-export"),
    path("audit/log/", review_views.audit_log_page, name="audit-log"),
    path("studies/<int:pk>/", review_views.study_detail, name="study-detail"),
    path("studies/<int:pk>/review/", review_views.review_create, name="review-create"),
    path("media/<path:path>", study_views.media, name="media"),
    path("api/", include("xrayweb.api.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "xrayweb.api.errors.bad_request"
handler403 = "xrayweb.api.errors.permission_denied"
handler404 = "xrayweb.api.errors.page_not_found"
handler500 = "xrayweb.api.errors.server_error"
