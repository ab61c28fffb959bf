"""Where a model's files come from: bundled with the package, the huggingface_hub cache, or the Hub.

Resolution order for a registered model: the bundled directory inside the installed package (so
the zoo works on an offline compute node), then the huggingface_hub cache, then
`huggingface_hub.hf_hub_download` (which honours ``HF_HUB_OFFLINE``, ``HF_HOME`` and
``HF_ENDPOINT``). Caching, offline mode and revisions are huggingface_hub's; this module only
chooses the order, verifies sha256 and turns "not available" into one actionable error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .exceptions import IntegrityError, WeightsNotAvailableError

__all__ = ["MODEL_FILES", "WEIGHTS_NAME", "CONFIG_NAME", "CARD_NAME", "PICKLE_SUFFIXES",
           "resolve_files", "resolve_hub_id", "read_config_json", "is_transformers_config",
           "lfs_sha256", "download", "sha256_file", "verify_sha256", "model_file",
           "refuse_pickles", "safetensors_header", "parse_hub_id", "hub_unreachable"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
HUB_PREFIX = "hf-hub:"
#: Suffixes of pickled checkpoints (torch.save, joblib): loading one can execute arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | Path, expected: str, what: str) -> None:
    """Raise `IntegrityError` unless ``sha256(path) == expected``."""
    if not expected:
        raise IntegrityError(f"{what}: no sha256 is recorded for {path}; refusing unverified weights")
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{what}: sha256 mismatch for {path}\n  expected {expected}\n  found    {actual}\n"
            "The file is corrupt, truncated or not the published weights. Delete it and run "
            f"`astrozoo download {what}` again.")


def model_file(directory: str | Path, name: str, what: str) -> Path:
    """``directory / name``, refused (`IntegrityError`) unless it is a regular file inside
    `directory`: a link may point within it, or, in a huggingface_hub cache snapshot, into the
    repository's ``blobs`` (where the cache keeps the files its snapshots link to)."""
    d = Path(directory).resolve()
    path = Path(directory) / name
    if not path.exists() and not path.is_symlink():
        raise IntegrityError(f"{what}: no {name} in {directory}")
    target = path.resolve()
    roots = [d]
    if d.parent.name == "snapshots" and d.parent.parent.name.startswith("models--"):
        roots.append(d.parent.parent / "blobs")
    if not any(target.is_relative_to(r) for r in roots):
        raise IntegrityError(f"{what}: {path} links to {target}, outside the model directory; "
                             "astrozoo reads only files inside it")
    if not target.is_file():
        raise IntegrityError(f"{what}: {path} is not a regular file")
    return path


def refuse_pickles(directory: str | Path, what: str, *, pinned_upstream: bool = False) -> None:
    """Raise `IntegrityError` if `directory` holds a pickled checkpoint (`PICKLE_SUFFIXES`).

    astrozoo never unpickles weights and never writes a pickle, so a model directory holding
    one is refused, even beside ``model.safetensors``. The one exception, `pinned_upstream`:
    an upstream transformers repository (``facebook/dinov2-*`` publish ``pytorch_model.bin``
    too) whose ``model.safetensors`` is sha256-pinned; there the pickle is never opened.
    """
    pickles = sorted(p.name for p in Path(directory).iterdir()
                     if p.suffix.lower() in PICKLE_SUFFIXES)
    if not pickles or pinned_upstream:
        return
    fix = ("Remove them: the weights are read from model.safetensors only."
           if (Path(directory) / WEIGHTS_NAME).exists() else
           "Convert them with safetensors.torch.save_file and save them as model.safetensors.")
    raise IntegrityError(f"{what}: {directory} holds pickled checkpoint(s) {pickles}. astrozoo "
                         "never unpickles weights (loading a pickle can execute arbitrary code) "
                         f"and refuses a model directory holding one. {fix}")


#: safetensors' own limit on the JSON header (safetensors/src/tensor.rs, MAX_HEADER_SIZE).
_MAX_HEADER = 100_000_000
_AGAIN = "An interrupted download or copy? Delete it and download or copy it again."


def safetensors_header(path: str | Path, what: str) -> dict[str, dict]:
    """The tensor table of a safetensors file (name -> ``dtype``, ``shape``, ``data_offsets``),
    after checking that the file holds all the bytes its header describes.

    Raises `IntegrityError` naming the file for a truncated file (an interrupted download or
    copy) and for one that is not safetensors. Read by hand from the documented layout (8-byte
    little-endian header length, JSON header, tensor bytes) because safetensors' own error for
    a short file (``MetadataIncompleteBuffer``) says neither that it is truncated nor by how much.
    """
    import json

    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(9)
        n = int.from_bytes(prefix[:8], "little")
        if size < 9 or (n <= _MAX_HEADER and prefix[8:9] == b"{" and 8 + n > size):
            raise IntegrityError(f"{what}: {path} is truncated: {size} bytes, shorter than "
                                 f"its own header. {_AGAIN}")
        if n > _MAX_HEADER or prefix[8:9] != b"{":
            raise IntegrityError(f"{what}: {path} is not a valid safetensors file (no "
                                 "safetensors header)")
        f.seek(8)
        try:
            header = json.loads(f.read(n))
            tensors = {k: v for k, v in header.items() if k != "__metadata__"}
            end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise IntegrityError(f"{what}: {path} is not a valid safetensors file (its header "
                                 f"is not a tensor table: {e})") from e
    if 8 + n + end > size:
        raise IntegrityError(f"{what}: {path} is truncated: {size} bytes of the {8 + n + end} "
                             f"its header describes. {_AGAIN}")
    return tensors


def parse_hub_id(ref: str) -> tuple[str, str | None]:
    """``"hf-hub:org/repo@rev"`` -> ``("org/repo", "rev")``; the revision is optional."""
    ref = ref[len(HUB_PREFIX):] if ref.startswith(HUB_PREFIX) else ref
    repo, _, rev = ref.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"not a Hub repository id: {ref!r} (expected 'org/name[@revision]')")
    return repo, rev or None


def _hub_fetch(repo_id: str, revision: str | None, filenames, *, what: str, local_only: bool) -> Path:
    import huggingface_hub as hf
    from huggingface_hub.errors import LocalEntryNotFoundError

    path = None
    for fname in filenames:
        try:
            path = Path(hf.hf_hub_download(repo_id, fname, revision=revision,
                                           local_files_only=local_only))
        except LocalEntryNotFoundError as e:
            if local_only:
                raise
            raise WeightsNotAvailableError(
                f"{what}: {fname} from Hub repository {repo_id!r} (revision {revision or 'main'}) "
                "is not in the local huggingface_hub cache and the Hub cannot be reached "
                f"(HF_HUB_OFFLINE={hf.constants.HF_HUB_OFFLINE}).\n"
                f"Pre-download it on a machine with internet access: `astrozoo download {what}` "
                "(set HF_HOME to a shared directory so compute nodes see the same cache).") from e
    return path.parent


def hub_unreachable() -> str | None:
    """Why the Hub cannot be reached now (offline mode, no connection), or None if it can.

    One request with a short timeout. huggingface_hub retries a failed connection five times
    with backoff (about 23 s per file), which on an offline compute node only delays the one
    useful message; so the caller asks once first.
    """
    import huggingface_hub as hf

    if hf.constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub.utils import get_session

    try:
        get_session().head(hf.constants.ENDPOINT, timeout=5, follow_redirects=False)
    except Exception as e:  # httpx's connection, DNS and timeout errors
        return f"{hf.constants.ENDPOINT} cannot be reached ({type(e).__name__}: {e})"
    return None


def _fetch_all(repo_id: str, revision: str | None, filenames, what: str) -> Path:
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return _hub_fetch(repo_id, revision, filenames, what=what, local_only=True)
    except LocalEntryNotFoundError:
        why = hub_unreachable()
        if why is not None:
            raise WeightsNotAvailableError(
                f"{what}: not in the local huggingface_hub cache, and the Hub is not available "
                f"({why}).\nPre-download it on a machine with internet access: "
                f"`astrozoo download {what}` (set HF_HOME to a shared directory so compute "
                "nodes see the same cache).") from None
        return _hub_fetch(repo_id, revision, filenames, what=what, local_only=False)


def resolve_files(entry, files=None) -> Path:
    """Local directory holding `files` of a registered model (bundled, else cached or fetched).

    Nothing is verified here: `ZooModel.from_pretrained` checks the weights against
    ``entry.sha256`` when it reads them, and `download` when it fetches them.

    Parameters
    ----------
    entry : `~astrozoo.registry.ModelEntry`
        The registered model.
    files : sequence of str, optional
        File names needed (e.g. only ``config.json`` for listing); default all the files of
        the entry's layout (`WeightsSource.files`).
    """
    src = entry.weights
    files = src.files if files is None else files
    local = src.bundled_dir
    if local is None or not all((local / f).is_file() for f in files):
        if not src.hub_repo:
            raise WeightsNotAvailableError(
                f"{entry.name}: bundled files are missing from {local} and no Hub repository is "
                "registered; reinstall astrozoo.")
        local = _fetch_all(src.hub_repo, src.revision, files, entry.name)
    return local


def read_config_json(path: str | Path) -> dict:
    """A ``config.json`` (astrozoo's or transformers') as a dict; `ConfigError` naming the file
    if it is larger than `~astrozoo.config.MAX_CONFIG_BYTES`, not JSON or not an object."""
    import json

    from .config import MAX_CONFIG_BYTES
    from .exceptions import ConfigError

    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size} bytes is not a config.json (at most "
                              f"{MAX_CONFIG_BYTES})")
        d = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable config.json ({e})") from e
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config must be a JSON object, not {type(d).__name__}")
    return d


def is_transformers_config(path: str | Path) -> bool:
    """Whether a ``config.json`` is transformers' (``model_type``) rather than astrozoo's."""
    d = read_config_json(path)
    return "model_type" in d and "input_spec" not in d


def resolve_hub_id(ref: str) -> Path:
    """Local snapshot directory of ``hf-hub:org/repo[@rev]`` (cache first, then the Hub): the
    astrozoo layout's files, or a transformers repository's config and weights."""
    repo, rev = parse_hub_id(ref)
    what = f"{HUB_PREFIX}{repo}" + (f"@{rev}" if rev else "")
    d = _fetch_all(repo, rev, (CONFIG_NAME,), what)
    files = (CONFIG_NAME, WEIGHTS_NAME) if is_transformers_config(d / CONFIG_NAME) else MODEL_FILES
    return _fetch_all(repo, rev, files, what)


def lfs_sha256(path: str | Path) -> str | None:
    """The sha256 the Hub recorded for a cached file: huggingface_hub stores a Git LFS file as
    a blob named by its ETag, which for LFS files is the content's sha256 (None for a file not
    in a Hub cache)."""
    import re

    p = Path(path)
    if not p.is_symlink():
        return None
    name = p.resolve().name
    return name if re.fullmatch(r"[0-9a-f]{64}", name) else None


def download(target) -> Path:
    """Fetch a model's files into the local cache (or confirm they are bundled) and verify them.

    `target` is a registry entry (`~astrozoo.registry.ModelEntry`) or ``"hf-hub:org/repo[@rev]"``;
    `astrozoo.download` accepts model and task names too.
    """
    if isinstance(target, str):
        from .config import ModelConfig

        directory, what = resolve_hub_id(target), target
        if is_transformers_config(directory / CONFIG_NAME):  # the Hub's own record of the file
            expected = lfs_sha256(directory / WEIGHTS_NAME)
        else:
            expected = ModelConfig.from_json(directory / CONFIG_NAME).weights_sha256
    else:
        directory, expected, what = resolve_files(target), target.sha256, target.name
    safetensors_header(directory / WEIGHTS_NAME, what)  # truncated: said so, before the hash
    verify_sha256(directory / WEIGHTS_NAME, expected, what)
    return directory
