"""Append rows to chunked HDF5 datasets so that a kill at any moment leaves a consistent file.

Why a protocol is needed: ``H5Fflush`` writes dirty metadata in address order, so a
dataset's object header (its extent, allocated when the dataset was created) reaches the
disk before the chunk-index node that a new chunk adds. A process killed between the two
writes leaves an extent that covers a chunk the index does not know: readers see fill
values (zeros) there. Replaying every prefix of the writes HDF5 issues during a flush
showed this window in every flush that allocated a chunk.

The protocol keeps every extent change and every chunk change in different flushes:

1. New rows reach the file as whole chunks through ``H5Dwrite_chunk`` (h5py's
   ``write_direct_chunk``) *before* the extent covers them. HDF5 accepts a direct write at
   an offset up to the current extent, so a dataset grows in rounds: extend to the end of
   the chunks already durable, write the next chunk, flush. A partly filled last chunk is
   rewritten whole (old rows unchanged, so any interleaving reads the same values).
2. The commit dataset (``/coordinates``, whose length mdtraj takes as the frame count and
   whose rows it slices every other array with) is extended only up to what every other
   dataset holds durably, one flush behind them; a kill can leave other arrays longer than
   ``/coordinates``, never shorter, and their extra rows are invisible to mdtraj.

Raw chunk data is written when ``write_direct_chunk`` is called, before the flush that
indexes it. A chunk a reader can see is never moved: an uncompressed chunk keeps its size
when a partly filled one is rewritten in place (its old rows byte for byte, so even a
write the kill cuts short changes nothing visible); a compressed chunk would change size,
move, and be indexed before the superblock's end-of-file address covers it, so compressed
arrays hold one row per chunk and are never rewritten. The writer applies the filters
itself: shuffle and deflate (gzip). A kill can also cut a multi-page ``write()`` short
(the kernel checks for fatal signals between pages); the writer aligns every allocation
to a 4 KiB page (:func:`~trajcast_engine.trajectory.writer.create_file`) so that no
metadata object smaller than a page straddles two.

Reference: HDF5 user guide, "Chunking in HDF5", ``H5Dwrite_chunk`` and
``H5Pset_alignment``. Checked by the replay test ``tests/test_trajectory_commit.py`` and
``benchmarks/trajectory_crash.py``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np

_DEFLATE, _SHUFFLE = 1, 2


def _shuffle(raw: bytes, itemsize: int) -> bytes:
    """HDF5's shuffle filter: byte k of every element, then byte k + 1, ..."""
    return np.ascontiguousarray(np.frombuffer(raw, np.uint8).reshape(-1, itemsize).T).tobytes()


def _encoder(ds: h5py.Dataset) -> Callable[[np.ndarray], bytes]:
    """A function turning one chunk's array into the bytes HDF5 stores for it (filtered
    chunks are encoded here: shuffle, deflate)."""
    plist = ds.id.get_create_plist()
    steps: list[Callable[[bytes], bytes]] = []
    itemsize = ds.dtype.itemsize
    for index in range(plist.get_nfilters()):
        code, _, values, name = plist.get_filter(index)
        if code == _SHUFFLE:
            steps.append(lambda raw: _shuffle(raw, itemsize))
        elif code == _DEFLATE:
            level = int(values[0]) if len(values) else 4
            steps.append(lambda raw, level=level: zlib.compress(raw, level))
        else:
            raise ValueError(
                f"{ds.name} uses the HDF5 filter {name.decode(errors='replace')!r}, which "
                "this writer cannot apply; only shuffle and gzip (deflate) are supported"
            )

    def encode(chunk: np.ndarray) -> bytes:
        raw = np.ascontiguousarray(chunk, dtype=ds.dtype).tobytes()
        for step in steps:
            raw = step(raw)
        return raw

    return encode


@dataclass
class _Growth:
    """One dataset's rows to append and how far the protocol has taken them."""

    ds: h5py.Dataset
    values: np.ndarray
    start: int
    rows: int = field(init=False)  # chunk rows
    extent: int = field(init=False)  # the extent set so far
    durable: int = field(init=False)  # rows below this lie in chunks indexed on disk
    pending: int = field(init=False)  # ... once the next flush completes

    def __post_init__(self) -> None:
        self.rows = int(self.ds.chunks[0])
        self.extent = self.start
        self.durable = self.pending = self.start - self.start % self.rows
        self.encode = _encoder(self.ds)

    @property
    def stop(self) -> int:
        return self.start + len(self.values)

    def advance(self, limit: int) -> bool:
        """One round: extend up to ``limit`` over durable chunks, write the next chunk."""
        changed = False
        extent = min(self.durable, limit, self.stop)
        if extent > self.extent:
            self.ds.resize(extent, axis=0)
            self.extent = extent
            changed = True
        first = self.pending
        if first < self.stop and first <= self.extent and first == self.durable:
            last = min(first + self.rows, self.stop)
            old = max(0, self.start - first)  # rows already in the file
            if old and self.ds.compression is not None:
                raise ValueError(
                    f"{self.ds.name}: a compressed chunk cannot be rewritten in place; "
                    "compressed arrays need one row per chunk"
                )
            chunk = np.zeros((self.rows, *self.ds.shape[1:]), self.ds.dtype)
            if old:
                chunk[:old] = self.ds[first : self.start]
            chunk[old : last - first] = self.values[max(0, first - self.start) : last - self.start]
            data = self.encode(chunk)
            offset = (first,) + (0,) * (self.ds.ndim - 1)
            self.ds.id.write_direct_chunk(offset, data)
            self.pending = first + self.rows
            changed = True
        return changed


def create_index(ds: h5py.Dataset) -> None:
    """Make HDF5 allocate the chunk index of an empty dataset (direct chunk writes need
    one, and only an ordinary write creates it): write one row, then cut it. Used on a
    file no reader sees yet: the cut frees a chunk, which a later allocation may reuse."""
    if ds.shape[0] == 0 and ds.id.get_num_chunks() == 0:
        ds.resize(1, axis=0)
        ds[0] = np.zeros(ds.shape[1:], ds.dtype)
        ds.resize(0, axis=0)


def append_rows(
    file: h5py.File,
    frames: Sequence[tuple[h5py.Dataset, np.ndarray]],
    commit: h5py.Dataset,
    records: Sequence[tuple[h5py.Dataset, np.ndarray]] = (),
) -> None:
    """Append rows to chunked datasets and flush, so that a kill never exposes a torn row.

    ``frames``: ``(dataset, values)`` pairs of per-frame arrays, whose row k is frame k,
    ``commit`` among them; ``records``: other arrays appended in the same flush (their rows
    are not frames). ``commit`` grows last: to at most the rows every other per-frame array
    holds on disk, and only once every record is on disk. Datasets must be chunked along
    their first axis; new rows start at each dataset's current extent.
    """
    growths = [_Growth(ds, np.asarray(values), int(ds.shape[0])) for ds, values in frames]
    extras = [_Growth(ds, np.asarray(values), int(ds.shape[0])) for ds, values in records]
    heads = [g for g in growths if g.ds == commit]
    if len(heads) != 1:
        raise ValueError("the commit dataset must be one of the per-frame datasets")
    head, target = heads[0], heads[0].stop
    others = [g for g in growths if g is not head]
    if any(g.stop != target for g in others):
        raise ValueError("every per-frame dataset must end at the same row")
    while True:
        # the other arrays' extents were flushed in the previous round: they bound the commit
        on_disk = min((g.extent for g in others), default=target)
        if any(g.extent < g.stop for g in extras):
            on_disk = head.start
        changed = [g.advance(g.stop) for g in others + extras] + [head.advance(on_disk)]
        if not any(changed):
            break
        file.flush()
        for g in growths + extras:
            g.durable = g.pending
    if head.extent < target:  # only a dataset longer than its rows could cause this
        raise RuntimeError(f"{commit.name} could not be extended to {target} rows")
