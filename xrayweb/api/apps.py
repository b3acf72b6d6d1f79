from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "xrayweb.api"
    label = "api"
