"""Build and maintain an index directory from folders of images.

Stages: find image files under each folder; read each file once, hash it, and decode it only when it is new
or changed; encode decoded images in batches, with the index's model and, where the index keeps copy codes,
with its copy model; commit rows, codes and the FAISS index together (see
:mod:`nac_hash.index_data.store`). Files that cannot be read are listed in the report and skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nac_hash.atomic import write_json
from nac_hash.checkpoint import checkpoint_paths, copy_checkpoint, default_checkpoint, load_checkpoint
from nac_hash.images import InvalidImageError, decode_image, is_image_file, read_file
from nac_hash.index_data.backends import check_index_type
from nac_hash.index_data.catalog import Catalog, ItemNotFoundError, NewItem
from nac_hash.index_data.config import IndexOptions, dedup_distance, is_copy_model
from nac_hash.index_data.store import (
    REPORT_NAME,
    CheckpointMismatchError,
    IndexStore,
    IndexWriter,
    backend_of,
    copy_model_record,
    state_path,
    write_index,
)
from nac_hash.inference import encode_images
from nac_hash.models import HashingModel
from nac_hash.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass
class Report:
    """What a build or an add did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    total: int = 0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed, "
                f"{len(self.skipped)} skipped; {self.total} items in the index ({self.seconds:.1f} s)")


@dataclass(frozen=True)
class Encoders:
    """The model of an index's codes, and the model of its copy codes where it keeps them."""

    model: HashingModel
    copy_model: HashingModel | None = None

    @property
    def models(self) -> tuple[HashingModel, ...]:
        """The models that encode each image, in the order of its codes."""
        return (self.model,) if self.copy_model is None else (self.model, self.copy_model)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The input size of each model, in order."""
        return tuple(m.config.image_size for m in self.models)


@dataclass(frozen=True)
class _Read:
    """A file read once: its details, and its decoded pixels when it needs encoding (one array per model)."""

    item: NewItem | None = None
    images: tuple[np.ndarray, ...] = ()
    existing_id: int | None = None
    skip_reason: str | None = None


def find_files(paths: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(absolute root, file) for every image file under each folder, in sorted order; an image file given
    itself is its own folder's."""
    found = []
    for given in paths:
        path = Path(given).resolve()
        if path.is_file() and is_image_file(path):
            found.append((path.parent, path))
        elif path.is_dir():
            found += [(path, p) for p in sorted(path.rglob("*")) if p.is_file() and is_image_file(p)]
        else:
            raise FileNotFoundError(f"{given} does not exist or is neither an image folder nor an image file")
    return found


def printable(path: Path) -> str:
    """``path`` as text that can be printed and stored: bytes that are not UTF-8 written as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _read(root: Path, file: Path, known: dict[str, tuple[int, str]], sizes: tuple[int, ...],
          options: IndexOptions) -> _Read:
    relative = str(file.relative_to(root))
    if printable(file.relative_to(root)) != relative:
        return _Read(skip_reason="the file name is not valid UTF-8 (the catalog stores UTF-8 names); rename it")
    try:
        mtime_ns = file.stat().st_mtime_ns
        data = read_file(file, options.max_bytes)
    except OSError as e:
        return _Read(skip_reason=f"cannot read: {e}")
    except InvalidImageError as e:
        return _Read(skip_reason=str(e))
    digest = hashlib.sha256(data).hexdigest()
    existing_id, known_digest = known.get(relative, (None, None))
    if known_digest == digest:
        return _Read(existing_id=existing_id)
    try:
        decoded = {size: decode_image(data, size, options.max_pixels, options.max_bytes) for size in set(sizes)}
    except InvalidImageError as e:
        return _Read(skip_reason=str(e))
    label = file.parent.name if file.parent != root else None
    item = NewItem(str(root), relative, len(data), mtime_ns, digest, label, b"")
    return _Read(item=item, images=tuple(decoded[size] for size in sizes), existing_id=existing_id)


def _chunks(files: list[tuple[Path, Path]], size: int) -> Iterator[list[tuple[Path, Path]]]:
    for start in range(0, len(files), size):
        yield files[start : start + size]


def encode_files(catalog: Catalog, encoders: Encoders, files: list[tuple[Path, Path]], options: IndexOptions,
                 report: Report) -> tuple[list[NewItem], list[tuple[int, NewItem]]]:
    """Read, hash, decode and encode the files the catalog does not hold yet.

    Returns:
        New items, and (id, item) for files whose content changed since they were indexed.
    """
    known = {root: catalog.known_files(root) for root in {str(r) for r, _ in files}}
    sizes = encoders.sizes
    new, changed = [], []
    bar = progress_bar(total=len(files), desc="index", unit="img", disable=not options.progress)
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        for chunk in _chunks(files, options.batch_size):
            reads = list(pool.map(lambda rf: _read(rf[0], rf[1], known[str(rf[0])], sizes, options), chunk))
            to_encode = [r for r in reads if r.item is not None]
            for r, codes in zip(to_encode, _encode(encoders, to_encode), strict=True):
                item = dataclasses.replace(r.item, code=codes[0], copy_code=codes[1] if len(codes) > 1 else None)
                if r.existing_id is None:
                    new.append(item)
                else:
                    changed.append((r.existing_id, item))
            for (root, file), r in zip(chunk, reads, strict=True):
                if r.skip_reason is not None:
                    logger.warning("skipping %s: %s", printable(file), r.skip_reason)
                    report.skipped.append((printable(file.relative_to(root)), r.skip_reason))
                elif r.item is None:
                    report.unchanged += 1
            bar.update(len(chunk))
    bar.close()
    report.added, report.updated = len(new), len(changed)
    return new, changed


def _encode(encoders: Encoders, reads: list[_Read]) -> list[tuple[bytes, ...]]:
    """Each read's packed codes as bytes, one per model of ``encoders``."""
    if not reads:
        return []
    per_model = [encode_images(m, np.stack([r.images[i] for r in reads])) for i, m in enumerate(encoders.models)]
    return [tuple(codes[row].tobytes() for codes in per_model) for row in range(len(reads))]


def _finish(report: Report, index_dir: Path, started: float) -> Report:
    report.seconds = time.perf_counter() - started
    write_json(index_dir / REPORT_NAME, report.to_dict())
    logger.debug("%s", report.summary())
    return report


def build(folders: Sequence[str | Path], out: str | Path, options: IndexOptions | None = None) -> Report:
    """Index every image under ``folders`` (this shard's share of them, with ``options.shard``) into a new index
    at ``out``, replacing any index there at the end."""
    options = options or IndexOptions()
    started = time.perf_counter()
    checkpoint = checkpoint_paths(options.checkpoint)[0] if options.checkpoint else default_checkpoint()
    model, sidecar = load_checkpoint(checkpoint, options.device)
    check_index_type(options.index_type, model.config.code_bits)  # reject a bad index type before any work
    files = shard_files(find_files(folders), options.shard)
    report = Report()
    meta = {"bits": model.config.code_bits, "checkpoint_sha256": sidecar["weights_sha256"],
            "checkpoint_path": str(checkpoint.resolve()), "model": model.config.to_dict(),
            "index_type": options.index_type, "dedup_distance": dedup_distance(sidecar)}
    encoders = Encoders(model)
    if options.copy_codes and not is_copy_model(sidecar):
        copy_path = copy_checkpoint()
        copy_model, copy_sidecar = load_checkpoint(copy_path, options.device)
        encoders = Encoders(model, copy_model)
        meta["copy_model"] = copy_model_record(copy_model, copy_sidecar, copy_path)
    report.total = write_index(Path(out), meta, lambda catalog: encode_files(
        catalog, encoders, files, options, report)[0])
    return _finish(report, Path(out), started)


def shard_files(files: list[tuple[Path, Path]], shard: str | None) -> list[tuple[Path, Path]]:
    """The files of shard ``"i/n"``: those whose path relative to their folder hashes to i modulo n.

    Hashing the relative path lets machines that mount the folders at different places agree on the split.
    """
    if shard is None:
        return files
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {shard!r}")
    index, count = int(match.group(1)), int(match.group(2))
    return [(root, file) for root, file in files
            if int(hashlib.sha1(str(file.relative_to(root)).encode()).hexdigest(), 16) % count == index]


def merge(shards: Sequence[str | Path], out: str | Path, index_type: str | None = None) -> Report:
    """Merge indexes built from disjoint shards (same checkpoint) into a new index at ``out``; codes are copied,
    not re-encoded, and items get new ids.

    Raises:
        CheckpointMismatchError: the shards were encoded by different checkpoints.
        ValueError: two shards hold the same file.
    """
    started = time.perf_counter()
    stores = [IndexStore(shard) for shard in shards]
    try:
        first = stores[0].meta
        for store in stores[1:]:
            store.check_checkpoint(first["checkpoint_sha256"], first["checkpoint_path"])
            if store.copies.checkpoint_sha256 != stores[0].copies.checkpoint_sha256:
                raise CheckpointMismatchError(f"{store.dir} keeps other copy codes than {stores[0].dir}: build the "
                                              "shards with the same --copy-codes setting and nac-hash version")
        items = [item for store in stores for item in store.catalog.records()]
        seen: set[tuple[str, str]] = set()
        for item in items:
            if (item.root, item.path) in seen:
                raise ValueError(f"shards overlap: {Path(item.root) / item.path} is in more than one")
            seen.add((item.root, item.path))
        meta = {k: first[k] for k in ("bits", "checkpoint_sha256", "checkpoint_path", "model")}
        meta["index_type"] = index_type or first["index_type"]
        meta["dedup_distance"] = dedup_distance(first)
        if "copy_model" in first:
            meta["copy_model"] = first["copy_model"]
        check_index_type(meta["index_type"], meta["bits"])
        total = write_index(Path(out), meta, lambda catalog: items)
    finally:
        for store in stores:
            store.close()
    return _finish(Report(added=total, total=total), Path(out), started)


def add(folders: Sequence[str | Path], index_dir: str | Path, options: IndexOptions | None = None) -> Report:
    """Add the new and changed images under ``folders`` to an existing index; unchanged files are not re-encoded."""
    options = options or IndexOptions()
    started = time.perf_counter()
    store = IndexStore(index_dir)
    try:
        model, model_sha256 = store.load_model(options.checkpoint, options.device)
        encoders = Encoders(model, store.load_copy_model(options.device))
        files = find_files(folders)
        report = Report()
        with store.writer(model_sha256) as writer:
            new, changed = encode_files(writer.catalog, encoders, files, options, report)
            writer.add(new)
            writer.update(changed)
        report.total = writer.index.ntotal
        return _finish(report, store.dir, started)
    finally:
        store.close()


def stage_removal(writer: IndexWriter, ids: Sequence[int] = (), paths: Sequence[str | Path] = ()) -> None:
    """Stage the removal of items by id or by file path.

    Raises:
        ItemNotFoundError: an id or path is not in the index; nothing is staged then.
    """
    by_path = writer.catalog.ids_for_files([Path(p).resolve() for p in paths])
    by_id = writer.catalog.items(ids)
    missing = [str(p) for p in paths if Path(p).resolve() not in by_path]
    missing += [str(i) for i in ids if int(i) not in by_id]
    if missing:
        raise ItemNotFoundError(f"not in the index, nothing removed: {', '.join(missing)}")
    writer.remove(set(by_id) | set(by_path.values()))


def remove(index_dir: str | Path, ids: Sequence[int] = (), paths: Sequence[str | Path] = ()) -> Report:
    """Remove items from the index at ``index_dir`` by id or by file path (see :func:`stage_removal`)."""
    started = time.perf_counter()
    store = IndexStore(index_dir)
    try:
        with store.writer() as writer:
            stage_removal(writer, ids, paths)
        return _finish(Report(removed=writer.removed, total=writer.index.ntotal), store.dir, started)
    finally:
        store.close()


def rebuild(index_dir: str | Path, index_type: str | None = None) -> Report:
    """Rebuild the FAISS index from the stored codes (no re-encoding), as ``index_type`` if given."""
    started = time.perf_counter()
    store = IndexStore(index_dir)
    try:
        with store.writer() as writer:
            index_type = index_type or store.meta["index_type"]
            writer.reindex(index_type)
        report = Report(unchanged=writer.index.ntotal, total=writer.index.ntotal,
                        seconds=time.perf_counter() - started)
        logger.info("rebuilt %s as a %s index (%.1f s)", store.dir, index_type, report.seconds)
        return report
    finally:
        store.close()


def info(index_dir: str | Path) -> dict:
    """What an index holds: item count, code length, index type, checkpoints, roots and file sizes."""
    store = IndexStore(index_dir)
    try:
        meta = store.meta
        state_file = state_path(store.dir, meta)
        return {
            "index": str(store.dir.resolve()), "format_version": meta["format_version"], "items": store.catalog.count(),
            "bits": meta["bits"], "index_type": meta["index_type"], "checkpoint": meta["checkpoint_path"],
            "checkpoint_sha256": meta["checkpoint_sha256"], "roots": store.catalog.roots(),
            "created": meta["created"], "state": meta["state"],
            "catalog_bytes": store.catalog.path.stat().st_size,
            "backend": backend_of(meta), "state_file": state_file.name,
            "copy_codes": store.copies.stored, "copy_checkpoint": store.copies.checkpoint_path,
            "dedup_distance": store.dedup_distance,
            "state_file_bytes": state_file.stat().st_size if state_file.is_file() else None,
        }
    finally:
        store.close()
