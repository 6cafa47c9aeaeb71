"""Overlapping the file work of a cohort with its registrations, as ``monai-reg predict`` does (``--prefetch``).

While pair ``i`` registers in the calling thread, :class:`Prefetcher` reads the images and labels of the next pair in
a background thread and :class:`BackgroundWriter` writes the outputs of pair ``i - 1`` in another, so reading (about
0.05 s per brain pair) and the compressed NIfTI outputs (about 0.15-0.2 s) run beside the network instead of between
registrations. At most one pair is read ahead and one pair written at a time (bounded memory).

Reading ahead is a cache, never a different reader: :func:`read_pair_inputs` calls
:func:`~monai_reg_ext.io.load_input` on each file as :func:`~monai_reg_ext.api.register` does with a path (the same
checks). :func:`register_preloaded` passes the images read ahead to ``register`` and, when anything fails (reading or
registering), registers the pair again from its paths, which raises the error exactly as the sequential path does,
naming the files. An error of a background thread is raised in the calling thread by :meth:`Future.result`, for its
own pair.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import torch

from ..io import load_input

__all__ = ["read_pair_inputs", "register_preloaded", "Prefetcher", "BackgroundWriter", "INPUT_KEYS"]

#: The file keys of a pairs-file entry that ``register`` reads, in the order of its arguments.
INPUT_KEYS = ("moving_image", "fixed_image", "moving_label", "fixed_label")


def read_pair_inputs(entry: dict[str, str], spatial_dims: int) -> dict[str, Any]:
    """The images (single channel) and labels of a pairs-file entry as ``MetaTensor`` (None for a label not given),
    read by :func:`~monai_reg_ext.io.load_input` as :func:`~monai_reg_ext.api.register` reads a path.

    Raises:
        FileNotFoundError / ValueError naming the input and its file.
    """
    names = {"moving_image": "moving", "fixed_image": "fixed"}
    out: dict[str, Any] = {}
    for key in ("fixed_image", "moving_image", "moving_label", "fixed_label"):  # register's order
        path, single = entry.get(key), key.endswith("image")
        out[key] = None if path is None else load_input(path, names.get(key, key), spatial_dims, single_channel=single)
    return out


def register_preloaded(
    register: Callable[..., Any], entry: dict[str, str], preloaded: Future | None, **kwargs: Any
) -> Any:
    """``register(moving, fixed, moving_label=..., fixed_label=..., **kwargs)`` for a pairs-file entry, with the
    inputs read ahead (``preloaded``, a future of :func:`read_pair_inputs`) when they were read without error.

    The result's ``input_paths`` are the entry's files, as if they had been given (``save`` never overwrites them).
    Without ``preloaded``, or when reading or registering the preloaded inputs fails, the pair is registered from
    its paths: the same result, or the error exactly as the sequential path raises it (naming the files).
    """
    paths = {k: entry.get(k) for k in INPUT_KEYS}
    inputs = None
    if preloaded is not None:
        try:
            inputs = preloaded.result()
        except Exception:  # read again from the paths, which raises the error of the sequential path
            inputs = None
    if inputs is not None:
        try:
            result = register(inputs["moving_image"], inputs["fixed_image"], moving_label=inputs["moving_label"],
                              fixed_label=inputs["fixed_label"], **kwargs)  # fmt: skip
        except Exception:  # messages naming the files: register from the paths (the same checks, the same error)
            result = None
        if result is not None:
            result.input_paths = tuple(str(p) for p in paths.values() if isinstance(p, (str, os.PathLike)))
            return result
    return register(paths["moving_image"], paths["fixed_image"], moving_label=paths["moving_label"],
                    fixed_label=paths["fixed_label"], **kwargs)  # fmt: skip


def _executor(name: str) -> ThreadPoolExecutor:
    """One worker thread that uses as many torch CPU threads as the calling thread."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=torch.set_num_threads,
                              initargs=(torch.get_num_threads(),))  # fmt: skip


class Prefetcher:
    """Reads the entries of a list one ahead, in a background thread (none when ``enabled`` is False).

    Args:
        read: ``read(entry) -> inputs`` (e.g. :func:`read_pair_inputs` with the spatial dims bound).
        entries: the list; an entry that ``wanted`` refuses (e.g. a finished pair kept by ``--resume``) is not read.
        wanted: which entries to read, by index (default: all).
        enabled: False: :meth:`take` returns None, nothing is read ahead.
    """

    def __init__(self, read: Callable[[Any], Any], entries: list, wanted: list[bool] | None = None,
                 enabled: bool = True) -> None:  # fmt: skip
        self._read, self._entries = read, entries
        self._wanted = list(wanted) if wanted is not None else [True] * len(entries)
        self._futures: dict[int, Future] = {}
        self._pool = _executor("monai-reg-read") if enabled else None

    def take(self, index: int) -> Future | None:
        """The future of entry ``index`` (submitted now if it was not yet), after starting to read the next wanted
        entry; None when reading ahead is off or the entry is not wanted."""
        if self._pool is None or not self._wanted[index]:
            return None
        future = self._futures.pop(index, None) or self._pool.submit(self._read, self._entries[index])
        following = next((j for j in range(index + 1, len(self._entries)) if self._wanted[j]), None)
        if following is not None and following not in self._futures:
            self._futures[following] = self._pool.submit(self._read, self._entries[following])
        return future

    def close(self) -> None:
        """Drop what was read ahead and not taken; wait for a read in progress to end."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._futures.clear()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BackgroundWriter:
    """Runs write jobs one at a time in a background thread, in the order submitted; with ``enabled`` False each job
    runs in :meth:`submit` itself (the sequential path). Errors are raised by the returned future's ``result()``."""

    def __init__(self, enabled: bool = True) -> None:
        self._pool = _executor("monai-reg-write") if enabled else None

    @property
    def background(self) -> bool:
        """Whether jobs run in the background thread."""
        return self._pool is not None

    def submit(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Start ``job(*args, **kwargs)``: its future (already done without a background thread)."""
        if self._pool is not None:
            return self._pool.submit(job, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(job(*args, **kwargs))
        except Exception as err:
            future.set_exception(err)
        return future

    def close(self) -> None:
        """Wait for the job in progress (a pair folder is written atomically) and drop those not started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
