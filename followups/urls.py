from agent_project.routing import api_path
from followups import api

urlpatterns = [
    api_path(r"followup/schedule", api.FollowUpScheduleView.as_view(), name="followup-schedule"),
    api_path(r"followup/pending", api.FollowUpPendingView.as_view(), name="followup-pending"),
    api_path(r"followup", api.FollowUpListView.as_view(), name="followup-list"),
    api_path(r"followup/(?P<pk>\d+)", api.FollowUpDetailView.as_view(), name="followup-detail"),
    api_path(r"followup/(?P<pk>\d+)/cancel", api.FollowUpCancelView.as_view(), name="followup-cancel"),
    api_path(r"followup/(?P<pk>\d+)/retry", api.FollowUpRetryView.as_view(), name="followup-retry"),
]
