"""Fetch the Debian packages whose photos train and test the bundled model; check them or rebuild the manifest.

    python scripts/photos.py --fetch            # apt-get download + unpack under <data>/photos (no root), then check
    python scripts/photos.py                    # check: every photo of hific_lit/data/photos.tsv present, same SHA-256
    python scripts/photos.py --write-manifest   # rescan the unpacked packages by the rule of hific_lit.data.photo_set
    python scripts/photos.py --green            # per package: how much of its photos is green (foliage, grass)

`make photos` runs the first. The packages are fetched at the manifest's versions (``apt-get download
PACKAGE=VERSION``); where apt knows another version only (another release), that one is fetched and the check
says how many files differ. Needs apt's package lists (`sudo apt-get update` once) and dpkg-deb.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from hific_lit.config import default_data_dir
from hific_lit.data.photo_set import (
    ROLES,
    SOURCES,
    green_share,
    manifest_path,
    package_root,
    packages,
    photo_entries,
    photo_paths,
    read_manifest,
    scan,
    unpack_archives,
    write_manifest,
)
from hific_lit.errors import NOTHING_RAN, DatasetError

HEADER = """Photos of Debian packages for the bundled model (which files count and why: hific_lit/data/photo_set.py).
Not committed: `make photos` fetches the packages (apt-get download), unpacks each under <data>/photos/root/<package>.
Rebuilt by `python scripts/photos.py --write-manifest`; roles: train, heldout (never trained or validated on)."""


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def fetch(versions: dict[str, str], folder: Path) -> dict[str, Path]:
    """``apt-get download`` each package (at its version when apt has it) into ``folder/debs``, unpack it under
    ``folder/root/<package>``; return each package's unpacked root."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DatasetError("fetching the photo packages needs apt-get and dpkg-deb (Debian or Ubuntu)")
    debs = folder / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    roots = {}
    for package, version in versions.items():
        wanted = f"{package}={version}" if version else package
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            with tempfile.TemporaryDirectory(dir=debs) as tmp:
                result = _run(["apt-get", "download", wanted], cwd=Path(tmp))
                if result.returncode and version:
                    print(f"{package}: version {version} not in apt's lists, fetching the one apt has", file=sys.stderr)
                    result = _run(["apt-get", "download", package], cwd=Path(tmp))
                if result.returncode:
                    reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
                    raise DatasetError(f"apt-get download {package} failed ({reason}); try `sudo apt-get update` first")
                for deb in Path(tmp).glob("*.deb"):
                    deb.replace(debs / deb.name)
            found = sorted(debs.glob(f"{package}_*.deb"))
        roots[package] = package_root(folder, package)
        roots[package].mkdir(parents=True, exist_ok=True)
        result = _run(["dpkg-deb", "-x", str(found[-1]), str(roots[package])])
        if result.returncode:
            raise DatasetError(f"dpkg-deb -x {found[-1]} failed: {result.stderr.strip()}")
        for source in SOURCES:
            if source.package == package and source.archives:
                count = unpack_archives(source, roots[package])
                print(f"{package}: {count} files of {len(source.archives)} Qt resource archives unpacked")
        print(f"{package}: {found[-1].name} unpacked under {roots[package]}")
    return roots


def installed_version(package: str, deb_folder: Path) -> str:
    """The version of the fetched ``.deb`` of ``package``."""
    deb = sorted(deb_folder.glob(f"{package}_*.deb"))[-1]
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()


def print_green_shares(folder: Path) -> None:
    """Each package's photos' mean :func:`green_share`, and each role's."""
    shares: dict[tuple[str, str], list[float]] = {}
    for role in ROLES:
        for entry, path in photo_entries(role, folder, verify=False):
            with Image.open(path) as image:
                shares.setdefault((role, entry.package), []).append(green_share(image))
    print("green share (G above R and B by more than 15 levels), mean over each package's photos:")
    for (role, package), values in shares.items():
        print(f"  {role:8s} {package:28s} {len(values):4d} photos  {100 * sum(values) / len(values):5.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fetch", action="store_true", help="apt-get download and unpack the packages first")
    parser.add_argument("--write-manifest", action="store_true", help="rescan the unpacked packages and rewrite it")
    parser.add_argument("--green", action="store_true", help="print each package's mean share of green pixels")
    parser.add_argument("--folder", type=Path, default=None, help="default: <$HIFIC_DATA or data>/photos")
    args = parser.parse_args(argv)
    folder = args.folder or default_data_dir() / "photos"
    try:
        if args.write_manifest:
            versions = dict.fromkeys(source.package for source in SOURCES)
            versions = {p: v or "" for p, v in versions.items()}
            roots = fetch(versions, folder)
            versions = {p: installed_version(p, folder / "debs") for p in versions}
            entries, refused = scan(roots, versions)
            for line in refused:
                print(f"refused: {line}")
            write_manifest(entries, manifest_path(), HEADER)
            print(f"wrote {manifest_path()}: {len(entries)} photos")
        elif args.fetch:
            fetch(packages(entries=read_manifest()), folder)
        for role in ROLES:
            print(f"{role}: {len(photo_paths(role, folder))} photos, all as the manifest says")
        if args.green:
            print_green_shares(folder)
    except DatasetError as exc:
        print(f"photos: error: {exc}", file=sys.stderr)
        return NOTHING_RAN
    return 0


if __name__ == "__main__":
    sys.exit(main())
