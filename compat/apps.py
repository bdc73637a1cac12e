from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "compat"
    verbose_name = "Prisma CLI cloud API"
