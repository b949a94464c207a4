"""The slice of MLS (RFC 9420) that Discord's voice gateway speaks for DAVE, as TLS-presentation bytes.

davey plays group members but has no API for the gateway's side, so the fake encodes it here:

* the **external sender** (RFC 9420 §12.1.8.1): ``ExternalSender { signature_key<V>, credential }``
  with a basic credential, sent as voice op 25; its P-256 key signs the gateway's proposals;
* **external proposals** (§6, §12.1.1, §12.1.3): an Add carrying a member's ``KeyPackage`` verbatim,
  or a Remove of a leaf, framed as an MLSMessage ``PublicMessage`` from sender ``external`` (index 0)
  and signed with ``SignWithLabel(., "FramedContentTBS", FramedContentTBS)`` — ECDSA P-256 /
  SHA-256, DER-encoded, ciphersuite 2 (DHKEMP256_AES128GCM_SHA256_P256, the one DAVE v1 uses);
* reading what members send back: the user id in a key package's basic credential, and op 28's
  commit ``PublicMessage`` followed by an optional raw ``Welcome`` (it has no length prefix, so the
  commit is parsed to find where it ends).

Variable-size vectors (``<V>``) carry the MLS varint length prefix (§2.1.2). Not covered: private
messages, GroupInfo, PSKs, X.509 credentials, anything a gateway never sends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MLS_10 = 1
WIRE_PUBLIC_MESSAGE = 1
SENDER_MEMBER, SENDER_EXTERNAL = 1, 2
CONTENT_PROPOSAL, CONTENT_COMMIT = 2, 3
PROPOSAL_ADD, PROPOSAL_REMOVE = 1, 3
CREDENTIAL_BASIC = 1
LEAF_SOURCE_KEY_PACKAGE, LEAF_SOURCE_COMMIT = 1, 3


def varint(value: int) -> bytes:
    """MLS variable-length integer (RFC 9420 §2.1.2): 1, 2 or 4 bytes, the top two bits say which."""
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return struct.pack(">H", value | 0x4000)
    if value < 1 << 30:
        return struct.pack(">I", value | 0x8000_0000)
    raise ValueError(f"{value} does not fit an MLS varint")


def opaque(data: bytes) -> bytes:
    """``opaque data<V>``: the bytes with their varint length in front."""
    return varint(len(data)) + data


def group_id(channel_id: int) -> bytes:
    """DAVE's MLS group id: the voice channel's snowflake as a big-endian u64."""
    return struct.pack(">Q", channel_id)


class Reader:
    """A cursor over TLS-presentation bytes; every read raises ``ValueError`` past the end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated MLS structure")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def opaque(self) -> bytes:
        first = self.uint(1)
        prefix = first >> 6
        if prefix == 3:
            raise ValueError("invalid MLS varint")
        length = first & 0x3F
        for _ in range((1 << prefix) - 1):
            length = length << 8 | self.uint(1)
        return self.take(length)


class ExternalSender:
    """The voice gateway's MLS identity: a fresh P-256 key pair and a basic credential."""

    def __init__(self, identity: bytes = b"fakediscord voice gateway") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.identity = identity
        self.public_key = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def package(self) -> bytes:
        """The serialised ``ExternalSender`` that voice op 25 carries."""
        return opaque(self.public_key) + struct.pack(">H", CREDENTIAL_BASIC) + opaque(self.identity)

    def add(self, channel_id: int, epoch: int, key_package: bytes) -> bytes:
        """An external Add proposal (MLSMessage) for a member's serialised ``KeyPackage``."""
        return self._proposal(channel_id, epoch, struct.pack(">H", PROPOSAL_ADD) + key_package)

    def remove(self, channel_id: int, epoch: int, leaf_index: int) -> bytes:
        """An external Remove proposal (MLSMessage) for the member at ``leaf_index``."""
        return self._proposal(channel_id, epoch, struct.pack(">HI", PROPOSAL_REMOVE, leaf_index))

    def _proposal(self, channel_id: int, epoch: int, proposal: bytes) -> bytes:
        content = (
            opaque(group_id(channel_id))
            + struct.pack(">QBI", epoch, SENDER_EXTERNAL, 0)
            + opaque(b"")  # authenticated_data
            + bytes([CONTENT_PROPOSAL])
            + proposal
        )
        header = struct.pack(">HH", MLS_10, WIRE_PUBLIC_MESSAGE)
        # FramedContentTBS for an external sender is version, wire format and content: no GroupContext.
        signed = opaque(b"MLS 1.0 FramedContentTBS") + opaque(header + content)
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        # A proposal's FramedContentAuthData is just the signature; externals carry no membership tag.
        return header + content + opaque(signature)


def proposals_payload(messages: list[bytes]) -> bytes:
    """Op 27's ``MLSMessage proposal_messages<V>`` for an append."""
    return opaque(b"".join(messages))


def key_package_user_id(key_package: bytes) -> int:
    """The Discord user id in a serialised ``KeyPackage``'s basic credential (big-endian u64)."""
    reader = Reader(key_package)
    reader.take(4)  # version, cipher_suite
    reader.opaque()  # init_key
    reader.opaque()  # leaf_node.encryption_key
    reader.opaque()  # leaf_node.signature_key
    if reader.uint(2) != CREDENTIAL_BASIC:
        raise ValueError("DAVE key packages carry a basic credential")
    identity = reader.opaque()
    if len(identity) != 8:
        raise ValueError("a DAVE identity is an 8-byte user id")
    return int.from_bytes(identity, "big")


@dataclass(frozen=True)
class Commit:
    """What the gateway reads from a member's commit before broadcasting it."""

    message: bytes
    group_id: bytes
    epoch: int
    committer: int  # the committing member's leaf index


def split_commit_welcome(data: bytes) -> tuple[Commit, bytes | None]:
    """Op 28's payload → the commit and the ``Welcome`` after it (None when it adds nobody)."""
    reader = Reader(data)
    if (reader.uint(2), reader.uint(2)) != (MLS_10, WIRE_PUBLIC_MESSAGE):
        raise ValueError("a DAVE commit is an MLS 1.0 PublicMessage")
    group = reader.opaque()
    epoch = reader.uint(8)
    if reader.uint(1) != SENDER_MEMBER:
        raise ValueError("only members commit in DAVE")
    committer = reader.uint(4)
    reader.opaque()  # authenticated_data
    if reader.uint(1) != CONTENT_COMMIT:
        raise ValueError("not a commit")
    reader.opaque()  # proposals (ProposalOrRef<V>)
    if reader.uint(1):  # optional<UpdatePath>
        _skip_leaf_node(reader)
        reader.opaque()  # UpdatePathNode nodes<V>
    reader.opaque()  # signature
    reader.opaque()  # confirmation_tag
    reader.opaque()  # membership_tag
    commit = Commit(data[: reader.pos], group, epoch, committer)
    return commit, (data[reader.pos :] or None)


def _skip_leaf_node(reader: Reader) -> None:
    reader.opaque()  # encryption_key
    reader.opaque()  # signature_key
    reader.uint(2)  # credential_type
    reader.opaque()  # identity (basic) or certificates (x509): both a vector
    for _ in range(5):  # capabilities: versions, cipher_suites, extensions, proposals, credentials
        reader.opaque()
    source = reader.uint(1)
    if source == LEAF_SOURCE_KEY_PACKAGE:
        reader.take(16)  # lifetime: not_before, not_after
    elif source == LEAF_SOURCE_COMMIT:
        reader.opaque()  # parent_hash
    reader.opaque()  # extensions
    reader.opaque()  # signature
