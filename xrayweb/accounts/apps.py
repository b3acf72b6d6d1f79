from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "xrayweb.accounts"
    label = "accounts"
