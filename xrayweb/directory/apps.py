from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "xrayweb.directory"
    label = "directory"
    verbose_name = "Directory sign-in"

    def ready(self) -> None:
        from django_auth_ldap.backend import ldap_error

        from xrayweb.directory import checks  # noqa: F401  (registers the system check)
        from xrayweb.directory.backend import directory_error_note

        ldap_error.connect(directory_error_note, dispatch_uid="xrayweb-directory-error")
