from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "xrayweb.inference"
    label = "inference"
