from django.apps import AppConfig


class AgentProjectConfig(AppConfig):
    """The project package is an app too, for its cross-cutting commands and tasks."""

    name = "agent_project"
    verbose_name = "Layan"
