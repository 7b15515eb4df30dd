"""Walking one chain in sequence order: each event's MAC against the key ring, and when one
fails, what happened there (altered, inserted, deleted, reordered, forged, wrong key)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opencdmo.audit.chain import GENESIS, LEGACY, chain_mac, event_hash
from opencdmo.audit.keys import Keyring, same

LOOKAHEAD = 3  # neighbours looked at to tell what happened where a MAC fails


@dataclass(frozen=True)
class Finding:
    kind: str  # altered, inserted, deleted, reordered, forged, truncated, rewritten, head,
    # wrong_key, unkeyed, bad_checkpoint, uncovered, tampered (a record against its seal)
    seq: int | None
    message: str


@dataclass(frozen=True)
class Fields:
    legacy: tuple[str, ...]
    keyed: tuple[str, ...]


class Walker:
    def __init__(
        self, fields: Fields, ring: Keyring, start_seq: int = 0, start_hash: str = GENESIS
    ) -> None:
        self.fields, self.ring = fields, ring
        self.expected, self.prev, self.checked = start_seq + 1, start_hash, 0
        self.keyed_seen, self.legacy_tail = False, 0
        self.hashes: dict[int, str] = {}  # MACs at the sequence numbers watched
        self.watch: set[int] = set()

    @property
    def last_seq(self) -> int:
        return self.expected - 1

    def verifies(self, row: Mapping[str, Any], prev: str, seq: int) -> bool:
        """Whether ``row`` is the genuine event ``seq`` following ``prev``."""
        placed = {**row, "seq": seq}
        if row["algorithm"] == LEGACY:
            return same(event_hash(prev, placed, self.fields.legacy), row["hash"])
        key = self.ring.get(row["key_id"])
        return key is not None and same(
            chain_mac(key, prev, placed, self.fields.keyed), row["hash"]
        )

    def step(self, rows: Sequence[Mapping[str, Any]], i: int) -> Finding | None:
        row, expected = rows[i], self.expected
        if row["seq"] != expected:
            return Finding(
                "deleted",
                expected,
                f"event {expected} is missing: the chain jumps from {expected - 1} to {row['seq']}",
            )
        legacy = row["algorithm"] == LEGACY
        if legacy and self.keyed_seen:
            return Finding(
                "unkeyed", expected, f"event {expected} is unkeyed after keyed events: forged"
            )
        if not legacy and self.ring.get(row["key_id"]) is None:
            return Finding(
                "wrong_key",
                expected,
                f"event {expected} was chained with key {row['key_id']}, which this verifier "
                f"does not hold (its key is {self.ring.current.id}): wrong key",
            )
        if not self.verifies(row, self.prev, expected):
            return self.diagnose(rows, i)
        self.prev, self.expected, self.checked = row["hash"], expected + 1, self.checked + 1
        self.keyed_seen = self.keyed_seen or not legacy
        self.legacy_tail = self.legacy_tail + 1 if legacy else 0
        if expected in self.watch:
            self.hashes[expected] = row["hash"]
        return None

    def diagnose(self, rows: Sequence[Mapping[str, Any]], i: int) -> Finding:
        row, seq, prev = rows[i], self.expected, self.prev
        later = rows[i + 1 : i + 1 + LOOKAHEAD]
        if row["prev_hash"] != prev and self.verifies(row, row["prev_hash"], seq):
            return Finding(
                "rewritten",
                seq,
                f"event {seq} is genuine but no longer follows event {seq - 1}: "
                f"the events before {seq} were rewritten",
            )
        for other in range(max(1, seq - LOOKAHEAD), seq + LOOKAHEAD + 1):
            if other == seq or not self.verifies(row, row["prev_hash"], other):
                continue
            if other < seq or any(self.verifies(r, prev, seq) for r in later):
                return Finding(
                    "reordered",
                    seq,
                    f"events out of order at {seq}: the event chained as {other} is at {seq}",
                )
            return Finding(
                "deleted",
                seq,
                f"event {seq} was removed and the later events renumbered "
                f"(the event chained as {other} is now {seq})",
            )
        if not later:
            return Finding(
                "forged",
                seq,
                f"the last event, {seq}, does not verify: appended (or altered) without the key",
            )
        if self.verifies(later[0], prev, seq):
            return Finding(
                "inserted",
                seq,
                f"event {seq} does not belong to the chain: inserted without the key "
                f"(the event after it is the genuine {seq})",
            )
        if self.verifies(later[0], row["hash"], seq + 1):
            return Finding(
                "altered", seq, f"event {seq} was altered: its content no longer matches its MAC"
            )
        return Finding(
            "altered", seq, f"event {seq} does not verify: altered, or written without the key"
        )

    def finish(self, head: Mapping[str, Any] | None) -> list[Finding]:
        last = self.last_seq
        if head is None:
            return [Finding("head", max(last, 1), "the chain head is missing")]
        findings = []
        if head["last_seq"] > last:
            findings.append(
                Finding(
                    "truncated",
                    last + 1,
                    f"the head says {head['last_seq']} events, the chain has {last}: "
                    f"events {last + 1}-{head['last_seq']} were removed",
                )
            )
        elif head["last_seq"] != last or (last and head["last_hash"] != self.prev):
            findings.append(
                Finding("head", last, f"the head ({head['last_seq']}) does not match event {last}")
            )
        if self.legacy_tail:
            findings.append(
                Finding(
                    "unkeyed",
                    last - self.legacy_tail + 1,
                    f"events {last - self.legacy_tail + 1}-{last} are unkeyed and no keyed event "
                    "vouches for them: run `opencdmo db upgrade` to anchor them",
                )
            )
        return findings
