"""A layer's size is what docker reports for the same tar: the lstat size of every
non-directory (file data, and each symlink's target length), hard links once."""
from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.interop


def test_image_size_matches_docker_for_the_same_rootfs(client, busybox, docker_busybox):
    ours = client.images.inspect("busybox")["Size"]
    theirs = json.loads(subprocess.run(["docker", "image", "inspect", docker_busybox], check=True,
                                       capture_output=True, text=True).stdout)[0]["Size"]
    assert ours == theirs
