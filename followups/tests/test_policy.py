"""The pure rules, table-driven: backoff, HTTP outcomes, templates, the AI prompt, signatures."""

from __future__ import annotations

import pytest

from agent_project.lib.llm import ChatTurn
from followups import policy
from followups.senders import signature_for, signature_verify
from followups.writer import followup_prompt


@pytest.mark.parametrize(
    "attempt, rand, expected",
    [
        (1, 0.0, 15.0),      # step 30: the lower edge of the upper half
        (1, 0.999999, 30.0),  # ... up to the whole step
        (2, 0.0, 30.0),      # step 60
        (3, 0.5, 90.0),      # step 120: 60 + 30
        (4, 0.0, 120.0),     # step 240
        (8, 0.0, 1800.0),    # step 3840 capped at 3600
        (30, 1.0, 3600.0),   # far past the cap stays at the cap
    ],
)
def test_retry_delay_is_exponential_with_equal_jitter(attempt, rand, expected):
    assert policy.retry_delay(attempt=attempt, base=30, cap=3600, rand=rand) == pytest.approx(expected, abs=1e-3)


def test_retry_delay_attempts_are_one_based():
    with pytest.raises(ValueError):
        policy.retry_delay(attempt=0, base=30, cap=3600, rand=0.5)


@pytest.mark.parametrize(
    "status, outcome",
    [(200, "sent"), (201, "sent"), (204, "sent"), (299, "sent"),
     (301, "permanent"), (400, "permanent"), (401, "permanent"), (403, "permanent"), (404, "permanent"),
     (410, "permanent"), (422, "permanent"),
     (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry")],
)
def test_classify_status(status, outcome):
    assert policy.classify_status(status) == outcome


@pytest.mark.parametrize(
    "text, fields",
    [("Halo", []), ("Halo {name}", ["name"]), ("{first_name}, pesanan {order} siap", ["first_name", "order"]),
     ("Kurung {{literal}}", []), ("", [])],
)
def test_template_fields(text, fields):
    assert policy.template_fields(text) == fields


@pytest.mark.parametrize(
    "text, variables, code",
    [
        ("Halo {nama}", {}, "unknown_template_variable"),
        ("Halo {0}", {}, "invalid_template"),
        ("Halo {name.__class__}", {}, "invalid_template"),
        ("Halo {name!r}", {}, "invalid_template"),
        ("Halo {name:>30}", {}, "invalid_template"),
        ("Halo {name", {}, "invalid_template"),
        ("Halo }", {}, "invalid_template"),
        ("Halo", {"bad key": "x"}, "invalid_variables"),
        ("Halo", {"order": {"nested": 1}}, "invalid_variables"),
        ("Halo", {"flag": True}, "invalid_variables"),
        ("Halo", {"long": "x" * 501}, "invalid_variables"),
        ("Halo", ["not", "a", "dict"], "invalid_variables"),
    ],
)
def test_template_check_refuses(text, variables, code):
    with pytest.raises(policy.TemplateError) as exc:
        policy.template_check(text, variables)
    assert exc.value.code == code


@pytest.mark.parametrize(
    "text, variables, expected",
    [
        ("Halo {first_name}!", {}, "Halo Budi!"),
        ("Halo {name} dari {tenant_name}", {}, "Halo Budi Santoso dari Toko A"),
        ("Pesanan {order} siap", {"order": "A-12"}, "Pesanan A-12 siap"),
        ("Halo {name}", {"name": "Pak Budi"}, "Halo Pak Budi"),  # explicit values win
        ("Total {amount}", {"amount": 125000}, "Total 125000"),
        ("Kurung {{ini}}", {}, "Kurung {ini}"),
        ("Email: {email}", {}, "Email: "),
    ],
)
def test_template_render(text, variables, expected):
    policy.template_check(text, variables)
    builtins = policy.builtin_values(contact_name="Budi Santoso", phone="+62812", email=None, tenant_name="Toko A")
    assert policy.template_render(text, builtins=builtins, variables=variables) == expected


@pytest.mark.parametrize(
    "secret, timestamp, body, signature, now, ok",
    [
        ("whsec_x", "1700000000", b'{"a":1}', None, 1700000000, True),
        ("whsec_x", "1700000000", b'{"a":1}', None, 1700000299, True),
        ("whsec_x", "1700000000", b'{"a":1}', None, 1700000301, False),  # too old: a replay
        ("whsec_x", "1700000000", b'{"a":2}', "sign-other-body", 1700000000, False),
        ("whsec_x", "1700000000", b'{"a":1}', "wrong-secret", 1700000000, False),
        ("whsec_x", "not-a-time", b'{"a":1}', None, 1700000000, False),
    ],
)
def test_signature_verify(secret, timestamp, body, signature, now, ok):
    if signature is None:
        signature = signature_for(secret=secret, timestamp=timestamp, body=body)
    elif signature == "sign-other-body":
        signature = signature_for(secret=secret, timestamp=timestamp, body=b'{"a":1}')
    elif signature == "wrong-secret":
        signature = signature_for(secret="whsec_y", timestamp=timestamp, body=body)
    assert signature_verify(secret=secret, timestamp=timestamp, body=body, signature=signature, now=now) is ok


def test_followup_prompt_carries_persona_sop_language_and_history():
    history = [ChatTurn("user", "Apakah kue coklat ready?"), ChatTurn("assistant", "Ready kak, mau pesan?")]
    system, turns = followup_prompt(business_name="Toko Kue", persona="Kamu Sari, ramah.", sop="Jangan janji diskon.",
                                    locale="id-ID", customer_name="Budi", history=history)
    assert "Toko Kue" in system and "Kamu Sari, ramah." in system and "Jangan janji diskon." in system
    assert "Bahasa Indonesia" in system and "Budi" in system
    assert turns[:2] == history
    assert turns[-1].role == "user" and "follow-up" in turns[-1].content


def test_followup_prompt_without_history_still_ends_with_the_instruction():
    _, turns = followup_prompt(business_name="T", persona="", sop="", locale="en", customer_name="",
                               history=[])
    assert len(turns) == 1 and "no earlier conversation" in turns[0].content


def test_followup_prompt_keeps_the_newest_turns_within_budget():
    history = [ChatTurn("user", f"{i} " + "kata " * 400) for i in range(15)]
    _, turns = followup_prompt(business_name="T", persona="", sop="", locale="id", customer_name="",
                               history=history)
    kept = turns[:-1]
    assert 0 < len(kept) < len(history)
    assert kept[-1] is history[-1]
