#!/usr/bin/env python3
"""Write a single-layer image archive in `docker save` format, with the standard library only.

Why: there is no container registry here, and two images have no Dockerfile to build
from: the pause image is one static binary, the base image a debootstrapped directory.
Both `ctr -n k8s.io images import` and `docker load` accept this format: manifest.json,
<config digest>.json and <layer digest>/layer.tar, all uncompressed.

    oci_archive.py SRC OUT --ref NAME:TAG [--entrypoint JSON] [--cmd JSON]
                   [--env K=V]... [--user UID:GID] [--workdir DIR]

SRC is a root filesystem directory (its contents become /) or one file (it becomes
/<its name>). OUT is written under a temporary name and renamed when complete, so a
half-written archive never looks like a finished one.
"""

import argparse
import hashlib
import io
import json
import os
import platform
import tarfile
import tempfile

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
EPOCH = "1970-01-01T00:00:00Z"  # fixed, so the same inputs give the same image ID


def _owner_by_number(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""  # runtimes use uid/gid; host user names do not belong in it
    return info


def write_layer(src: str, path: str) -> str:
    """Tar SRC into PATH; return the sha256 of the tar (the image's diff_id)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        if os.path.isdir(src):
            for name in sorted(os.listdir(src)):  # tar.add recurses in sorted order too
                tar.add(os.path.join(src, name), arcname=name, filter=_owner_by_number)
        else:
            tar.add(src, arcname=os.path.basename(src), filter=_owner_by_number)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_archive(args: argparse.Namespace) -> None:
    out_dir = os.path.dirname(os.path.abspath(args.out))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".oci-archive.") as tmp:
        layer = os.path.join(tmp, "layer.tar")
        diff_id = write_layer(args.src, layer)
        settings = {
            "Entrypoint": args.entrypoint,
            "Cmd": args.cmd,
            "Env": args.env,
            "User": args.user,
            "WorkingDir": args.workdir,
        }
        config = json.dumps(
            {
                "architecture": ARCH,
                "os": "linux",
                "created": EPOCH,
                "config": {k: v for k, v in settings.items() if v},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
                "history": [{"created": EPOCH, "created_by": "hack/oci_archive.py"}],
            },
            sort_keys=True,
        ).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        manifest = [{"Config": config_name, "RepoTags": [args.ref], "Layers": [f"{diff_id}/layer.tar"]}]
        partial = os.path.join(tmp, "archive.tar")
        with tarfile.open(partial, "w") as tar:
            _add_bytes(tar, config_name, config)
            tar.add(layer, arcname=f"{diff_id}/layer.tar", filter=_owner_by_number)
            _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        os.replace(partial, args.out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="root filesystem directory, or one file")
    p.add_argument("out", help="archive to write")
    p.add_argument("--ref", required=True, help="image reference, e.g. lambdakube.dev/pause:3.10")
    p.add_argument("--entrypoint", type=json.loads, help='JSON list, e.g. ["/pause"]')
    p.add_argument("--cmd", type=json.loads, help='JSON list, e.g. ["python3"]')
    p.add_argument("--env", action="append", default=[], help="K=V, repeatable")
    p.add_argument("--user", help="e.g. 65535:65535")
    p.add_argument("--workdir")
    write_archive(p.parse_args())


if __name__ == "__main__":
    main()
