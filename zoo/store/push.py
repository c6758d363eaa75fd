"""``zoo push``: the files of a Hub repository for one checkpoint, and their upload.

The repository gets ``model.safetensors`` (byte for byte the checkpoint's), ``model.json`` (its JSON plus
the metrics it reached and where it was pushed from) and ``README.md``, a model card generated from the
JSON. The checkpoint is loaded first with the strict rules, so nothing unloadable is ever published.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.plugins.registry import get_registry
from zoo.runtime.provenance import environment
from zoo.store import hub
from zoo.store.checkpoint import load_checkpoint
from zoo.store.files import atomic_write_bytes, atomic_write_json
from zoo.store.locate import bench_checkpoints, locate
from zoo.store.runs import parse_model_key

TASK_TAGS = {"sr": ["super-resolution", "image-to-image"], "colorizer": ["image-colorization", "image-to-image"]}
TASK_WORDS = {"sr": "super-resolution model", "colorizer": "colorizer"}


def prepare(source, repo_id: str, out_dir: Path, *, model: str | None = None, scale: int | None = None,
            registry=None) -> dict[str, Any]:
    """Write the repository's three files for ``source`` (a checkpoint, a run folder) into ``out_dir``."""
    registry = registry or get_registry()
    path = locate(source, model=model, scale=scale)
    loaded = load_checkpoint(path, registry)
    meta = dict(loaded.meta)
    if model is not None and meta["model"] != model:
        raise ZooError(f"{source} holds a '{meta['model']}' model, not '{model}'")
    run_dir = Path(source) if isinstance(source, (str, Path)) and (Path(source) / "run.json").is_file() else None
    reached = _bench_metrics(run_dir, path, meta["model"]) if run_dir else []
    meta["metrics"] = reached or list(meta.get("metrics", []))
    meta["pushed"] = {"repo": repo_id, "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "from": str(source), "environment": environment()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out_dir / "model.safetensors")
    atomic_write_json(out_dir / "model.json", meta)
    atomic_write_bytes(out_dir / "README.md", model_card(meta, repo_id, loaded.entry).encode())
    return meta


def push(source, repo_id: str, *, model: str | None = None, scale: int | None = None, private: bool = False,
         message: str | None = None, registry=None) -> str:
    """Prepare the files in a temporary folder and commit them to ``repo_id``; the commit's URL."""
    repo_id = hub.check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        meta = prepare(source, repo_id, Path(tmp), model=model, scale=scale, registry=registry)
        return hub.upload(Path(tmp), repo_id, private=private,
                          message=message or f"zoo push: {meta['model']} ({len(meta['metrics'])} metric values)")


def _bench_metrics(run_dir: Path, checkpoint: Path, model: str) -> list[dict[str, Any]]:
    """What a bench run measured for this checkpoint on its own (not in pipelines), one dict per number."""
    keys = [k for k, v in bench_checkpoints(run_dir).items() if Path(v).resolve() == Path(checkpoint).resolve()]
    scales = {parse_model_key(k)[1] for k in keys}
    results = run_dir / "results.jsonl"
    if not results.is_file():
        return []
    out = []
    for line in results.read_text().splitlines():
        row = json.loads(line) if line.strip() else None
        if not row or row.get("failed") or row.get("value") is None or row.get("scale") not in scales:
            continue
        if (row["stage"], row.get(row["stage"])) not in (("sr", model), ("colorizer", model)):
            continue
        out.append({k: row.get(k) for k in ("metric", "value", "std", "n_images", "unit", "higher_is_better",
                                            "ranked", "convention", "test_set", "scale", "weights")})
    return out


def model_card(meta: dict[str, Any], repo_id: str, entry) -> str:
    """README.md: the Hub's metadata header, how to use the model, and everything its JSON records."""
    task, name = entry.task, meta["model"]
    config = meta.get("config", {})
    env = meta.get("environment") or {}
    scale = f" (x{config['scale']})" if "scale" in config else ""
    lines = ["---", "library_name: zoo", "tags:", "- zoo", *[f"- {t}" for t in TASK_TAGS[task]],
             "pipeline_tag: image-to-image", "---", "",
             f"# {repo_id}", "",
             f"`{name}`, a {TASK_WORDS[task]}{scale} for zoo, the colorization and super-resolution model zoo. "
             f"{entry.summary}" + (f" ({entry.reference})" if entry.reference else "") + ".", "",
             "## Use it", "", "```python", "import zoo", "",
             f'model = zoo.create_model("{name}", checkpoint="hf-hub:{repo_id}")   # a torch.nn.Module', "```", "",
             "```", f"zoo run --{'sr' if task == 'sr' else 'colorizer'} hf-hub:{repo_id} photos/ -o out/", "```", "",
             "zoo downloads the two files once into the Hugging Face cache, checks the weights' sha256 against "
             "model.json and loads them only into the registered model they were trained for "
             f"(plugin `{meta.get('distribution', entry.distribution)}`).", "",
             "## Config", "", "| field | value |", "| --- | --- |",
             *[f"| `{k}` | `{v}` |" for k, v in sorted(config.items())], ""]
    lines += ["## Training", "", "| | |", "| --- | --- |"]
    for label, key in (("steps", "steps"), ("seed", "seed"), ("preset", "preset"), ("precision", "precision"),
                       ("training data fingerprint", "data"), ("data set", "dataset"), ("recipe", "recipe"),
                       ("device", "device"), ("parameters", "parameters"), ("training seconds", "train_seconds")):
        if meta.get(key) is not None:
            value = f"{meta[key]:.1f}" if key == "train_seconds" else meta[key]
            lines.append(f"| {label} | `{value}` |")
    for note in meta.get("notes", []):
        lines.append(f"| note | {note} |")
    lines += ["", "## Metrics", ""]
    if meta["metrics"]:
        lines += ["| test set | scale | metric | value | convention |", "| --- | --- | --- | --- | --- |"]
        for m in meta["metrics"]:
            arrow = "" if not m.get("ranked", True) else (" ↑" if m.get("higher_is_better") else " ↓")
            unit = f" {m['unit']}" if m.get("unit") else ""
            lines.append(f"| {m.get('test_set')} | x{m.get('scale')} | {m['metric']}{arrow} | "
                         f"{m['value']:.4f}{unit} | {m.get('convention') or ''} |")
    else:
        lines.append("Not evaluated in the run it was pushed from: `zoo eval --"
                     f"{'sr' if task == 'sr' else 'colorizer'} hf-hub:{repo_id} --data DIR` scores it.")
    versions = {**meta.get("versions", {}), **{k: v for k, v in env.get("packages", {}).items() if v}}
    lines += ["", "## Reproducibility", "", "| | |", "| --- | --- |"]
    if env.get("command"):
        lines.append(f"| command | `{env['command']}` |")
    if env.get("git"):
        changed = " (with local changes)" if env["git"]["dirty"] else ""
        lines.append(f"| zoo commit | `{env['git']['commit']}`{changed} |")
    for k, v in versions.items():
        lines.append(f"| {k} | `{v}` |")
    if env.get("cuda"):
        lines.append(f"| GPU | {env['cuda']['gpu']} (CUDA {env['cuda']['cuda']}, cuDNN {env['cuda']['cudnn']}) |")
    lines += [f"| model.safetensors sha256 | `{meta.get('sha256')}` |", ""]
    return "\n".join(lines)
