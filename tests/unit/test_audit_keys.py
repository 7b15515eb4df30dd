"""The audit key (configured or generated once), key ids, checkpoint signatures and the
append-only checkpoint file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from opencdmo.audit.checkpoints import LocalCheckpointStore, parse, sign, signature_problem
from opencdmo.audit.keys import Keyring, keyring_from, make_key
from opencdmo.settings import Settings, SettingsError


def test_a_generated_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.resolved_audit_key()
    assert Settings(data_dir=tmp_path).resolved_audit_key() == first
    assert len(first) == 64
    assert stat.S_IMODE((tmp_path / "audit_key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["audit_key"], "no draft left behind"


def test_a_configured_key_wins_and_a_short_one_is_refused(tmp_path: Path) -> None:
    key = "k" * 32
    assert Settings(data_dir=tmp_path, audit_key=key).resolved_audit_key() == key
    assert not (tmp_path / "audit_key").exists()
    with pytest.raises(SettingsError, match="at least 32"):
        Settings(data_dir=tmp_path, audit_key="short").resolved_audit_key()


def test_key_ids_name_keys_without_revealing_them(tmp_path: Path) -> None:
    one, other = make_key("a" * 40), make_key("b" * 40)
    assert one.id != other.id and len(one.id) == 16
    assert make_key("a" * 40).id == one.id
    assert "a" * 40 not in repr(one)
    ring = keyring_from(
        Settings(data_dir=tmp_path, audit_key="a" * 40, audit_retired_keys=f"{'b' * 40}, ")
    )
    assert (ring.current.id, [k.id for k in ring.retired]) == (one.id, [other.id])
    assert ring.get(other.id) == other and ring.get("unknown") is None


def test_checkpoint_signatures(tmp_path: Path) -> None:
    key = make_key("c" * 40)
    checkpoint = sign(key, "tenant-x", "tenant x", 7, "f" * 64)
    assert signature_problem(checkpoint, Keyring(key)) is None
    altered = parse(checkpoint.body().replace('"seq":7', '"seq":9')[:-1] + ',"signature":"00"}')
    assert altered is not None
    assert "does not verify" in (signature_problem(altered, Keyring(key)) or "")
    assert "wrong key" in (signature_problem(checkpoint, Keyring(make_key("d" * 40))) or "")


def test_the_store_appends_and_reads_the_newest_first(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "cp")
    key = make_key("e" * 40)
    for seq in range(1, 2001):
        store.append(sign(key, "tenant-y", "tenant y", seq, "a" * 64))
    newest = store.latest("tenant-y", 3)
    assert [c.seq for c in newest if c is not None] == [2000, 1999, 1998]
    assert store.latest("tenant-z", 3) == []
    assert stat.S_IMODE((tmp_path / "cp" / "tenant-y.jsonl").stat().st_mode) == 0o600
    with (tmp_path / "cp" / "tenant-y.jsonl").open("a") as handle:
        handle.write("not json\n")
    assert store.latest("tenant-y", 2)[0] is None
    line = (tmp_path / "cp" / "tenant-y.jsonl").read_text().splitlines()[0]
    assert parse(line) is not None
    assert parse(line.replace('"seq":1,', '"seq":"1",')) is None
    assert parse(line.replace('"seq":1,', '"seq":true,')) is None
    with pytest.raises(ValueError, match="not a chain name"):
        store.latest("../etc/passwd", 1)


def test_audit_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "OPENCDMO_DATA_DIR": str(tmp_path),
            "OPENCDMO_AUDIT_CHECKPOINT_SECONDS": "0",
            "OPENCDMO_AUDIT_RETIRED_KEYS": "x" * 32,
        }
    )
    assert settings.audit_checkpoint_seconds == 0
    assert settings.resolved_audit_checkpoint_dir() == tmp_path / "audit-checkpoints"
    assert settings.resolved_audit_retired_keys() == ["x" * 32]
    moved = Settings.from_env({"OPENCDMO_AUDIT_CHECKPOINT_DIR": str(tmp_path / "elsewhere")})
    assert moved.resolved_audit_checkpoint_dir() == tmp_path / "elsewhere"
