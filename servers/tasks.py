from celery import shared_task

from servers import services


@shared_task(name="servers.provision", acks_late=True, time_limit=300)
def provision_server(server_id: str) -> str:
    """Check a new server and end its provisioning (idempotent; see services.run_provisioning)."""
    return services.run_provisioning(server_id)


@shared_task(name="servers.reap_stale", acks_late=True, time_limit=300)
def reap_stale() -> int:
    """Retry or fail provisioning runs whose worker went away (every minute by beat)."""
    return services.reap_stale()


@shared_task(name="servers.check_status", acks_late=True, time_limit=300)
def check_servers() -> dict[str, int]:
    """Ask every healthy or unreachable server its serverInfo (every minute by beat)."""
    return services.check_servers()
