from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "xrayweb.studies"
    label = "studies"
