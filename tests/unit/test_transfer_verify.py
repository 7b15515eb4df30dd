"""Package verification against crafted archives: a valid package verifies, and every kind of
hostile or damaged archive is refused with a finding that names the problem, reading from the
file only (nothing is written anywhere)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opencdmo.canonical import canonical_json, content_hash
from opencdmo.transfer import build, package
from opencdmo.transfer.format import (
    Approval,
    FileEntry,
    Key,
    Manifest,
    RecipeRef,
    Sender,
    b64,
    encode_manifest,
    fingerprint,
    package_digest,
)
from opencdmo.transfer.verify import (
    Limits,
    ReceivedDocument,
    Unreadable,
    Verification,
    verify_file,
)

WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
STAMP = "2026-12-01T09:30:00Z"
CONTENT = {"unit_procedures": [{"key": "cell-processing", "operations": []}]}
ITEM_CONTENT = {"kind": "unit_operation", "slug": "t-cell-activation", "version": "1.1.0"}


def raw_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


KEY = Ed25519PrivateKey.generate()
FINGERPRINT = fingerprint(raw_key(KEY))
TRUSTED = {FINGERPRINT}


@dataclass
class Spec:
    """What a crafted package holds, and how it is bent after signing."""

    documents: list[tuple[str, bytes]] = field(default_factory=lambda: [("SOP 1.pdf", b"%PDF-1")])
    batchml: bytes | None = b"<BatchInformation><MasterRecipe/></BatchInformation>"
    signer: Ed25519PrivateKey = KEY
    named_key: Ed25519PrivateKey = KEY
    tweak: Callable[[Manifest], Manifest] | None = None  # before signing
    replace: dict[str, bytes] = field(default_factory=dict)  # member bytes after signing
    drop: set[str] = field(default_factory=set)
    extra: list[tuple[str, bytes]] = field(default_factory=list)
    manifest_bytes: Callable[[bytes], bytes] | None = None  # after signing


def sender(key: Ed25519PrivateKey) -> Sender:
    raw = raw_key(key)
    return Sender(
        str(uuid.uuid4()),
        "sponsor",
        "Sponsor Bio",
        "sponsor",
        Key("Ed25519", b64(raw), fingerprint(raw)),
    )


def source(spec: Spec) -> build.Source:
    item = {
        "kind": "unit_operation",
        "slug": "t-cell-activation",
        "version": "1.1.0",
        "content": ITEM_CONTENT,
        "content_hash": content_hash(ITEM_CONTENT),
    }
    recipe = RecipeRef(str(uuid.uuid4()), "CAR-T", "CAR-T cells", 3, content_hash(CONTENT))
    documents = [
        build.Document(name, "application/pdf", package.from_bytes(data), f"Title of {name}", "sop")
        for name, data in spec.documents
    ]
    return build.Source(sender(spec.named_key), recipe, CONTENT, [item], documents, spec.batchml)


def craft(folder: Path, spec: Spec | None = None) -> Path:
    """A package as ``build`` writes it, then bent as the spec says."""
    spec = spec or Spec()
    src = source(spec)
    members = build.members_of(src)
    manifest = build.unsigned(src, str(uuid.uuid4()), STAMP, members)
    approval_digest = package_digest(manifest)
    approval = Approval(
        "Quinn QA", "approved for transfer", "ok", STAMP, str(uuid.uuid4()), approval_digest
    )
    qa = canonical_json(msgspec.to_builtins(approval)).encode()
    qa_entry = FileEntry(
        "signatures/qa.json", len(qa), package.hashed((qa,))[1], "application/json", "signatures"
    )
    final = msgspec.structs.replace(manifest, files=[*manifest.files, qa_entry], approval=approval)
    if spec.tweak is not None:
        final = spec.tweak(final)
    data = encode_manifest(final)
    signature = b64(spec.signer.sign(data)).encode()
    if spec.manifest_bytes is not None:
        data = spec.manifest_bytes(data)
    bodies = {m.entry.path: b"".join(m.chunks()) for m in members} | {"signatures/qa.json": qa}
    bodies |= spec.replace
    path = folder / "package.zip"
    parts = [("manifest.json", data), ("manifest.sig", signature)]
    parts += [(p, b) for p, b in bodies.items() if p not in spec.drop]
    write_raw(path, [*parts, *spec.extra])
    return path


def info(name: str, mode: int = 0o100644, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    made = zipfile.ZipInfo(name, date_time=(2026, 12, 1, 9, 30, 0))
    made.create_system = 3
    made.external_attr = mode << 16
    made.compress_type = method
    return made


def write_raw(path: Path, parts: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate names made on purpose
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in parts:
                archive.writestr(info(name) if isinstance(name, str) else name, data)
    return path


def codes(result: Verification) -> list[str]:
    return [f.code for f in result.findings]


def refused(result: Verification, code: str, said: str) -> None:
    assert not result.valid and result.contents is None
    messages = [f.message for f in result.findings if f.code == code]
    assert messages, result.findings
    assert any(said in m for m in messages), messages


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The package's folder; after the test, it (and its parent) hold nothing new."""
    work = tmp_path / "in"
    work.mkdir()
    before = sorted(tmp_path.rglob("*"))
    yield work
    after = [p for p in sorted(tmp_path.rglob("*")) if p.name != "package.zip"]
    assert after == [p for p in before if p.name != "package.zip"]


def test_a_valid_package_verifies(folder: Path) -> None:
    result = verify_file(craft(folder), TRUSTED)
    assert result.findings == [] and result.valid
    contents = result.contents
    assert contents is not None
    assert contents.revision["content"] == CONTENT and contents.revision["revision"] == 3
    assert [i["slug"] for i in contents.items] == ["t-cell-activation"]
    sha = package.hashed((b"%PDF-1",))[1]
    assert contents.documents == [
        ReceivedDocument(
            "documents/01-SOP-1.pdf", 6, sha, "application/pdf", "Title of SOP 1.pdf", "sop"
        )
    ]
    assert contents.batchml is not None and contents.manifest.approval is not None


def test_the_key_must_be_trusted(folder: Path) -> None:
    path = craft(folder)
    refused(verify_file(path, set()), "untrusted_key", FINGERPRINT)
    assert codes(verify_file(path, set())) == ["untrusted_key"]
    assert verify_file(path, {FINGERPRINT}).valid  # trusted once its fingerprint is


def test_a_signature_by_another_key_is_refused(folder: Path) -> None:
    other = Ed25519PrivateKey.generate()
    refused(
        verify_file(craft(folder, Spec(signer=other)), TRUSTED), "bad_signature", "does not verify"
    )


def test_a_package_of_an_untrusted_sender_is_refused(folder: Path) -> None:
    stranger = Ed25519PrivateKey.generate()
    path = craft(folder, Spec(signer=stranger, named_key=stranger))
    refused(verify_file(path, TRUSTED), "untrusted_key", "is not trusted here")


def test_a_tampered_manifest_byte_is_refused(folder: Path) -> None:
    path = craft(folder, Spec(manifest_bytes=lambda d: d.replace(b'"CAR-T"', b'"CAR-X"', 1)))
    refused(verify_file(path, TRUSTED), "bad_signature", "changed after it was signed")


def test_a_tampered_document_byte_is_refused(folder: Path) -> None:
    path = craft(folder, Spec(replace={"documents/01-SOP-1.pdf": b"%PDF-2"}))
    refused(verify_file(path, TRUSTED), "hash_mismatch", "documents/01-SOP-1.pdf: its SHA-256")


def test_a_fingerprint_that_is_not_the_keys_is_refused(folder: Path) -> None:
    def wrong(m: Manifest) -> Manifest:
        key = msgspec.structs.replace(m.sender.key, fingerprint="0" * 64)
        return msgspec.structs.replace(m, sender=msgspec.structs.replace(m.sender, key=key))

    refused(verify_file(craft(folder, Spec(tweak=wrong)), TRUSTED), "bad_fingerprint", "SHA-256")


def test_an_approval_of_another_digest_is_refused(folder: Path) -> None:
    def other(m: Manifest) -> Manifest:
        assert m.approval is not None
        return msgspec.structs.replace(
            m, approval=msgspec.structs.replace(m.approval, digest="1" * 64)
        )

    refused(verify_file(craft(folder, Spec(tweak=other)), TRUSTED), "approval_mismatch", "digest")


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "not a ZIP archive"),
        (b"just some text, not an archive at all", "not a ZIP archive"),
        (b"PK\x05\x06" + b"\x00" * 8, "not a ZIP archive"),
    ],
)
def test_a_file_that_is_no_archive_is_refused(folder: Path, data: bytes, said: str) -> None:
    path = folder / "package.zip"
    path.write_bytes(data)
    refused(verify_file(path, TRUSTED), "not_a_zip", said)


def test_a_truncated_archive_is_refused(folder: Path) -> None:
    path = craft(folder, Spec(documents=[("big.pdf", b"%PDF" + os.urandom(200_000))]))
    path.write_bytes(path.read_bytes()[:150_000])
    refused(verify_file(path, TRUSTED), "not_a_zip", "truncated")


def test_an_unreadable_input_is_its_own_error(folder: Path) -> None:
    with pytest.raises(Unreadable):
        verify_file(folder / "missing.zip", TRUSTED)
    with pytest.raises(Unreadable):
        verify_file(folder, TRUSTED)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("../evil.json", "climbs out of the archive"),
        ("documents/../../evil.json", "climbs out of the archive"),
        ("/etc/cron.d/evil", "absolute path"),
        ("C:/Windows/evil.dll", "absolute path"),
        ("c:evil.dll", "absolute path"),
        ("documents\\01-evil.pdf", "backslash"),
        ("documents/", "directory entry"),
        ("documents/01-" + "a" * 250, "longer than 200"),
        ("documents/01-ev il.pdf", "outside the safe set"),
        ("documents/01-\u00e9vil.pdf", "outside the safe set"),
    ],
)
def test_unsafe_member_names_are_refused(folder: Path, name: str, said: str) -> None:
    path = write_raw(folder / "package.zip", [("manifest.json", b"{}"), (name, b"x")])
    refused(verify_file(path, TRUSTED), "unsafe_name", said)


def test_a_symbolic_link_is_refused(folder: Path) -> None:
    link = info("documents/01-passwd", mode=0o120777)
    path = write_raw(folder / "package.zip", [("manifest.json", b"{}"), (link, b"/etc/passwd")])
    refused(verify_file(path, TRUSTED), "not_a_file", "is a symbolic link")


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        (0o040755, "a directory"),
        (0o010644, "a named pipe"),
        (0o020644, "a device"),
        (0o140755, "a socket"),
    ],
)
def test_any_entry_but_a_regular_file_is_refused(folder: Path, mode: int, said: str) -> None:
    odd = info("documents/01-odd", mode=mode)
    path = write_raw(folder / "package.zip", [("manifest.json", b"{}"), (odd, b"")])
    refused(verify_file(path, TRUSTED), "not_a_file", said)


def test_a_duplicate_name_is_refused(folder: Path) -> None:
    path = craft(folder, Spec(extra=[("documents/01-SOP-1.pdf", b"%PDF-other")]))
    refused(verify_file(path, TRUSTED), "duplicate_name", "is in the archive twice")


@pytest.mark.parametrize(
    ("first", "second", "said"),
    [
        ("documents/01-sop.pdf", "documents/01-SOP.pdf", "by case only"),
        (
            "documents/01-caf\u00e9.pdf",
            "documents/01-cafe\u0301.pdf",
            "Unicode normalisation (NFC)",
        ),
        ("documents/01-\ufb01le.pdf", "documents/01-file.pdf", "Unicode normalisation (NFKC)"),
    ],
)
def test_names_equal_after_folding_are_refused(
    folder: Path, first: str, second: str, said: str
) -> None:
    path = write_raw(
        folder / "package.zip", [("manifest.json", b"{}"), (first, b"a"), (second, b"b")]
    )
    refused(verify_file(path, TRUSTED), "confusable_name", said)


def test_an_entry_count_bomb_is_refused_before_the_directory_is_parsed(folder: Path) -> None:
    parts: list[tuple[str | zipfile.ZipInfo, bytes]] = [
        (f"documents/{i:05d}", b"") for i in range(10_001)
    ]
    path = write_raw(folder / "package.zip", parts)
    refused(verify_file(path, TRUSTED), "entry_bomb", "declares 10001 entries")


def test_a_compression_ratio_bomb_is_refused(folder: Path) -> None:
    zeros = b"\x00" * (8 * 1024 * 1024)
    path = write_raw(
        folder / "package.zip", [("manifest.json", b"{}"), ("documents/01-zeros", zeros)]
    )
    refused(verify_file(path, TRUSTED), "ratio_bomb", "more than 200 times")


def test_a_total_size_bomb_is_refused(folder: Path) -> None:
    data = os.urandom(600_000)
    parts: list[tuple[str | zipfile.ZipInfo, bytes]] = [("manifest.json", b"{}")]
    parts += [(f"documents/0{i}-part", data) for i in range(3)]
    path = write_raw(folder / "package.zip", parts)
    refused(verify_file(path, TRUSTED, Limits(max_total=1_000_000)), "size_bomb", "in all")


def test_a_member_larger_than_a_member_may_be_is_refused(folder: Path) -> None:
    path = write_raw(
        folder / "package.zip", [("manifest.json", b"{}"), ("documents/01-x", os.urandom(5000))]
    )
    refused(verify_file(path, TRUSTED, Limits(max_member=4096)), "size_bomb", "more than the 4096")


def test_reading_stops_where_a_member_inflates_past_its_declared_size(folder: Path) -> None:
    """The manifest says 10 bytes, the member inflates to 3 MB: refused at 10, not read on."""

    def small(m: Manifest) -> Manifest:
        files = [
            msgspec.structs.replace(f, size=10) if f.role == "document" else f for f in m.files
        ]
        return msgspec.structs.replace(m, files=files)

    spec = Spec(documents=[("big.pdf", b"%PDF" + os.urandom(3_000_000))], tweak=small)
    result = verify_file(craft(folder, spec), TRUSTED)
    refused(result, "size_bomb", "inflates past the 10 bytes it declares")
    refused(result, "size_mismatch", "the manifest 10")


def test_an_encrypted_entry_is_refused(folder: Path) -> None:
    """The entry's encryption flag set in the central directory (zipfile writes none)."""
    path = write_raw(folder / "package.zip", [("manifest.json", b"{}"), ("documents/01-l", b"x")])
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 8] |= 0x1
    path.write_bytes(bytes(data))
    refused(verify_file(path, TRUSTED), "encrypted", "is encrypted")


def test_another_compression_method_is_refused(folder: Path) -> None:
    squeezed = info("documents/01-b", method=zipfile.ZIP_BZIP2)
    path = write_raw(folder / "package.zip", [("manifest.json", b"{}"), (squeezed, b"x" * 100)])
    refused(verify_file(path, TRUSTED), "compression", "method 12")


def test_entries_overlapping_another_are_refused(folder: Path) -> None:
    """Two directory entries that point at the same data (the overlapping-files bomb)."""
    path = write_raw(
        folder / "package.zip",
        [("manifest.json", b"{}"), ("documents/01-a", b"a" * 100), ("documents/02-b", b"b" * 100)],
    )
    data = bytearray(path.read_bytes())
    entries = [i for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02"]
    second_offset = data[entries[1] + 42 : entries[1] + 46]
    data[entries[2] + 42 : entries[2] + 46] = second_offset
    path.write_bytes(bytes(data))
    refused(verify_file(path, TRUSTED), "overlapping", "overlaps the data of another member")


@pytest.mark.parametrize(
    ("nested", "kind"),
    [
        ("zip", "a ZIP archive"),
        ("gzip", "a gzip file"),
        ("tar", "a tar archive"),
        ("xz", "an xz file"),
    ],
)
def test_a_nested_archive_is_refused(folder: Path, nested: str, kind: str) -> None:
    inner = io.BytesIO()
    if nested == "zip":
        with zipfile.ZipFile(inner, "w") as archive:
            archive.writestr("inner.txt", "x")
    elif nested == "gzip":
        inner.write(gzip.compress(b"x"))
    elif nested == "tar":
        with tarfile.open(fileobj=inner, mode="w") as tar:
            member = tarfile.TarInfo("inner.txt")
            member.size = 1
            tar.addfile(member, io.BytesIO(b"x"))
    else:
        import lzma

        inner.write(lzma.compress(b"x"))
    path = craft(folder, Spec(documents=[("report.pdf", inner.getvalue())]))
    refused(verify_file(path, TRUSTED), "nested_archive", f"documents/01-report.pdf is {kind}")


def test_a_member_not_in_the_manifest_is_refused(folder: Path) -> None:
    path = craft(folder, Spec(extra=[("documents/09-extra.pdf", b"%PDF-x")]))
    refused(verify_file(path, TRUSTED), "unlisted_member", "which the manifest does not list")


def test_a_manifest_entry_not_in_the_archive_is_refused(folder: Path) -> None:
    path = craft(folder, Spec(drop={"documents/01-SOP-1.pdf"}))
    refused(verify_file(path, TRUSTED), "missing_member", "which is not in the archive")


def test_the_manifest_must_come_first(folder: Path) -> None:
    path = write_raw(folder / "package.zip", [("manifest.sig", b"x"), ("manifest.json", b"{}")])
    refused(verify_file(path, TRUSTED), "manifest_order", "must begin with manifest.json")


@pytest.mark.parametrize(
    ("manifest", "said"),
    [
        (b"{}", "missing required field"),
        (b'{"format": "zip"}', "Invalid enum value"),
        (b"not json", "malformed"),
        (b"[" * 100_000 + b"]" * 100_000, "expected `object`"),
    ],
)
def test_a_manifest_that_is_not_the_format_is_refused(
    folder: Path, manifest: bytes, said: str
) -> None:
    path = write_raw(folder / "package.zip", [("manifest.json", manifest), ("manifest.sig", b"x")])
    result = verify_file(path, TRUSTED)
    assert codes(result) == ["manifest_invalid"]
    assert said.lower() in result.findings[0].message.lower()


def test_unknown_and_oversized_manifest_fields_are_refused(folder: Path) -> None:
    path = craft(folder)
    with zipfile.ZipFile(path) as archive:
        body = msgspec.json.decode(archive.read("manifest.json"))
    for bent, said in (
        ({**body, "extra": 1}, "unknown field"),
        ({**body, "recipe": {**body["recipe"], "name": "x" * 201}}, "length <= 200"),
        ({**body, "created_at": "yesterday"}, "matching regex"),
    ):
        write_raw(path, [("manifest.json", canonical_json(bent).encode()), ("manifest.sig", b"x")])
        result = verify_file(path, TRUSTED)
        assert codes(result) == ["manifest_invalid"], result.findings
        assert said in result.findings[0].message


def test_an_oversized_manifest_is_refused(folder: Path) -> None:
    path = write_raw(
        folder / "package.zip", [("manifest.json", b" " * 5000), ("manifest.sig", b"x")]
    )
    refused(verify_file(path, TRUSTED, Limits(max_manifest=4096)), "oversized", "at most 4096")


def test_yaml_is_never_accepted(folder: Path) -> None:
    path = craft(folder, Spec(documents=[("recipe.yaml", b"a: &a [*a]")]))
    refused(verify_file(path, TRUSTED), "manifest_invalid", "YAML is never accepted")


@pytest.mark.parametrize(
    ("xml", "code", "said"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            b'"&lol;&lol;&lol;&lol;">]><BatchInformation>&lol2;</BatchInformation>',
            "xml_dtd",
            "DTD or entity declaration",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<BatchInformation>&x;</BatchInformation>",
            "xml_dtd",
            "DTD or entity declaration",
        ),
        (b"<BatchInformation><MasterRecipe></BatchInformation>", "invalid_xml", "not well-formed"),
    ],
)
def test_batchml_with_a_dtd_or_malformed_is_refused(
    folder: Path, xml: bytes, code: str, said: str
) -> None:
    refused(verify_file(craft(folder, Spec(batchml=xml)), TRUSTED), code, said)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"a":1}', "exactly the keys"),
    ],
)
def test_json_members_are_decoded_strictly(folder: Path, body: bytes, said: str) -> None:
    """The revision's bytes replaced, and its manifest entry made to match them: what is
    refused then is the JSON itself."""

    def matching(m: Manifest) -> Manifest:
        size, digest = package.hashed((body,))
        files = [
            msgspec.structs.replace(f, size=size, sha256=digest) if f.role == "revision" else f
            for f in m.files
        ]
        return msgspec.structs.replace(m, files=files)

    path = craft(folder, Spec(replace={"recipe/revision.json": body}, tweak=matching))
    refused(verify_file(path, TRUSTED), "invalid_json", said)


@pytest.mark.parametrize(
    ("bend", "said"),
    [
        ((b'{"content":', b'{"content":{},"content":'), "each key once"),
        ((b'{"content":', b'{ "content" :'), "not canonical JSON"),
    ],
)
def test_duplicate_keys_and_other_non_canonical_json_are_refused(
    folder: Path, bend: tuple[bytes, bytes], said: str
) -> None:
    """A key given twice (the last one would win in most readers), or spaces: not canonical."""
    path = craft(folder)
    with zipfile.ZipFile(path) as archive:
        revision = archive.read("recipe/revision.json")
    doubled = revision.replace(*bend, 1)
    assert doubled != revision

    def matching(m: Manifest) -> Manifest:
        size, digest = package.hashed((doubled,))
        files = [
            msgspec.structs.replace(f, size=size, sha256=digest) if f.role == "revision" else f
            for f in m.files
        ]
        return msgspec.structs.replace(m, files=files)

    path = craft(folder, Spec(replace={"recipe/revision.json": doubled}, tweak=matching))
    refused(verify_file(path, TRUSTED), "invalid_json", said)


def test_the_format_is_documented_with_every_finding_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "transfer-package.md").read_text()
    import inspect

    from opencdmo.transfer import _archive, _contents, verify

    source = "".join(inspect.getsource(m) for m in (_archive, _contents, verify))
    found = set(__import__("re").findall(r'(?:Problem|Finding|_refused)\(\s*"([a-z_]+)"', source))
    assert found >= {"unsafe_name", "nested_archive", "bad_signature"}
    missing = sorted(code for code in found if f"`{code}`" not in doc)
    assert not missing, missing


def _files(m: Manifest, change: Callable[[FileEntry], FileEntry]) -> Manifest:
    return msgspec.structs.replace(m, files=[change(f) for f in m.files])


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda f: msgspec.structs.replace(f, title=None) if f.role == "document" else f,
            "a document has a title and a kind",
        ),
        (
            lambda f: msgspec.structs.replace(f, kind="memo") if f.role == "document" else f,
            "a document has a title and a kind",
        ),
        (
            lambda f: msgspec.structs.replace(f, title="x") if f.role == "revision" else f,
            "only a document has a title",
        ),
        (
            lambda f: msgspec.structs.replace(f, slug="x") if f.role == "document" else f,
            "a document has no slug, version or content_hash",
        ),
    ],
)
def test_a_document_entry_names_its_title_and_kind_and_nothing_else(
    folder: Path, change: Callable[[FileEntry], FileEntry], said: str
) -> None:
    """A document's entry carries its title and one of the document kinds (signed with the
    manifest); a title on another file, or an item's fields on a document, is refused."""
    path = craft(folder, Spec(tweak=lambda m: _files(m, change)))
    refused(verify_file(path, TRUSTED), "manifest_invalid", said)
