"""One command in, at most one ack out: the reference controller's decision for one message.

Without Kafka: :class:`FlagdFileController` reads a message's bytes and returns the ack to publish (or
``None`` for a message that is not for it), after the ack is durable in its state. The Kafka loop in
:mod:`rollguard.adapters.controller.consumer` publishes it and only then commits the offset.

The steps, in order (see :mod:`~rollguard.adapters.controller.admission` for why this order):
a readiness record (skipped, logged) -> not for a controller -> not this controller's flag -> signature
-> already answered (the original ack again) -> fields -> expiry by this controller's wall clock ->
sequence -> the edit (``conflict`` / ``invalid``) -> ``dry_run`` (computed, not written: ``dry_run_ok``)
-> atomic write (``failed`` with ``error`` if the disk refuses) -> ``applied`` with the flag's new
``metadata.version``.

Which rollouts are this controller's: those listed under ``controller.rollouts`` in its config, and any
rollout whose flag (key = rollout id unless mapped) is defined in its flags file. A command for another
rollout gets no ack, so several controllers, each with its own flags, can share the control topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rollguard.adapters.controller import admission
from rollguard.adapters.controller.admission import Refusal, make_ack
from rollguard.adapters.controller.flag_file import FlagFileChanged, FlagFileError, read_flags, replace_flags
from rollguard.adapters.controller.flagd import edit_flags, version_text
from rollguard.adapters.controller.state import ControllerState
from rollguard.settings.controller import ControllerSettings, FlagMapping

log = logging.getLogger("rollguard.controller")

_WRITE_ATTEMPTS = 5  # recomputations when the file changes under an edit (compare-and-swap)


class FlagdFileController:
    """Applies rollguard's rollout commands to one flagd flags file (JSON)."""

    def __init__(
        self,
        flags_path: Path,
        key: bytes,
        settings: ControllerSettings,
        state: ControllerState,
        *,
        accept_unsigned: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key and not accept_unsigned:
            raise ValueError("an empty signing key verifies nothing")
        self.flags_path = flags_path
        self.key = key
        self.settings = settings
        self.state = state
        self.accept_unsigned = accept_unsigned
        self.clock = clock

    def handle(self, value: bytes | None) -> dict[str, Any] | None:
        """The ack for one message of the control topic (durable once returned), or ``None``: not ours."""
        record = admission.decode(value)
        if isinstance(record, str):
            log.warning("skipping a control message that is no command: %s", record)
            return None
        if admission.is_readiness(record):  # rollguard's pre-flight checklist: not a command, no ack
            rid, ready = record.get("rollout_id"), record.get("ready")
            log.info("skipping the readiness record of %s (ready: %s): not a command", rid, ready)
            return None
        why = admission.not_for_controllers(record)
        if why is not None:
            log.debug("ignoring %s: %s", record["command_id"], why)
            return None
        mapping = self.settings.mapping(record["rollout_id"])
        if not self._ours(mapping):
            log.debug("ignoring %s: rollout %s is not in this flags file", record["command_id"], mapping.flag)
            return None
        refusal = admission.check_signature(record, self.key, accept_unsigned=self.accept_unsigned)
        if refusal is not None:  # not kept: anyone can send these, and they must not shadow the real one
            return make_ack(record, "rejected", self.clock(), refusal=refusal, flag=mapping.flag)
        earlier = self.state.ack_for(record["command_id"])
        if earlier is not None:
            log.info("redelivered %s: original ack %s", record["command_id"], earlier["status"])
            return earlier
        ack, applied_sequence = self._decide(record, mapping)
        self.state.record(ack, applied_sequence)
        log.info(
            "%s %s %s: %s%s",
            ack["status"],
            record["command_id"],
            record.get("action"),
            ack.get("reason_code", ""),
            f" ({ack['reason']})" if "reason" in ack else "",
        )
        return ack

    def _ours(self, mapping: FlagMapping) -> bool:
        if mapping.configured:
            return True
        try:
            _, doc = read_flags(self.flags_path)
        except FlagFileError:
            return True  # cannot tell: answer (failed) rather than stay silent
        flags = doc.get("flags")
        return isinstance(flags, dict) and mapping.flag in flags

    def _decide(self, record: Mapping[str, Any], mapping: FlagMapping) -> tuple[dict[str, Any], int | None]:
        def rejected(refusal: Refusal) -> tuple[dict[str, Any], None]:
            return make_ack(record, "rejected", self.clock(), refusal=refusal, flag=mapping.flag), None

        command = admission.parse_command(record)
        if isinstance(command, Refusal):
            return rejected(command)
        refusal = admission.check_expiry(record, self.clock())
        if refusal is None:
            refusal = admission.check_sequence(command, self.state.last_sequence(command.rollout_id))
        if refusal is not None:
            return rejected(refusal)
        for _ in range(_WRITE_ATTEMPTS):
            try:
                raw, doc = read_flags(self.flags_path)
            except FlagFileError as exc:
                return self._failed(record, mapping, str(exc)), None
            edit = edit_flags(doc, command, mapping)
            if isinstance(edit, Refusal):
                return rejected(edit)
            if command.dry_run:
                ack = make_ack(
                    record,
                    "dry_run_ok",
                    self.clock(),
                    reason=f"would apply: {edit.detail}" if edit.changed else edit.detail,
                    observed_version=_version_of(doc, mapping),
                    flag=mapping.flag,
                )
                return ack, None
            if edit.changed:
                try:
                    replace_flags(self.flags_path, edit.document, raw)
                except FlagFileChanged:
                    log.info("%s changed during an edit; recomputing", self.flags_path)
                    continue
                except OSError as exc:
                    return self._failed(record, mapping, f"cannot write {self.flags_path}: {exc}"), None
            ack = make_ack(
                record,
                "applied",
                self.clock(),
                reason=edit.detail,
                observed_version=edit.version,
                flag=mapping.flag,
            )
            return ack, command.sequence
        return self._failed(record, mapping, f"{self.flags_path} kept changing during the edit"), None

    def _failed(self, record: Mapping[str, Any], mapping: FlagMapping, reason: str) -> dict[str, Any]:
        return make_ack(record, "failed", self.clock(), refusal=Refusal("error", reason), flag=mapping.flag)


def _version_of(doc: Mapping[str, Any], mapping: FlagMapping) -> str | None:
    flag = (doc.get("flags") or {}).get(mapping.flag) or {}
    metadata = flag.get("metadata") if isinstance(flag, dict) else None
    return version_text(metadata.get("version")) if isinstance(metadata, dict) else None
