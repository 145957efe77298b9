"""The admin's login, throttled: after ``ADMIN_LOGIN_FAILURE_LIMIT`` wrong passwords for one
user name from one client address, that pair is locked out for ``ADMIN_LOGIN_LOCKOUT_SECONDS``
(the right password is refused too meanwhile, or the lock-out would tell a guesser when it
has found it). A successful login clears the count. The counters are shared by every web
process (agent_project.lib.failures); operators are listed in docs/ops.md."""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm

from agent_project.lib import failures

logger = logging.getLogger(__name__)


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked_out": "Too many failed logins for this account from your address. Try again in %(minutes)s "
                      "minute(s).",
    }

    def clean(self):
        username = (self.cleaned_data.get("username") or "").strip().lower()
        key = f"admin-login:{username}:{failures.client_address(self.request)}"
        count, left = failures.failure_count(key)
        if count >= settings.ADMIN_LOGIN_FAILURE_LIMIT:
            raise self._locked(left)
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                count, left = failures.failure_record(key, window=settings.ADMIN_LOGIN_LOCKOUT_SECONDS)
                if count >= settings.ADMIN_LOGIN_FAILURE_LIMIT:
                    logger.warning("admin login for %r locked out after %s failures", username, count)
                    raise self._locked(left) from None
            raise
        failures.failure_reset(key)
        return cleaned

    def _locked(self, seconds: int) -> forms.ValidationError:
        return forms.ValidationError(self.error_messages["locked_out"], code="locked_out",
                                     params={"minutes": max(1, -(-seconds // 60))})
