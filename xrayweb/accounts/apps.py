from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "xrayweb.accounts"
    label = "accounts"

    def ready(self) -> None:
        from xrayweb.accounts.changes import connect

        connect()  # account and token changes into the audit chain
