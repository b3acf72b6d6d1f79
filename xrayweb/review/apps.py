from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "xrayweb.review"
    label = "review"
