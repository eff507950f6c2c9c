from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "meshui.demo"
    label = "demo"
    verbose_name = "Demo shop"
