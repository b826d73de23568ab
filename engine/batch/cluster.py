"""Running a batch's studies on Dask ``distributed`` (the optional ``cluster`` extra).

:func:`run_on_dask` submits one task per study (:func:`engine.batch.worker.process_study`) to an embedded
``LocalCluster`` (worker processes with one task slot each; the model's OpenVINO threads are the
batch's threads per worker) or to an existing scheduler (``tcp://HOST:8786``) whose workers see
the inputs and the output folder at the same paths. :class:`ModelPlugin` loads the model once in
every worker when it is registered or the worker (re)starts; tasks reuse it through
:func:`engine.inference.registry.shared_session`.

Fault tolerance is the scheduler's: a task whose worker dies is run again on another worker (up
to ``distributed.scheduler.allowed-failures`` times, then the study is reported failed); outputs
are written atomically, so a killed attempt leaves no output, only a temporary file that
:func:`engine.batch.run.run_batch` removes at the end.

Importing this module does not need ``distributed`` (without it :class:`ModelPlugin` is never
registered); calling :func:`run_on_dask` does.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from collections.abc import Callable

from engine.base.errors import InputError
from engine.batch.worker import Task, process_study
from engine.inference.registry import shared_session
from engine.inference.session import SessionConfig

try:
    from distributed import WorkerPlugin as _PluginBase
except ImportError:  # the cluster extra is not installed: the class exists but is never registered
    _PluginBase = object

PLUGIN_NAME = "boxseg-model"


class ModelPlugin(_PluginBase):
    """Loads the batch's model into a worker once (at registration and whenever a worker starts)."""

    idempotent = False  # a new batch with another model/threads replaces the previous plugin

    def __init__(self, config: SessionConfig):
        self.config = config

    async def setup(self, worker):
        # the load takes seconds: keep the worker's event loop (heartbeats) responsive meanwhile
        await asyncio.get_running_loop().run_in_executor(None, shared_session, self.config)


def _describe_failure(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("the workers running this study died each time it was tried (too large for a worker's "
                "memory, or crashing the process?)")
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return f"{name}: {msg}"[:300]


def _security(address: str, tls: tuple[str, str, str] | None, log: Callable[[str], None]):
    """Dask's Security for ``address``: TLS with the given files, or None (plain TCP) with a warning when
    the scheduler is not on this machine (anyone who can reach it can run code on the workers)."""
    from distributed.security import Security

    if tls is None:
        if address.startswith("tls://"):
            raise InputError(f"{address}: a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key")
        host = address.split("://", 1)[-1].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            log(f"warning: {address} is plain TCP: Dask's RPC is unauthenticated; off a single machine use a tls:// "
                "scheduler with --tls-ca-file/--tls-cert/--tls-key (docs/batch.md)")
        return None
    if not address.startswith("tls://"):
        raise InputError(f"{address}: TLS certificates were given; the scheduler address must start with tls://")
    for f in tls:
        if not Path(f).is_file():
            raise InputError(f"{f}: no such certificate or key file")
    ca, cert, key = (str(f) for f in tls)
    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


def _connect(address: str | None, n_workers: int | None, log: Callable[[str], None],
             tls: tuple[str, str, str] | None = None):
    from distributed import Client, LocalCluster

    if address is None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
        return cluster, Client(cluster)
    security = _security(address, tls, log)
    try:
        client = Client(address, timeout="30s", security=security)
    except (OSError, TimeoutError) as e:
        raise InputError(f"cannot connect to the Dask scheduler at {address} ({type(e).__name__}); "
                         "start it with `dask scheduler` and workers with `dask worker ADDRESS`") from e
    try:
        client.wait_for_workers(1, timeout=120)
    except (OSError, TimeoutError) as e:
        client.close()
        raise InputError(f"the Dask scheduler at {address} has no workers (waited 120 s); "
                         "start some with `dask worker ADDRESS --nthreads 1`") from e
    return None, client


def run_on_dask(tasks: list[tuple[int, Task]], outdir: str, config: SessionConfig,
                on_result: Callable[[int, Task, dict], None], *, address: str | None = None,
                n_workers: int | None = None, tls: tuple[str, str, str] | None = None,
                log: Callable[[str], None] = lambda s: None) -> str:
    """Run ``tasks`` (index, Task) on a local or existing cluster; ``on_result(index, task, result)``
    is called in this thread as each study finishes; ``tls``: (CA, certificate, key) PEM files for a
    ``tls://`` address. Returns a description of the cluster."""
    from distributed import as_completed

    cluster, client = _connect(address, n_workers, log, tls)
    try:
        info = client.nthreads()
        nthreads = sorted(set(info.values()))
        where = "local cluster" if address is None else f"cluster at {address}"
        desc = (f"{where}, {len(info)} workers x {config.threads or 'default'} OpenVINO threads"
                + (f", {'/'.join(map(str, nthreads))} tasks per worker" if nthreads != [1] else ""))
        if address is not None:
            log(f"using {desc}")
        client.register_plugin(ModelPlugin(config), name=PLUGIN_NAME)
        batch = uuid.uuid4().hex[:8]
        futures = {}
        for i, task in tasks:
            fut = client.submit(process_study, task.study, outdir, task.output, task.fingerprint, config, task.stats,
                                key=f"boxseg-study-{batch}-{i}-{task.study.study}", pure=False,
                                priority=task.input_bytes)  # larger studies first: a shorter tail
            futures[fut] = (i, task)
        for fut in as_completed(futures):
            i, task = futures[fut]
            if fut.status == "finished":
                res = fut.result()
            else:
                res = {"study": task.study.study, "objects": None, "status": "failed", "seconds": 0.0,
                       "error": _describe_failure(fut.exception())}
            on_result(i, task, res)
            fut.release()
        return desc
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["ModelPlugin", "PLUGIN_NAME", "run_on_dask"]
