from celery import shared_task

from servers import runs, services
from servers.models import Server, Service


@shared_task(name="servers.provision", acks_late=True, time_limit=300)
def provision_server(server_id: str) -> str:
    """Check a new server and end its provisioning (idempotent; see services.run_provisioning)."""
    return services.run_provisioning(server_id)


@shared_task(name="servers.reap_stale", acks_late=True, time_limit=300)
def reap_stale() -> int:
    """Retry or fail provisioning runs whose worker went away, and retry deletions that did not
    finish (every minute by beat)."""
    return services.reap_stale() + services.reap_deletions()


@shared_task(name="servers.delete", acks_late=True, time_limit=300)
def delete_server(server_id: str) -> str:
    """Remove a private server from the platform runtime (and its schemas when asked), then the
    row; idempotent (see services.run_deletion)."""
    return services.run_deletion(server_id)


@shared_task(name="servers.check_status", acks_late=True, time_limit=300)
def check_servers() -> dict[str, int]:
    """Ask every healthy or unreachable server its serverInfo (every minute by beat)."""
    return services.check_servers()


@shared_task(name="servers.deploy", bind=True, acks_late=True, time_limit=900)
def run_deploy(self, deploy_id: str) -> str:
    """Run one deploy if it is its service's turn (idempotent; see runs.run_deploy)."""
    return runs.run_deploy(deploy_id, self.request.id or "")


@shared_task(name="servers.delete_service", acks_late=True, time_limit=300)
def delete_service(service_id: str) -> str:
    return runs.run_delete(service_id)


@shared_task(name="servers.reconcile_service", acks_late=True, time_limit=300)
def reconcile_service(service_id: str) -> int:
    """Record the migrations of one service deployed by the Prisma CLI."""
    service = (
        Service.objects.select_related("server__workspace")
        .filter(id=service_id, server__status=Server.Status.HEALTHY)
        .exclude(status=Service.Status.DELETING)
        .first()
    )
    return runs.reconcile_service(service) if service is not None else 0


@shared_task(name="servers.reap_deploys", acks_late=True, time_limit=300)
def reap_deploys() -> int:
    """Retry or fail deploys and deletions whose worker went away (every 20 s by beat)."""
    return runs.reap_deploys() + runs.reap_deletes()


@shared_task(name="servers.reconcile", acks_late=True, time_limit=600)
def reconcile() -> dict[str, int]:
    """Record what the servers did behind the console's back (every minute by beat)."""
    return runs.reconcile()
