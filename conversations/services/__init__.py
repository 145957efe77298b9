"""The chat pipeline: one customer turn in, one grounded reply out.

- ``prepare``: everything before the model (contact, conversation, the user's turn stored and
  committed, retrieval, opening hours, the prompt): ``chat_prepare``;
- ``reply``: the model and the tools it asks for, the reply stored (``chat_complete``) or
  streamed as bubbles (``chat_stream``);
- ``feedback``: ratings of the answers.

The user's turn is committed before the model is called, so a failing model loses nothing.
Code inside ``conversations`` imports from those modules; the names below are the ones other
apps use (``channels.inbound`` runs a WhatsApp/Telegram message through the same pipeline).
"""

from conversations.services.prepare import chat_prepare, conversation_for, reply_locale
from conversations.services.reply import chat_complete

__all__ = ["chat_complete", "chat_prepare", "conversation_for", "reply_locale"]
