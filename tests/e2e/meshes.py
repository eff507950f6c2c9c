"""A small mesh of the demo's own processes for one end-to-end module, in its own database.

The chaos, resilience, policy-sync and policy-browser tests each run a few instances of the
demo's services with their sidecars, meshui and the collector (no load generator, no Celery
unless asked, no trace sampling); they differ in the instances, the policy seeded as revision 1 and a few
settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from meshui.demo.mesh import Mesh, MeshConfig
from meshui.demo.topology import Instance
from tests.e2e.databases import own_database
from tests.ports import free_port, free_port_block


@contextmanager
def small_mesh(workdir: Path, label: str, instances: tuple[Instance, ...], *,
               policy: str | None = None, redis_url: str | None = None,
               extra_env: tuple[tuple[str, str], ...] = (), run_celery: bool = False
               ) -> Iterator[Mesh]:
    """The running mesh; ``policy`` (YAML) is seeded as revision 1, ``redis_url`` None
    starts an embedded Valkey of its own; ``run_celery`` adds the demo's worker and beat
    (the alerts' evaluation and notifications)."""
    policy_file = None
    if policy is not None:
        policy_file = workdir / "policy.yaml"
        policy_file.write_text(policy)
    with own_database(workdir, label) as database_url:
        config = replace(
            MeshConfig(),
            meshui_port=free_port(), collector_port=free_port(), collector_grpc_port=free_port(),
            base_port=free_port_block(10 * len(instances)), redis_url=redis_url,
            database_url=database_url, instances=instances, run_load=False, run_celery=run_celery,
            trace_sample=0.0, data_dir=workdir, log_dir=workdir / "log",
            policy_file=policy_file, extra_env=extra_env,
        )  # fmt: skip
        mesh = Mesh(config, say=lambda line: None)
        try:
            mesh.start()
            yield mesh
        finally:
            mesh.stop()
