"""Application certificates, trust lists and reconnect delays of the OPC UA capture."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opencdmo.equipment import opcua_pki
from opencdmo.equipment.opcua_client import Backoff, Sample


def test_a_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    first = opcua_pki.ensure_certificate(tmp_path / "pki", "urn:opencdmo:capture", server=False)
    der = first.certificate.read_bytes()
    again = opcua_pki.ensure_certificate(tmp_path / "pki", "urn:opencdmo:capture", server=False)
    assert again == first and again.certificate.read_bytes() == der
    assert first.private_key.stat().st_mode & 0o077 == 0  # the key is the owner's only
    certificate = x509.load_der_x509_certificate(der)
    uris = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "urn:opencdmo:capture" in uris.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert certificate.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)


def test_a_trust_list_reads_der_and_pem_alike(tmp_path: Path) -> None:
    made = opcua_pki.ensure_certificate(tmp_path / "server", "urn:s", server=True)
    der = made.certificate.read_bytes()
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "as-der").mkdir()
    opcua_pki.trust(tmp_path / "as-der", der, "server")
    (tmp_path / "as-pem").mkdir()
    (tmp_path / "as-pem" / "server.pem").write_bytes(pem)
    expected = {opcua_pki.fingerprint(der)}
    assert opcua_pki.trusted_fingerprints(tmp_path / "as-der") == expected
    assert opcua_pki.trusted_fingerprints(tmp_path / "as-pem") == expected
    assert opcua_pki.trusted_fingerprints(tmp_path / "missing") == set()


def test_the_first_certificate_of_a_chain(tmp_path: Path) -> None:
    one = opcua_pki.ensure_certificate(tmp_path / "a", "urn:a", server=True).certificate
    two = opcua_pki.ensure_certificate(tmp_path / "b", "urn:b", server=True).certificate
    chain = one.read_bytes() + two.read_bytes()
    assert opcua_pki.first_certificate(chain) == one.read_bytes()
    assert opcua_pki.first_certificate(one.read_bytes()) == one.read_bytes()


def test_reconnect_delays_double_up_to_their_bound() -> None:
    delays = list(itertools.islice(Backoff(initial=0.5, max_delay=3).delays(), 6))
    assert delays == [0.5, 1.0, 2.0, 3, 3, 3]


def test_a_sample_is_good_unless_its_status_is_bad_or_uncertain() -> None:
    def sample(status: int) -> Sample:
        return Sample("ph", "ns=2;s=BR01.pH", 7.2, None, None, status)

    assert sample(0).good
    assert not sample(0x80000000).good  # Bad
    assert not sample(0x40000000).good  # Uncertain
