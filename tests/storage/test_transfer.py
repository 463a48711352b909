"""Images travel as tar shards and come back in the same layout, byte for byte."""

from __future__ import annotations

import io
import tarfile

import pytest

from synthset.storage import transfer


def test_images_pack_into_bounded_shards_and_unpack_to_the_same_files(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "SHARD_FILES", 3)
    monkeypatch.setattr(transfer, "SHARD_BYTES", 250)
    images = tmp_path / "v1" / "images"
    images.mkdir(parents=True)
    files = {f"{n:02d}.png": bytes([n]) * (40 + 20 * n) for n in range(7)}
    for name, data in files.items():
        (images / name).write_bytes(data)

    shards = transfer.pack(tmp_path / "v1", tmp_path / "out" / "shards")

    members = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            members.append(tar.getmembers())
    sizes = [sum(m.size for m in group) for group in members]
    counts = [len(group) for group in members]
    assert all(c <= 3 for c in counts) and all(s <= 250 for s in sizes) and sum(counts) == 7
    assert transfer.unpack(tmp_path / "out") == 7
    got = {p.name: p.read_bytes() for p in (tmp_path / "out" / "images").iterdir()}
    assert got == files and not (tmp_path / "out" / "shards").exists()


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "images/sub/x.png", "x.png"])
def test_a_member_outside_images_is_refused(tmp_path, name):
    (tmp_path / "shards").mkdir()
    with tarfile.open(tmp_path / "shards" / "images-00000.tar", "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))

    with pytest.raises(ValueError, match="unexpected member"):
        transfer.unpack(tmp_path)

    assert sorted(p.name for p in tmp_path.rglob("*")) == ["images-00000.tar", "shards"]
