"""Writes to contacts and their history, one module per flow:

- ``chat``: what the chat, the channels and the follow-ups call: the contact a channel user
  is (``contact_for_channel``), a line of its history (``contact_log_record``), and the hold
  that keeps it from being erased meanwhile (``contact_hold``);
- ``upsert``: the contacts API's create-or-match (``contact_upsert``) and update;
- ``erasure``: erasing a contact with its history (``contact_delete``), and the lock order
  every erasure and merge keeps;
- ``merge``: folding one contact into another (``contact_merge``);
- ``common``: what they share (the phone region of a tenant, the retry count).

Every service opens its tenant's scope itself, so views, tasks and other apps call them the
same way. Duplicates are made impossible by the database (unique phone / e-mail / channel
identity per tenant), not by a read-then-write check: a losing concurrent writer gets an
IntegrityError inside a savepoint, and the service retries, now finding the winner's row.

Code inside ``contacts`` imports from those modules. The names below are the ones used from
outside the app (the chat pipeline, the channels, the follow-ups; ``benchmarks/`` and other
apps' tests seed and erase contacts), kept importable from ``contacts.services``.
"""

from contacts.services.chat import contact_for_channel, contact_hold, contact_log_record
from contacts.services.common import WHATSAPP, tenant_phone_region
from contacts.services.erasure import contact_delete
from contacts.services.merge import contact_merge
from contacts.services.upsert import contact_upsert

__all__ = ["WHATSAPP", "contact_delete", "contact_for_channel", "contact_hold", "contact_log_record", "contact_merge",
           "contact_upsert", "tenant_phone_region"]
