"""Feature extraction on a Ray cluster: the file list sharded with Ray Data, the model loaded once per worker.

API: ``zsl.features.extract(paths, ray_address=ADDR)``; command line ``zsl extract IMAGES --out FILE
--ray-address ADDR``. This module supplies the batch source that :func:`zsl.features.extract`
plugs in place of its local DataLoader loop (:func:`zsl.features.local_batches`); everything
else -- the cache entry, its shards, resume, the merge, failure records -- is the local path's.

How a run goes:

1. The driver (the process calling ``extract``) opens the content-keyed cache entry of the file
   list (:mod:`zsl.features.cache`, the same folder the local path uses), keeps the chunks that
   already have a shard (1024 images each) and hands only the missing rows to Ray.
2. Those rows become a Ray Data dataset (``ray.data.from_items``: row index and path) mapped with
   ``map_batches(LiteFeatures, batch_size=batch_size, compute=ActorPoolStrategy(size=workers))``.
   Each actor loads EfficientNet-Lite0 once, then decodes, preprocesses and runs CPU batches with
   the very functions of the local path (``decode_file``, ``normalise_batch``, ``penultimate``),
   so a row is the local path's row (bit for bit at the same torch thread count; see below).
3. The driver reads the output as it is produced (``iter_batches``), advances its progress bar and
   writes each chunk's shard the moment its last row is back; at the end the shards are merged
   into ``features.npz`` exactly as locally. A later local or Ray run finds a complete entry.

Failures. A killed *worker* process: Ray Data restarts the actor and retries the batches it held
(``map_batches`` actors default to ``max_restarts=-1, max_task_retries=-1``), so the run completes;
rows already returned are kept. A killed *driver*: Ray ends its job; the next run skips every chunk
that has a shard, so at most the chunks in flight (workers x batch size images, rounded up to whole
chunks) are computed again.

Choices and why:

* Decoding happens inside the actor, not in a separate Ray Data stage: at 128 px decoding costs a
  few percent of the network's time, and a separate stage would move every decoded image
  (3 x R x R uint8, 49 KB at 128 px) through the object store for nothing.
* The driver writes the shards, not the workers: workers then need no access to the driver's
  cache folder (a laptop can drive a cluster), and a row crosses the network once (1280 float32
  = 5 KB per image). At 100M images this makes the driver the collection point; docs/scale.md
  gives the arithmetic and how to split a collection into several entries.
* One CPU and one torch thread per actor (``cpus_per_worker=1``), as many actors as the cluster
  has CPUs: a 128 px Lite0 forward pass parallelises better across processes than across threads
  (numbers in ``benchmarks/results/ray.md``). The features then equal a local run with one torch
  thread bit for bit; against the local path at another thread count they differ by float32
  rounding only (oneDNN reduces in another order; observed max |diff| ~3e-6 of the largest value).
* Paths travel as bytes (``os.fsencode``), so file names that are not valid UTF-8 survive Arrow.
* Image paths must be readable under the same names on every node (a shared file system); an
  image a worker cannot read is recorded as a failed image with the reason, as locally.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from . import failure_key, failure_reason
from .efficientnet import decode_file, load_efficientnet_lite0, normalise_batch, penultimate


class LiteFeatures:
    """Ray Data callable class: one EfficientNet-Lite0 per actor; a batch of {row, path, resolution} -> features.

    No constructor arguments, so a restarted actor needs nothing but its class: the torch thread
    count is the actor's CPU share, the resolution travels with the rows. (Ray still logs one
    ``core_worker.cc`` line per actor about "constructor arguments in the object store": that is Ray
    Data's own wrapper, which the driver keeps alive for the whole run.)
    """

    def __init__(self):
        import ray
        import torch

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        self.model = load_efficientnet_lite0()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        paths = [os.fsdecode(bytes(p)) for p in batch["path"]]
        r = int(batch["resolution"][0])
        images = np.zeros((len(paths), 3, r, r), np.uint8)  # a failed image stays black, as locally
        ok = np.zeros(len(paths), bool)
        reasons, keys = [b""] * len(paths), [b""] * len(paths)
        for j, path in enumerate(paths):
            try:
                images[j] = decode_file(path, r)
                ok[j] = True
            except Exception as exc:  # noqa: BLE001 - any decoder failure is a skip
                reasons[j] = _to_bytes(failure_reason(exc, path))
                keys[j] = _to_bytes(failure_key(path))
        with torch.inference_mode():
            feats = penultimate(self.model, normalise_batch(torch.from_numpy(images))).numpy()
        return {"row": np.asarray(batch["row"], np.int64), "features": feats.astype(np.float32, copy=False),
                "ok": ok, "reason": np.asarray(reasons, dtype=object), "key": np.asarray(keys, dtype=object)}


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _to_str(raw) -> str:
    return bytes(raw).decode("utf-8", "surrogateescape")


def quiet_ray_data(ray) -> None:
    """Ray Data without its own progress bars and per-run INFO lines (the driver shows zsl's bar);
    its warnings still show, except the notice that the bars are off."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def ray_batches(address: str, *, workers: int | None = None, cpus_per_worker: int = 1, batch_size: int = 64,
                log: Callable[[str], None] | None = None):
    """A batch source for :func:`zsl.features.extract`: ``compute(paths, batches, resolution)``.

    Connects to the cluster only when there is something to compute (a complete cache entry never
    needs the cluster). ``workers``: actors (default: cluster CPUs // ``cpus_per_worker``).
    """
    from ..distributed import cluster_cpus, ray_cluster

    def say(msg: str) -> None:  # above the driver's progress bar, not through it
        if log is not None:
            log(msg)
        else:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)

    def compute(paths: Sequence[str], batches: list[list[int]], resolution: int):
        rows = [i for b in batches for i in b]
        with ray_cluster(address) as ray:
            quiet_ray_data(ray)
            n_workers = int(workers) if workers else max(1, cluster_cpus(ray) // cpus_per_worker)
            cached = len(paths) - len(rows)
            say(f"zsl extract: {cached} of {len(paths)} images already in the feature cache; computing {len(rows)} "
                f"on the Ray cluster with {n_workers} worker{'s' * (n_workers != 1)} x {cpus_per_worker} CPU")
            items = [{"row": i, "path": os.fsencode(paths[i]), "resolution": int(resolution)} for i in rows]
            ds = ray.data.from_items(items)
            out = ds.map_batches(
                LiteFeatures,
                batch_size=int(batch_size),
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=n_workers),
                num_cpus=cpus_per_worker,
            )
            t0, first, n_done = time.perf_counter(), None, 0
            for b in out.iter_batches(batch_size=None, batch_format="numpy"):
                if first is None:
                    first = time.perf_counter() - t0
                n_done += len(b["row"])
                yield (b["row"], b["features"], b["ok"], [_to_str(x) for x in b["reason"]],
                       [_to_str(x) for x in b["key"]])
            total = time.perf_counter() - t0
            say(f"zsl extract: {n_done} images computed on the Ray cluster in {total:.1f} s "
                f"({first or 0.0:.1f} s until the first results: workers starting and loading the model)")

    return compute


__all__ = ["LiteFeatures", "ray_batches"]
