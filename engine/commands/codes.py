"""``cairn codes import|show|ndc``: CDC's vaccine code tables (NDC → CVX crosswalk).

CDC's files are never part of the software: an operator installs a release
(a folder laid out like ``shared/codes``) into the data directory, as ``cairn
cdsi import`` does for the CDSi supporting data. The install is atomic:
the release is copied into a new folder, loaded again from there, and only
then does the ``codes/current`` link switch to it in one ``rename``. A
running server reads the release at start.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from handlers.ndc import (
    RELEASE_FILES,
    CodeRelease,
    CodeReleaseError,
    NdcStatus,
    installed_codes,
    load_code_release,
)


def register(subparsers: Any) -> None:
    """Add the ``codes`` sub-command."""
    parser = subparsers.add_parser(
        "codes",
        help="CDC vaccine code tables (NDC → CVX crosswalk): install a release, show it",
    )
    sub = parser.add_subparsers(dest="codes_command", metavar="ACTION")
    sub.required = True
    install = sub.add_parser(
        "import",
        help="validate a code release folder (ndc-cvx.csv, cvx.csv, mvx.csv, cvx-vaccine-group.csv) and install it into the data directory",
    )
    install.add_argument(
        "path", metavar="PATH", help="a folder laid out like ../shared/codes"
    )
    install.add_argument(
        "--data-dir", default="var", help="data directory (default ./var)"
    )
    install.set_defaults(func=run_import)
    show = sub.add_parser(
        "show", help="show the code release the server would use, and its counts"
    )
    show.add_argument(
        "--data-dir", default="var", help="data directory (default ./var)"
    )
    show.set_defaults(func=run_show)
    ndc = sub.add_parser("ndc", help="look up an NDC as RXA-5 would")
    ndc.add_argument("code", metavar="NDC", help="an NDC in any of its forms")
    ndc.add_argument("--data-dir", default="var", help="data directory (default ./var)")
    ndc.set_defaults(func=run_ndc)


def _active_path(data_dir: str) -> tuple[Path | None, str]:
    """The release the server would load, and where it came from."""
    from_env = os.environ.get("CAIRN_CODES_DIR", "")
    if from_env and Path(from_env).exists():
        return Path(from_env), "CAIRN_CODES_DIR"
    installed = installed_codes(data_dir)
    return installed, "installed"


def _release_id(source: Path) -> str:
    digest = hashlib.sha256()
    for name in RELEASE_FILES:
        digest.update(name.encode())
        digest.update((source / name).read_bytes())
    return digest.hexdigest()[:12]


def _summary(release: CodeRelease) -> str:
    return (
        f"release {release.release}: {len(release.products)} NDCs, "
        f"{len(release.cvx)} CVX, {len(release.mvx)} MVX, "
        f"{len(release.groups)} CVX with vaccine groups"
    )


def run_import(args: argparse.Namespace) -> int:
    """Validate a release and make it the data directory's current one."""
    source = Path(args.path)
    try:
        release = load_code_release(source)
    except CodeReleaseError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    root = Path(args.data_dir) / "codes"
    root.mkdir(parents=True, exist_ok=True)
    name = f"{release.release}-{_release_id(source)}"
    staging = root / f".incoming-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for file in RELEASE_FILES:
        shutil.copy2(source / file, staging / file)
    readme = source / "README.md"
    if readme.is_file():
        shutil.copy2(readme, staging / "README.md")
    try:
        load_code_release(staging)  # the copy loads too, before anything changes
    except CodeReleaseError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"cairn: the copy in {staging} does not load: {exc}", file=sys.stderr)
        return 1
    final = root / name
    if final.is_dir():  # the same files again: keep the folder a server may be reading
        shutil.rmtree(staging)
    else:
        staging.rename(final)
    current = root / "current"
    link = root / f".current-{name}"
    link.unlink(missing_ok=True)
    link.symlink_to(name, target_is_directory=True)
    previous = current.resolve() if current.is_symlink() else None
    if current.exists() and not current.is_symlink():
        shutil.rmtree(current)  # a folder left by hand: replace it
    link.replace(current)  # atomic: a reader sees the old release or the new one
    if previous is not None and previous != final.resolve():
        shutil.rmtree(previous, ignore_errors=True)
    print(f"cairn: installed CDC code tables, {_summary(release)}, into {final}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print the release a server started now would use."""
    path, origin = _active_path(args.data_dir)
    if path is None:
        print(
            "cairn: no NDC table is installed: NDC-only doses are rejected; "
            "install one with `cairn codes import PATH` (e.g. ../shared/codes)",
            file=sys.stderr,
        )
        return 1
    try:
        release = load_code_release(path)
    except CodeReleaseError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(f"{_summary(release)}")
    print(f"from {path.resolve()} ({origin})")
    return 0


def run_ndc(args: argparse.Namespace) -> int:
    """Print what the crosswalk says about one NDC."""
    path, _origin = _active_path(args.data_dir)
    if path is None:
        print(
            "cairn: no NDC table is installed (run `cairn codes import PATH`)",
            file=sys.stderr,
        )
        return 1
    try:
        release = load_code_release(path)
    except CodeReleaseError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    match = release.lookup(args.code)
    if match.status is NdcStatus.NOT_NDC:
        print(f"cairn: {args.code!r} is not an NDC", file=sys.stderr)
        return 1
    if match.product is None:
        print(
            f"cairn: NDC {match.ndc} is not in CDC's NDC table (release {release.release})",
            file=sys.stderr,
        )
        return 1
    p = match.product
    print(
        f"NDC {p.ndc11} ({p.ndc10}, {'/'.join(sorted(p.kinds))}): {p.name}; "
        f"CVX {'/'.join(p.cvx)}; MVX {'/'.join(p.mvx) or '-'}"
    )
    return 0
