from __future__ import annotations

import hashlib

from monai_reg_ext.data.manifest import compare_file_hashes, sha256_file


def test_sha256_and_three_way_comparison(tmp_path, capsys):
    (tmp_path / "a.bin").write_bytes(b"abc")
    h = sha256_file(tmp_path / "a.bin")
    assert h == hashlib.sha256(b"abc").hexdigest()
    assert compare_file_hashes({"a.bin": h}, {"a.bin": h}, tmp_path)
    assert "check: OK" in capsys.readouterr().out
    assert not compare_file_hashes({"a.bin": h}, {"a.bin": "other"}, tmp_path)  # regeneration differs
    assert not compare_file_hashes({"a.bin": h, "b.bin": h}, {"a.bin": h, "b.bin": h}, tmp_path)  # b missing on disk
    (tmp_path / "a.bin").write_bytes(b"changed")
    assert not compare_file_hashes({"a.bin": h}, {"a.bin": h}, tmp_path, verbose=False)  # edited on disk
    assert "MISMATCH a.bin" in capsys.readouterr().out
