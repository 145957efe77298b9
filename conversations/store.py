"""Storing a chat turn in one database round trip.

A returning customer's turn touches five tables: the contact is marked seen, the
conversation's ``last_message_at`` moves, the message is inserted, the contact's
cross-channel log gets the line, and (for the prompt) the conversation's recent
history is read. Done statement by statement through the ORM that was ten round
trips for the user's turn and six for the reply, each ~0.4–0.8 ms on the 2-core VM
(plus the ORM's own work): most of what ``/chat`` cost outside retrieval and the
model (benchmarks/bench_chat.py). Here each side is one statement of data-modifying
CTEs, so it is one round trip and, run outside a transaction, one atomic commit.

``user_turn`` covers a returning customer (a contact identity and a conversation bound
to that contact), ``first_turn`` a new one (neither exists yet). Anything else (a
conversation re-bound to another contact, an identity made by an import, a race
between two first messages) returns ``None`` and the caller takes the ORM path
(``contacts.services``), which handles every case. Every statement filters by tenant. Column lists come from the models, so a
new field with a default needs no change here.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.db import connection

from contacts.models import Contact, ContactLog
from conversations.models import Conversation, Message

HISTORY_TURNS = 30


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _columns(model) -> list:
    return list(model._meta.concrete_fields)


def _returning(model, alias: str) -> str:
    return ", ".join(f"{alias}.{_q(f.column)}" for f in _columns(model))


def _from_row(model, row):
    return model.from_db(connection.alias, [f.attname for f in _columns(model)], row)


def _insert(obj, params: dict, prefix: str, sql_values: dict[str, str]) -> tuple[str, str]:
    """``(column list, value list)`` for inserting ``obj`` as Django would (defaults, JSON
    adaptation); ``sql_values`` gives SQL expressions for some columns instead."""
    columns, values = [], []
    for i, field in enumerate(_columns(type(obj))):
        if field.primary_key and field.column not in sql_values:
            continue
        columns.append(_q(field.column))
        if field.column in sql_values:
            values.append(sql_values[field.column])
        else:
            key = f"{prefix}{i}"
            params[key] = field.get_db_prep_save(getattr(obj, field.attname), connection)
            values.append(f"%({key})s")
    return ", ".join(columns), ", ".join(values)


def _commit_mode(params: dict) -> str:
    """A CTE that turns off the WAL flush wait for this statement's own transaction when
    ``CHAT_DURABLE_COMMIT=false`` (never inside a caller's transaction: it would reach
    the caller's writes too)."""
    if connection.in_atomic_block or getattr(settings, "CHAT_DURABLE_COMMIT", True):
        return ""
    return "commit_mode AS (SELECT set_config('synchronous_commit', 'off', true) AS value), "


def _execute(sql: str, params: dict):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def user_turn(*, tenant, channel: str, user_id: str, content: str, name: str,
              now: datetime) -> tuple[Conversation, Contact, Message, list[tuple[str, str]]] | None:
    """Store a returning customer's turn: ``(conversation, contact, message, history)``,
    ``history`` being the conversation's last turns before this one as (role, content),
    oldest first. ``None`` (nothing written) when the ORM path must do it."""
    params: dict = {"tenant": tenant.pk, "channel": channel, "user_id": user_id, "now": now,
                    "name": name[:200], "history": HISTORY_TURNS, "content": content, "user": Message.Role.USER}
    message = Message(tenant_id=tenant.pk, role=Message.Role.USER, content=content, created_at=now)
    log = ContactLog(tenant_id=tenant.pk, role="user", content=content, channel=channel[:32], at=now, created_at=now)
    msg_columns, msg_values = _insert(message, params, "m", {"conversation_id": "conv.id", "created_at": "%(now)s"})
    log_columns, log_values = _insert(log, params, "l", {"contact_id": "conv.contact_id",
                                                         "conversation_id": "conv.id", "created_at": "%(now)s"})
    commit_mode = _commit_mode(params)
    sql = f"""
        WITH {commit_mode}ident AS (
            SELECT contact_id FROM contacts_contactidentity
            WHERE tenant_id = %(tenant)s AND channel = %(channel)s AND external_id = %(user_id)s
        ), conv AS (
            UPDATE conversations_conversation AS cv SET last_message_at = %(now)s, updated_at = %(now)s
            FROM ident WHERE cv.tenant_id = %(tenant)s AND cv.channel = %(channel)s AND cv.user_id = %(user_id)s
                AND cv.contact_id = ident.contact_id
            RETURNING {_returning(Conversation, "cv")}
        ), touch AS (
            -- last_seen only moves forward, first_seen only back, a blank name is filled
            UPDATE contacts_contact AS ct SET
                last_seen_at = GREATEST(coalesce(ct.last_seen_at, %(now)s), %(now)s),
                first_seen_at = LEAST(coalesce(ct.first_seen_at, %(now)s), %(now)s),
                updated_at = CASE WHEN ct.last_seen_at IS NULL OR ct.last_seen_at < %(now)s
                                  THEN %(now)s ELSE ct.updated_at END,
                name = CASE WHEN ct.name = '' THEN %(name)s ELSE ct.name END
            FROM conv WHERE ct.tenant_id = %(tenant)s AND ct.id = conv.contact_id
            RETURNING {_returning(Contact, "ct")}
        ), retry AS (
            -- the customer's last turn got no reply (its error_code says why: "please try again") and this
            -- is the same message again: that turn is taken up, not stored (and shown to the model) twice
            UPDATE conversations_message AS rm SET error_code = '' FROM conv
            WHERE rm.id = (SELECT m.id FROM conversations_message m WHERE m.tenant_id = %(tenant)s
                           AND m.conversation_id = conv.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1)
                AND rm.role = %(user)s AND rm.error_code <> '' AND rm.content = %(content)s
            RETURNING rm.id
        ), history AS (
            -- the statement's snapshot: the turns before this one
            SELECT coalesce(json_agg(json_build_array(h.role, h.content) ORDER BY h.created_at, h.id), '[]') AS turns
            FROM (SELECT m.role, m.content, m.created_at, m.id FROM conversations_message m, conv
                  WHERE m.tenant_id = %(tenant)s AND m.conversation_id = conv.id AND m.content <> ''
                      AND m.id NOT IN (SELECT id FROM retry)
                  ORDER BY m.created_at DESC, m.id DESC LIMIT %(history)s) h
        ), msg AS (
            INSERT INTO conversations_message ({msg_columns}) SELECT {msg_values} FROM conv
            WHERE NOT EXISTS (SELECT 1 FROM retry) RETURNING id
        ), log AS (
            INSERT INTO contacts_contactlog ({log_columns}) SELECT {log_values} FROM conv
            WHERE NOT EXISTS (SELECT 1 FROM retry) RETURNING id
        )
        SELECT coalesce((SELECT id FROM msg), (SELECT id FROM retry)), (SELECT turns FROM history), conv.*, touch.*
        FROM conv, touch{", commit_mode" if commit_mode else ""}
    """
    row = _execute(sql, params)
    if row is None:
        return None
    conversation, contact = _stored(row, 2, message)
    turns = json.loads(row[1]) if isinstance(row[1], str) else row[1]
    return conversation, contact, message, [(role, text) for role, text in turns]


def _stored(row, start: int, message: Message) -> tuple[Conversation, Contact]:
    """The conversation and contact a turn statement returned from column ``start`` on
    (its first column is the message id, which ``message`` takes, now saved)."""
    n_conv = len(_columns(Conversation))
    conversation = _from_row(Conversation, row[start:start + n_conv])
    contact = _from_row(Contact, row[start + n_conv:start + n_conv + len(_columns(Contact))])
    message.pk, message.conversation_id = row[0], conversation.pk
    message._state.adding, message._state.db = False, connection.alias
    return conversation, contact


def first_turn(*, tenant, channel: str, user_id: str, content: str, name: str,
               now: datetime) -> tuple[Conversation, Contact, Message] | None:
    """Store a new customer's first turn: contact, its channel identity, the conversation,
    the message and the log line, in one statement. ``None`` (nothing but possibly the
    contact and identity written) when the identity or the conversation already exists
    (a concurrent first message, or data made elsewhere): the ORM path then takes over
    and finds them."""
    params: dict = {"tenant": tenant.pk, "channel": channel, "user_id": user_id, "now": now}
    contact = Contact(tenant_id=tenant.pk, name=name[:200], first_seen_at=now, last_seen_at=now, created_at=now,
                      updated_at=now)
    conversation = Conversation(tenant_id=tenant.pk, channel=channel, user_id=user_id, created_at=now,
                                updated_at=now, last_message_at=now)
    message = Message(tenant_id=tenant.pk, role=Message.Role.USER, content=content, created_at=now)
    log = ContactLog(tenant_id=tenant.pk, role="user", content=content, channel=channel[:32], at=now, created_at=now)
    ct_columns, ct_values = _insert(contact, params, "c", {"id": "ident.contact_id"})
    cv_columns, cv_values = _insert(conversation, params, "v", {"contact_id": "ident.contact_id"})
    msg_columns, msg_values = _insert(message, params, "m", {"conversation_id": "conv.id"})
    log_columns, log_values = _insert(log, params, "l", {"contact_id": "conv.contact_id", "conversation_id": "conv.id"})
    commit_mode = _commit_mode(params)
    sql = f"""
        WITH {commit_mode}new_id AS (
            SELECT nextval(pg_get_serial_sequence('contacts_contact', 'id')) AS contact_id
        ), ident AS (
            -- foreign keys are checked at commit (Django makes them deferrable): the contact follows
            INSERT INTO contacts_contactidentity (tenant_id, contact_id, channel, external_id, created_at)
            SELECT %(tenant)s, new_id.contact_id, %(channel)s, %(user_id)s, %(now)s FROM new_id
            ON CONFLICT (tenant_id, channel, external_id) DO NOTHING
            RETURNING contact_id
        ), ct AS (
            INSERT INTO contacts_contact ({ct_columns}) SELECT {ct_values} FROM ident
            RETURNING {_returning(Contact, "contacts_contact")}
        ), conv AS (
            INSERT INTO conversations_conversation ({cv_columns}) SELECT {cv_values} FROM ident
            ON CONFLICT (tenant_id, channel, user_id) DO NOTHING
            RETURNING {_returning(Conversation, "conversations_conversation")}
        ), msg AS (
            INSERT INTO conversations_message ({msg_columns}) SELECT {msg_values} FROM conv RETURNING id
        ), log AS (
            INSERT INTO contacts_contactlog ({log_columns}) SELECT {log_values} FROM conv RETURNING id
        )
        SELECT (SELECT id FROM msg), conv.*, ct.* FROM conv, ct{", commit_mode" if commit_mode else ""}
    """
    row = _execute(sql, params)
    if row is None:
        return None
    conversation, contact = _stored(row, 1, message)
    return conversation, contact, message


def reply_turn(*, message: Message, contact: Contact | None, channel: str, now: datetime) -> Message:
    """Insert the assistant's ``message`` (unsaved, fields set), move the conversation's
    ``last_message_at`` and add the line to the contact's log, in one statement."""
    params: dict = {"tenant": message.tenant_id, "conversation": message.conversation_id, "now": now}
    message.created_at = now
    msg_columns, msg_values = _insert(message, params, "m", {"created_at": "%(now)s"})
    log_cte = ""
    if contact is not None:
        log = ContactLog(tenant_id=message.tenant_id, contact_id=contact.pk, role="assistant", content=message.content,
                         channel=channel[:32], at=now, conversation_id=message.conversation_id)
        log_columns, log_values = _insert(log, params, "l", {"created_at": "%(now)s"})
        log_cte = f", log AS (INSERT INTO contacts_contactlog ({log_columns}) VALUES ({log_values}) RETURNING id)"
    commit_mode = _commit_mode(params)
    sql = f"""
        WITH {commit_mode}msg AS (
            INSERT INTO conversations_message ({msg_columns}) VALUES ({msg_values}) RETURNING id
        ), conv AS (
            UPDATE conversations_conversation SET last_message_at = %(now)s, updated_at = %(now)s
            WHERE tenant_id = %(tenant)s AND id = %(conversation)s RETURNING id
        ){log_cte}
        SELECT msg.id FROM msg{", commit_mode" if commit_mode else ""}
    """
    message.pk = _execute(sql, params)[0]
    message._state.adding, message._state.db = False, connection.alias
    return message
