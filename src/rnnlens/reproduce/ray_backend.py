"""The cluster executor: each stage of a reproduction as a Ray task (``rnnlens reproduce --executor ray``).

Ray is an optional extra (``pip install 'rnnlens[ray]'``); every node needs the same rnnlens and torch. A
stage's results land in the same directory layout as with the local pool, in one of two ways, chosen once
when the backend starts:

* **shared filesystem**: probe tasks spread over every node find the token file this backend wrote into the
  output folder, so tasks write their results in place;
* **shipped**: otherwise each task receives the files it needs (the folders of every stage it depends on,
  directly or not, and its own unfinished folder, for resume) as a tar archive, runs in a temporary folder on
  its node, and sends its stage folder back as a tar archive, which the driver unpacks under
  ``OUT/stages/<stage id>/``. Run configs name a sliced corpus by absolute path; those paths are rewritten
  between the two folders (:func:`relocate_configs`). Named corpora must be readable on every node
  (``--data-dir`` or ``RNNLENS_DATA`` there).

``--address``: ``auto`` (a cluster started with ``ray start`` on this machine), ``HOST:PORT`` (the head's GCS
port), ``ray://HOST:PORT`` (Ray client); none starts a local Ray instance for this run only.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import socket
import tarfile
import tempfile
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..exceptions import RnnlensError
from ..fsutil import atomic_write_json, atomic_write_text, read_json
from .plan import Stage
from .stages import Context, stage_dir

TOKEN = ".ray-token"


def import_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise RnnlensError("--executor ray needs Ray: pip install 'rnnlens[ray]' (on every node of the "
                           "cluster)") from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when HOST:PORT (or ray://HOST:PORT) does not accept connections."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RnnlensError(f"--address must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RnnlensError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                           "'ray start --head' there, or leave out --address to run a local Ray instance") from None


# ----- archives ------------------------------------------------------------------------------------------------
def pack(root: Path, rel_dirs: list[str]) -> bytes:
    """A tar archive (bytes) of the folders ``rel_dirs`` under ``root`` (missing ones are left out)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in rel_dirs:
            if (root / rel).exists():
                tar.add(root / rel, arcname=rel)
    return buf.getvalue()


def unpack(data: bytes, root: Path) -> None:
    """Extract an archive made by :func:`pack` under ``root`` (tar's ``data`` filter: nothing outside it)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(root, filter="data")


def relocate_configs(folder: Path, old_root: str, new_root: str) -> int:
    """Rewrite run configs under ``folder`` whose text file lies under ``old_root`` to the same file under
    ``new_root``; returns how many were rewritten."""
    n = 0
    old = str(Path(old_root)) + os.sep
    for cfg_path in folder.rglob("config.json"):
        try:
            cfg = read_json(cfg_path)
        except (OSError, ValueError, RnnlensError):
            continue
        path = (cfg.get("source") or {}).get("text_path") if isinstance(cfg, dict) else None
        if isinstance(path, str) and path.startswith(old):
            cfg["source"]["text_path"] = str(Path(new_root) / path[len(old):])
            atomic_write_json(cfg_path, cfg)
            n += 1
    return n


def closure(stage: Stage, by_id: dict[str, Stage]) -> list[str]:
    """Ids of every stage ``stage`` depends on, directly or not."""
    seen: list[str] = []
    todo = list(stage.all_deps)
    while todo:
        sid = todo.pop()
        if sid in seen or sid not in by_id:
            continue
        seen.append(sid)
        todo.extend(by_id[sid].all_deps)
    return seen


# ----- what runs on a node -------------------------------------------------------------------------------------
def _sees_token(root: str, token: str) -> bool:
    try:
        return (Path(root) / TOKEN).read_text() == token
    except OSError:
        return False


def _remote_stage(stage: Stage, ctx: Context, token: str, bundle: bytes | None) -> dict[str, Any]:
    """Run one stage on a node: in place (shared filesystem), or in a temp folder from ``bundle``."""
    from .executor import _run_timed

    if bundle is None:
        if not _sees_token(ctx.root, token):
            raise RnnlensError(f"this Ray node does not see {ctx.root}; the cluster has no shared filesystem "
                               "there (run reproduce again: it will ship files instead)")
        return {"record": _run_timed(stage, ctx), "files": None, "root": ctx.root}
    tmp = Path(tempfile.mkdtemp(prefix="rnnlens-ray-"))
    try:
        unpack(bundle, tmp)
        relocate_configs(tmp, ctx.root, str(tmp))
        record = _run_timed(stage, replace(ctx, root=str(tmp)))
        return {"record": record, "files": pack(tmp, [str(stage_dir("", stage.id))]), "root": str(tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class RayBackend:
    """Runs stages as Ray tasks; see the module docstring. ``shared``: None to probe, or force a mode."""

    def __init__(self, root: str | os.PathLike, stages: list[Stage], address: str | None = None, workers: int = 0,
                 threads: int = 1, gpu: bool = False, shared: bool | None = None) -> None:
        ray = import_ray()
        if address:
            check_address(address)
        self.ray, self.root, self.by_id = ray, Path(root).resolve(), {s.id: s for s in stages}
        self._started = not ray.is_initialized()
        if self._started:
            if not address:  # a local instance: its workers at normal priority (Ray nices them by default)
                os.environ.setdefault("RAY_worker_niceness", "0")
            try:
                ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, **({} if address else {"num_cpus": workers or os.cpu_count()}))
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; say which address failed
                raise RnnlensError(f"cannot start or join Ray at {address or 'a local instance'}: "
                                   f"{str(exc).splitlines()[0][:200]}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, workers or cpus // max(threads, 1))
        opts: dict[str, Any] = {"num_cpus": max(threads, 1), "max_retries": 0}
        if gpu:
            opts["num_gpus"] = 1
        self._task = ray.remote(**opts)(_remote_stage)
        self.token = secrets.token_hex(16)
        self.shared = shared
        self._running: set[Any] = set()  # refs of tasks not finished yet (close cancels them)
        self._wrote_token = False

    def _mode(self) -> bool:
        """Write the token into the output folder (on first use, so a failed start writes nothing) and decide
        between shared and shipped."""
        if not self._wrote_token:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.root / TOKEN, self.token)
            self._wrote_token = True
        if self.shared is None:
            self.shared = self._probe()
        return self.shared

    def _probe(self) -> bool:
        """True when a task on every alive node reads this backend's token from the output folder."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        probe = self.ray.remote(num_cpus=0)(_sees_token)
        refs = [probe.options(scheduling_strategy=self._on_node(n["NodeID"])).remote(str(self.root), self.token)
                for n in nodes]
        return all(self.ray.get(refs, timeout=120)) if refs else False

    def _on_node(self, node_id: str):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id, soft=False)

    def submit(self, stage: Stage, ctx: Context) -> Future:
        ctx = replace(ctx, root=str(self.root), data_dir=ctx.data_dir or os.environ.get("RNNLENS_DATA"))
        bundle = None
        if not self._mode():
            ids = closure(stage, self.by_id) + [stage.id]  # its own folder too: an unfinished run resumes
            bundle = pack(self.root, [str(stage_dir("", s)) for s in ids])
        ref = self._task.remote(stage, ctx, self.token, bundle)
        self._running.add(ref)
        out: Future = Future()

        def done(f: Future) -> None:
            self._running.discard(ref)
            self._gather(f, stage, out)

        ref.future().add_done_callback(done)
        return out

    def _gather(self, f: Future, stage: Stage, out: Future) -> None:
        """Unpack what the task sent back into the output folder; map Ray's errors to one-line ones."""
        try:
            res = f.result()
            if res["files"] is not None:
                target = stage_dir(self.root, stage.id)
                shutil.rmtree(target, ignore_errors=True)
                unpack(res["files"], self.root)
                relocate_configs(target, res["root"], str(self.root))
            out.set_result(res["record"])
        except Exception as exc:  # noqa: BLE001
            cause = getattr(exc, "cause", None)
            msg = str(cause) if isinstance(cause, RnnlensError) else f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            out.set_exception(RnnlensError(msg))

    def restart(self) -> None:
        pass

    def close(self) -> None:
        for ref in list(self._running):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task may finish meanwhile
                pass
        if self._wrote_token:
            (self.root / TOKEN).unlink(missing_ok=True)
        if self._started:
            self.ray.shutdown()
