"""Human handoff: when a conversation goes from the bot to a person and back.

- ``detection``: pure (no ORM, no I/O), table-tested. ``wants_human(text)`` recognises a
  customer asking for a person, in Indonesian (formal and chat style: "mau bicara dengan
  admin", "hubungi CS", "sambungkan ke orang", "pengen ngomong sm manusia") and English
  ("talk to a human", "live agent"); ``model_cannot_help(reply)`` recognises the assistant's
  own "I don't know, shall I connect you with the team?" answer that the prompt rules ask for.
- ``notices``: what the customer is told, in the tenant's language.
- ``status``: ``conversation_status_set`` switches a conversation between ``bot``, ``human``
  and ``closed`` with a conditional update, records a ``HandoffEvent``, tells the customer on
  their channel and queues a signed ``conversation.handoff`` event for the tenant's webhook;
  the tenant's handoff policy (``Tenant.handoff_on_unanswered``, ``handoff_resume_minutes``)
  decides when a conversation nobody on the team has answered goes back to the bot.
- ``operator``: an operator's reply, sent on the channel before it is stored.
- ``events``: the ``conversation.handoff`` webhook event (a django-q2 task sends it).
- ``chat``: the hook ``POST /chat`` runs around the model (registered with
  ``conversations.handoff`` by ``channels.apps``), so a web or API conversation follows the
  same rules as WhatsApp and Telegram (``channels.inbound``).

A customer asking for a person is always handed over. Code imports from the module that holds
the name; nothing outside channels imports this package.
"""
