from agent_project.routing import api_path
from contacts.api import ContactDetailView, ContactExportView, ContactLogsView, ContactMergeView, ContactsView

urlpatterns = [
    api_path(r"contacts", ContactsView.as_view(), name="contacts"),
    api_path(r"contacts/logs", ContactLogsView.as_view(), name="contact-logs"),
    api_path(r"contacts/export", ContactExportView.as_view(), name="contact-export"),
    api_path(r"contacts/(?P<pk>\d+)", ContactDetailView.as_view(), name="contact-detail"),
    api_path(r"contacts/(?P<pk>\d+)/merge", ContactMergeView.as_view(), name="contact-merge"),
]
