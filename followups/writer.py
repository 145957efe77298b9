"""AI-written follow-ups: an empty ``message`` is written at send time by the tenant's
chat model, from the persona, the SOP and the conversation so far."""

from __future__ import annotations

from agent_project.lib.llm import ChatTurn, LLMBlocked, estimate_tokens, get_chat_model
from conversations.models import Message
from conversations.prompts import language_name

HISTORY_TURNS = 20
HISTORY_BUDGET_TOKENS = 3000
MAX_FOLLOWUP_CHARS = 1000

INSTRUCTION = """\
You are writing ONE follow-up message that the business sends to this customer on its own
initiative, some time after the conversation below. Write only the message itself: short
(at most three sentences), warm and polite, in {language}, in the voice described above.
Refer to what the customer asked about if the conversation shows it; promise nothing the
SOP does not allow; no placeholders, no quotation marks, no sign-off with a made-up name."""


class TextUnavailable(Exception):
    """The model gave no text; ``permanent`` when asking again would not help (a safety block)."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def followup_prompt(*, business_name: str, persona: str, sop: str, locale: str, customer_name: str,
                    history: list[ChatTurn]) -> tuple[str, list[ChatTurn]]:
    """Pure: the system prompt and turns for the model. The history is cut from the oldest
    turn to a budget, and ends with an instruction turn so the model writes the next message."""
    parts = [f"You write on behalf of {business_name}."]
    if persona.strip():
        parts.append("Persona:\n" + persona.strip())
    if sop.strip():
        parts.append("Standard operating procedures (follow them):\n" + sop.strip())
    if customer_name.strip():
        parts.append(f"The customer's name is {customer_name.strip()}.")
    parts.append(INSTRUCTION.format(language=language_name(locale)))
    kept, used = [], 0
    for turn in reversed(history[-HISTORY_TURNS:]):
        cost = estimate_tokens(turn.content)
        if used + cost > HISTORY_BUDGET_TOKENS:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    note = "(Earlier conversation above.)" if kept else "(There is no earlier conversation on record.)"
    return "\n\n".join(parts), kept + [ChatTurn("user", f"{note} Write the follow-up message now.")]


def followup_write_with_ai(*, followup) -> tuple[str, str]:
    """(text, origin) for a follow-up with an empty message. Runs in the row's tenant scope."""
    tenant, contact = followup.tenant, followup.contact
    history: list[ChatTurn] = []
    if followup.conversation_id:
        turns = (Message.objects.filter(conversation_id=followup.conversation_id)
                 .exclude(content="").order_by("-created_at", "-id")[:HISTORY_TURNS])
        history = [ChatTurn("user" if m.role == Message.Role.USER else "assistant", m.content)
                   for m in reversed(list(turns))]
    system, messages = followup_prompt(business_name=tenant.name, persona=tenant.persona, sop=tenant.sop,
                                       locale=tenant.locale, customer_name=contact.name, history=history)
    model = get_chat_model(tenant)
    try:
        completion = model.complete(system=system, messages=messages, purpose="followup")
    except LLMBlocked as exc:
        raise TextUnavailable(f"ai_blocked: {exc} ({exc.reason})", permanent=True) from exc
    text = completion.text.strip()[:MAX_FOLLOWUP_CHARS]
    if not text:
        raise TextUnavailable("ai_empty: the model wrote nothing", permanent=False)
    return text, f"ai:{completion.provider}/{completion.model}"
